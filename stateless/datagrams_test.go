package stateless

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// numbered returns a response whose Call-ID is i, and its bytes.
func numbered(i int) (*sip.Response, []byte) {
	res := sip.NewResponse(200, "OK")
	res.AppendHeader(sip.NewHeader("Call-ID", "call-"+strconv.Itoa(i)))
	res.AppendHeader(sip.NewHeader("Content-Length", "0"))
	var b bytes.Buffer
	res.StringWrite(&b)
	return res, b.Bytes()
}

// receive reads n datagrams from c, each within 2 s.
func receive(t *testing.T, c net.PacketConn, n int) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 65535)
	for range n {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, bytes.Clone(buf[:k]))
	}
	return got
}

func listen(t *testing.T, network, addr string) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDatagramsSocketChange: answers for another socket send what was held
// for the first one, and a batch is sent once maxBatchJobs answers are
// held, without waiting for the round's end.
func TestDatagramsSocketChange(t *testing.T) {
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{})
	t.Cleanup(f.Close)
	pc1 := listen(t, "udp4", "127.0.0.1:0")
	pc2 := listen(t, "udp4", "127.0.0.1:0")
	to := listen(t, "udp4", "127.0.0.1:0")
	var dg datagrams
	res, raw := numbered(1)
	dg.add(f, pc1, to.LocalAddr(), res)
	dg.add(f, pc2, to.LocalAddr(), res) // sends pc1's
	got := receive(t, to, 1)
	if !bytes.Equal(got[0], raw) {
		t.Fatalf("got %q, want %q", got[0], raw)
	}
	if len(dg.ends) != 1 || dg.pc != pc2 {
		t.Fatalf("after the socket changed: %d held for %v, want 1 for pc2", len(dg.ends), dg.pc)
	}
	for range maxBatchJobs - 1 {
		dg.add(f, pc2, to.LocalAddr(), res)
	}
	if len(dg.ends) != 0 {
		t.Fatalf("%d answers held after %d were added, want them sent", len(dg.ends), maxBatchJobs)
	}
	receive(t, to, maxBatchJobs)
}

type fakeAddr string

func (a fakeAddr) Network() string { return "fake" }
func (a fakeAddr) String() string  { return string(a) }

// BenchmarkDatagrams: the time per answer of sending them one by one
// (sendto) and in batches of 4 and 16 (sendmmsg), over loopback to a
// reader that drains them.
func BenchmarkDatagrams(b *testing.B) {
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{})
	b.Cleanup(f.Close)
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer pc.Close()
			to, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer to.Close()
			to.SetReadBuffer(8 << 20)
			go func() {
				buf := make([]byte, 2048)
				for {
					if _, _, err := to.ReadFrom(buf); err != nil {
						return
					}
				}
			}()
			res := sip.NewResponse(200, "OK")
			res.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;received=127.0.0.1;rport=5061"))
			res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:5061>;expires=3600"))
			res.AppendHeader(sip.NewHeader("Content-Length", "0"))
			var dg datagrams
			for b.Loop() {
				for range n {
					dg.add(f, pc, to.LocalAddr(), res)
				}
				dg.flush(f)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/answer")
		})
	}
}
