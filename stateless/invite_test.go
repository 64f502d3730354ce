package stateless

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// fakeChallenger challenges every out-of-dialog INVITE but those from
// 127.0.0.2.
type fakeChallenger struct{}

func (fakeChallenger) ByAddress(source string) bool { return strings.HasPrefix(source, "127.0.0.2:") }
func (fakeChallenger) Challengeable(req *sip.Request) bool {
	return req.Method == sip.INVITE && !req.To().Params.Has("tag")
}

// Refusal refuses an INVITE with Max-Forwards 0, as the proxy does.
func (fakeChallenger) Refusal(req *sip.Request) *sip.Response {
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return sip.NewResponseFromRequest(req, 483, "Too Many Hops", nil)
	}
	return nil
}

func refuse483(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(fakeChallenger{}.Refusal(req))
}

func challenge407(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
	res.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="t", nonce="n"`))
	_ = tx.Respond(res)
}

func testInvite(local, branch, extra string) string {
	return "INVITE sip:bob@t SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + branch + "\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:bob@t>\r\nFrom: <sip:alice@t>;tag=f1\r\nCall-ID: c-" + branch + "\r\n" +
		"CSeq: 1 INVITE\r\n" + extra + "Content-Length: 0\r\n\r\n"
}

func testACK(local, branch, toTag string) string {
	return "ACK sip:bob@t SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-" + branch + "\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:bob@t>;tag=" + toTag + "\r\nFrom: <sip:alice@t>;tag=f1\r\nCall-ID: c-" + branch + "\r\n" +
		"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
}

func testOptions(local string) string {
	return "OPTIONS sip:t SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-o\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:t>\r\nFrom: <sip:alice@t>;tag=f1\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
}

// TestInviteChallengedAndACKAbsorbed drives a wrapped UDP socket: the
// first INVITE is answered by the workers with the front's To tag (the
// same for a retransmission) and never reaches the reader (sipgo); the ACK
// of that answer is absorbed; a forged ACK, an INVITE with credentials
// and one from a source authenticated by address pass.
func TestInviteChallengedAndACKAbsorbed(t *testing.T) {
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{})
	defer f.Close()
	f.ChallengeInvites(challenge407, refuse483, fakeChallenger{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	wrapped := f.PacketConn(pc)
	passed := make(chan string, 16)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := wrapped.ReadFrom(buf)
			if err != nil {
				return
			}
			first, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			passed <- first
		}
	}()
	dial := func(from string) net.Conn {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	c := dial("127.0.0.1")
	local := c.LocalAddr().String()
	send := func(c net.Conn, msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	answer := func() *sip.Response {
		t.Helper()
		buf := make([]byte, 65536)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		m, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Response)
	}
	// nextPassed returns what the reader got next; the OPTIONS sent after
	// a message marks that nothing before it passed.
	nextPassed := func() string {
		t.Helper()
		select {
		case s := <-passed:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("nothing reached the reader")
			return ""
		}
	}

	send(c, testInvite(local, "b1", ""))
	res := answer()
	tag, _ := res.To().Params.Get("tag")
	if res.StatusCode != 407 || !strings.HasPrefix(tag, tagPrefix) {
		t.Fatalf("answer %d, To tag %q: want 407 with the front's tag", res.StatusCode, tag)
	}
	send(c, testInvite(local, "b1", "")) // a retransmission
	if tag2, _ := answer().To().Params.Get("tag"); tag2 != tag {
		t.Errorf("retransmission To tag %q, want %q", tag2, tag)
	}
	send(c, testACK(local, "b1", tag))
	send(c, testOptions(local))
	if got := nextPassed(); !strings.HasPrefix(got, "OPTIONS") {
		t.Fatalf("reader got %q first, want the OPTIONS (INVITE answered, ACK absorbed)", got)
	}
	if f.Challenged() != 2 || f.ACKsAbsorbed() != 1 {
		t.Errorf("answered %d, absorbed %d: want 2 and 1", f.Challenged(), f.ACKsAbsorbed())
	}
	for _, msg := range []string{
		testACK(local, "b1", tagPrefix+"0123456789abcdef0123"),       // forged
		testACK(local, "b2", tag),                                    // another transaction's
		testInvite(local, "b3", "Proxy-Authorization: Digest x\r\n"), // credentials
		testInvite(local, "b4", "proxy-authorization : Digest x\r\n"),
	} {
		send(c, msg)
		first, _, _ := strings.Cut(msg, "\r\n")
		if got := nextPassed(); got != first {
			t.Errorf("reader got %q, want %q", got, first)
		}
	}
	trusted := dial("127.0.0.2")
	send(trusted, testInvite(trusted.LocalAddr().String(), "b5", ""))
	if got := nextPassed(); !strings.HasPrefix(got, "INVITE") {
		t.Errorf("reader got %q, want the trusted source's INVITE", got)
	}
	if f.Challenged() != 2 || f.ACKsAbsorbed() != 1 {
		t.Errorf("answered %d, absorbed %d: want still 2 and 1", f.Challenged(), f.ACKsAbsorbed())
	}
}
