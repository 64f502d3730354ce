package stateless

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestBatchReader: read through the batch reader, datagrams come out whole
// (the largest a UDP socket takes too), in order, each with its sender's
// address as ReadFrom gives it, from an IPv4 socket and from a dual-stack
// one; a REGISTER among them is taken for the workers and not returned;
// once the socket is closed the read fails with net.ErrClosed, which is
// what stops sipgo's reader quietly.
func TestBatchReader(t *testing.T) {
	for _, tc := range socketKinds {
		t.Run(tc.name, func(t *testing.T) {
			handled := make(chan string, 10)
			f := New(func(req *sip.Request, _ sip.ServerTransaction) { handled <- req.Source() }, Config{})
			t.Cleanup(f.Close)
			raw := tc.listen(t)
			pc := f.PacketConn(raw)
			if pc.(*packetConn).batch == nil {
				t.Fatal("no batch reader for a UDP socket")
			}
			to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: raw.LocalAddr().(*net.UDPAddr).Port}
			a := listen(t, "udp4", "127.0.0.1:0")
			b := listen(t, "udp4", "127.0.0.3:0")
			type sent struct {
				from net.PacketConn
				msg  []byte
			}
			var want []sent
			register := []byte("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-r\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
			for i := range 40 {
				// Requests sipgo's parser reads: an unparsable datagram
				// without a Via is the front's to drop (ShedUnparsable).
				options := func(body int) []byte {
					return fmt.Appendf(nil, "OPTIONS sip:%c@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: %d\r\n\r\n%s",
						'a'+i%26, i, body, bytes.Repeat([]byte("y"), body))
				}
				from, msg := a, options(0)
				switch {
				case i%3 == 1:
					from = b
				case i == 20:
					msg = options(65000 - len(options(0)) - 2) // two more digits in Content-Length
				case i == 30:
					if _, err := a.WriteTo(register, to); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := from.WriteTo(msg, to); err != nil {
					t.Fatal(err)
				}
				want = append(want, sent{from, msg})
			}
			buf := make([]byte, 65535)
			for i, w := range want {
				raw.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				if !bytes.Equal(buf[:n], w.msg) {
					t.Fatalf("datagram %d: got %d bytes %.20q, want %d bytes %.20q", i, n, buf[:n], len(w.msg), w.msg)
				}
				if addr.String() != w.from.LocalAddr().String() {
					t.Errorf("datagram %d: source %s, want %s", i, addr, w.from.LocalAddr())
				}
			}
			select {
			case src := <-handled:
				if src != a.LocalAddr().String() {
					t.Errorf("the REGISTER was handled as from %s, want %s", src, a.LocalAddr())
				}
			case <-time.After(2 * time.Second):
				t.Error("the REGISTER did not reach the workers")
			}
			raw.Close()
			if _, _, err := pc.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
				t.Errorf("read after close: got %v, want net.ErrClosed", err)
			}
		})
	}
}
