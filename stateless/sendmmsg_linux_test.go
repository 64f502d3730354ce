package stateless

import (
	"log/slog"
	"strings"

	"bytes"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/emiago/sipgo/sip"
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

// TestDatagramsBatch: answers held in a batch reach their addresses whole
// and in order, from an IPv4 socket and from a dual-stack one (listening
// on the unspecified address, as sipwarden does by default), where an IPv4
// destination must be given as an IPv4-mapped IPv6 address; one whose
// address cannot go in a batch does not keep the others from being sent
// (and one the kernel refuses: TestMmsgSenderRefused).
func TestDatagramsBatch(t *testing.T) {
	for _, tc := range socketKinds {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			t.Cleanup(f.Close)
			pc := tc.listen(t)
			if s := newBatchSender(pc); s == nil {
				t.Fatal("no batch sender for a UDP socket")
			}
			a := listen(t, "udp4", "127.0.0.1:0")
			b := listen(t, "udp4", "127.0.0.2:0")
			var dg datagrams
			var wantA, wantB [][]byte
			for i := range 10 {
				res, raw := numbered(i)
				switch {
				case i == 7:
					dg.add(f, pc, fakeAddr("elsewhere"), res) // not a UDP address: sent alone, fails
				case i%2 == 0:
					dg.add(f, pc, a.LocalAddr(), res)
					wantA = append(wantA, raw)
				default:
					dg.add(f, pc, b.LocalAddr(), res)
					wantB = append(wantB, raw)
				}
			}
			if len(dg.ends) != 10 {
				t.Fatalf("held %d answers before the flush, want 10", len(dg.ends))
			}
			dg.flush(f)
			for _, c := range []struct {
				conn net.PacketConn
				want [][]byte
			}{{a, wantA}, {b, wantB}} {
				got := receive(t, c.conn, len(c.want))
				for i := range got {
					if !bytes.Equal(got[i], c.want[i]) {
						t.Errorf("%s datagram %d: got\n%s\nwant\n%s", c.conn.LocalAddr(), i, got[i], c.want[i])
					}
				}
			}
			// The batch itself failed nowhere: an address encoded wrong
			// for the socket's family would be refused and its answers
			// sent one by one, which would pass the checks above.
			l := logs.String()
			if strings.Contains(l, `msg="send responses"`) {
				t.Errorf("the batch was refused:\n%s", l)
			}
			if !strings.Contains(l, `msg="send response"`) || !strings.Contains(l, "to=elsewhere") {
				t.Errorf("logs do not report the failed lone send:\n%s", l)
			}
			if len(dg.ends) != 0 || dg.buf.Len() != 0 || dg.pc != nil {
				t.Errorf("after flush: %d answers, %d bytes held, socket %v; want none", len(dg.ends), dg.buf.Len(), dg.pc)
			}
		})
	}
}
