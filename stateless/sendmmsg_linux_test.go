package stateless

import (
	"bytes"
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestMmsgSenderRefused: a datagram the kernel refuses in the middle of a
// batch (too long for UDP: EMSGSIZE) is reported in rest with its error,
// and the ones after it are still sent, in order.
func TestMmsgSenderRefused(t *testing.T) {
	pc := listenDualStack(t)
	to := listen(t, "udp4", "127.0.0.1:0")
	s := newBatchSender(pc)
	if s == nil {
		t.Fatal("no batch sender for a UDP socket")
	}
	msgs := [][]byte{[]byte("first"), bytes.Repeat([]byte("x"), 70000), []byte("third"), []byte("fourth")}
	addrs := []net.Addr{to.LocalAddr(), to.LocalAddr(), to.LocalAddr(), to.LocalAddr()}
	rest, err := s.send(msgs, addrs)
	if len(rest) != 1 || rest[0] != 1 {
		t.Errorf("rest: got %v, want [1]", rest)
	}
	if !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("err: got %v, want EMSGSIZE", err)
	}
	got := receive(t, to, 3)
	for i, want := range []string{"first", "third", "fourth"} {
		if string(got[i]) != want {
			t.Errorf("datagram %d: got %q, want %q", i, got[i], want)
		}
	}
}
