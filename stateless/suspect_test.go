package stateless

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// request is an OPTIONS (or another method) from 127.0.0.1:5070 with
// branch, its CSeq line and extra header lines in place of the usual.
func request(method, branch, cseq, extra string) string {
	return crlf(method + " sip:bob@b SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=" + branch + ";rport\nMax-Forwards: 70\n" +
		"From: \"A <x>\" <sip:a@b>;tag=1\nTo: <sip:bob@b>\nCall-ID: c-" + branch + "\n" + cseq + "\n" + extra + "User-Agent: probe\nContent-Length: 0\n\n")
}

// The scan suspects each fault it is meant to see, and sipgo's parser
// refuses each of those (so an answered request would have been dropped);
// well-formed requests are not suspected (they cost no second parse).
func TestSuspectAgreesWithSipgo(t *testing.T) {
	p := sip.NewParser()
	for _, c := range []struct {
		name, msg string
		bad       bool
	}{
		{"OPTIONS", request("OPTIONS", "b1", "CSeq: 1 OPTIONS", ""), false},
		{"BYE with compact headers", strings.Replace(request("BYE", "b2", "CSeq: 7 BYE", "m: <sip:a@[::1]:5060>\n"), "Call-ID:", "i:", 1), false},
		{"INVITE with a body", strings.Replace(request("INVITE", "b3", "CSeq: 1 INVITE", "Content-Type: application/sdp\n"), "Content-Length: 0\r\n\r\n", "Content-Length: 5\r\n\r\nv=0\r\n", 1), false},
		{"quoted brackets", request("OPTIONS", "b4", "CSeq: 1 OPTIONS", "Contact: \"x>\\\"<\" <sip:a@b>\n"), false},
		{"CSeq not a number", request("OPTIONS", "b5", "CSeq: abc OPTIONS", ""), true},
		{"CSeq without method", request("OPTIONS", "b6", "CSeq: 1", ""), true},
		{"CSeq over 2^31-1", request("OPTIONS", "b7", "CSeq: 2147483648 OPTIONS", ""), true},
		{"Max-Forwards", strings.Replace(request("OPTIONS", "b8", "CSeq: 1 OPTIONS", ""), "Max-Forwards: 70", "Max-Forwards: seventy", 1), true},
		{"Content-Length", strings.Replace(request("OPTIONS", "b9", "CSeq: 1 OPTIONS", ""), "Content-Length: 0", "Content-Length: 0x0", 1), true},
		{"body shorter than Content-Length", strings.Replace(request("OPTIONS", "b10", "CSeq: 1 OPTIONS", ""), "Content-Length: 0", "Content-Length: 10", 1), true},
		{"empty Call-ID", strings.Replace(request("OPTIONS", "b11", "CSeq: 1 OPTIONS", ""), "Call-ID: c-b11", "Call-ID: ", 1), true},
		{"line without colon", request("OPTIONS", "b12", "CSeq: 1 OPTIONS", "nocolon\n"), true},
		{"Contact <<<>>>", request("OPTIONS", "b13", "CSeq: 1 OPTIONS", "Contact: <<<>>>\n"), true},
		{"IPv6 host unclosed", request("OPTIONS", "b14", "CSeq: 1 OPTIONS", "Contact: <sip:a@[::1>\n"), true},
		{"Request-URI without scheme", strings.Replace(request("OPTIONS", "b16", "CSeq: 1 OPTIONS", ""), "sip:bob@b", "bob", 1), true},
		{"quoted comma, tel URI, two Vias on a line", strings.Replace(request("OPTIONS", "b17", "CSeq: 1 OPTIONS", "Via: SIP/2.0/TCP h1;branch=z9hG4bKx , sip / 2.0 / UDP h2\n"),
			"From: \"A <x>\"", "From: \"Bell, A\" <tel:+15551234>", 1), false},
		{"space after the version", strings.Replace(request("OPTIONS", "b18", "CSeq: 1 OPTIONS", ""), "SIP/2.0\r\n", "SIP/2.0  \r\n", 1), true},
		{"space in the Request-URI", strings.Replace(request("INVITE", "b19", "CSeq: 1 INVITE", ""), "sip:bob@b", "sip:bob@b; lr", 1), true},
		{"Request-URI in angle brackets", strings.Replace(request("INVITE", "b20", "CSeq: 1 INVITE", ""), "sip:bob@b SIP", "<sip:bob@b> SIP", 1), true},
		{"Request-URI scheme with a dot", strings.Replace(request("OPTIONS", "b21", "CSeq: 1 OPTIONS", ""), "sip:bob@b", "soap.beep://192.0.2.103:3002", 1), true},
		{"space inside To's brackets", strings.Replace(request("OPTIONS", "b22", "CSeq: 1 OPTIONS", ""), "To: <sip:bob@b>", "To: < sip:bob@b >", 1), true},
		{"empty Via values", request("OPTIONS", "b24", "CSeq: 1 OPTIONS", "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n"), true},
		{"empty Via", request("OPTIONS", "b25", "CSeq: 1 OPTIONS", "Via: \n"), true},
		{"CR inside a line", request("OPTIONS", "b26", "CSeq: 1 OPTIONS", "Subject: a\rInjected: b\n"), true},
		{"HTTP version", strings.Replace(request("OPTIONS", "b27", "CSeq: 1 OPTIONS", ""), "SIP/2.0\r\n", "HTTP/1.1\r\n", 1), true},
		{"tabs in the request line", strings.Replace(request("OPTIONS", "b28", "CSeq: 1 OPTIONS", ""), "OPTIONS sip:bob@b SIP/2.0", "OPTIONS\tsip:bob@b\tSIP/2.0", 1), true},
		{"lower-case version", strings.Replace(request("OPTIONS", "b29", "CSeq: 1 OPTIONS", ""), "SIP/2.0\r\n", "sip/2.0\r\n", 1), false},
	} {
		got := suspect([]byte(c.msg))
		_, err := p.ParseSIP([]byte(c.msg))
		switch {
		case got != c.bad:
			t.Errorf("%s: suspect %v, want %v", c.name, got, c.bad)
		case c.bad && err == nil:
			t.Errorf("%s: sipgo parses it; the case does not test a malformation", c.name)
		case !c.bad && err != nil:
			t.Errorf("%s: sipgo refuses the well-formed case: %v", c.name, err)
		}
	}
}

// A malformed request other than a REGISTER, over UDP, is answered 400
// naming the fault; an ACK and a response never are (sipgo gets them), nor
// is a source the admission gate refuses; a well-formed request reaches
// sipgo.
func TestMalformedRequestsAnswered(t *testing.T) {
	u := newUDPFront(t, func(*sip.Request, sip.ServerTransaction) {}, Config{
		Admit: func(req *sip.Request) bool {
			ua := req.GetHeader("User-Agent")
			return ua == nil || ua.Value() != "denied"
		},
	})
	bad := request("OPTIONS", "z9hG4bKbad", "CSeq: abc OPTIONS", "")
	ack := request("ACK", "z9hG4bKack", "CSeq: x ACK", "")
	denied := strings.Replace(request("BYE", "z9hG4bKdenied", "CSeq: 1", ""), "User-Agent: probe", "User-Agent: denied", 1)
	response := crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKres\nCSeq: abc INVITE\nContent-Length: 0\n\n")
	good := request("OPTIONS", "z9hG4bKgood", "CSeq: 1 OPTIONS", "")
	u.send(t, ack, denied, response, bad, good)
	res := u.answers(t, 1)["z9hG4bKbad"]
	for _, want := range []string{
		"SIP/2.0 400 Malformed CSeq Header\r\n",
		"\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbad;rport=",
		";received=127.0.0.1\r\n",
		"\r\nTo: <sip:bob@b>;tag=",
		"\r\nCall-ID: c-z9hG4bKbad\r\n",
		"\r\nCSeq: abc OPTIONS\r\n",
	} {
		if !strings.Contains(res, want) {
			t.Errorf("answer lacks %q:\n%s", want, res)
		}
	}
	// The reader handles datagrams in order: once the good one reached
	// sipgo, the ones before it were decided.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		n := len(u.passed)
		u.mu.Unlock()
		if n >= 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	u.mu.Lock()
	passed := strings.Join(u.passed, "")
	u.mu.Unlock()
	for _, m := range []string{ack, response, good} {
		if !strings.Contains(passed, m) {
			t.Errorf("not handed to sipgo:\n%s", m)
		}
	}
	if strings.Contains(passed, "z9hG4bKdenied") || strings.Contains(passed, "z9hG4bKbad") {
		t.Errorf("a malformed request answered or refused here also reached sipgo")
	}
	_ = u.cli.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := u.cli.Read(make([]byte, 4096)); err == nil {
		t.Errorf("a second answer came (the denied source's, the ACK's or the response's?): %d bytes", n)
	}
}

// Over TCP a malformed request is answered 400 on its connection, which
// stays open: the next request on it reaches sipgo.
func TestMalformedRequestKeepsStream(t *testing.T) {
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{})
	t.Cleanup(f.Close)
	c, passed := tcpFront(t, f)
	bad := strings.ReplaceAll(request("INVITE", "z9hG4bKbad", "CSeq: 1 INVITE", ""), "Max-Forwards: 70", "Max-Forwards: -1")
	good := strings.ReplaceAll(request("OPTIONS", "z9hG4bKgood", "CSeq: 2 OPTIONS", ""), "SIP/2.0/UDP", "SIP/2.0/TCP")
	if _, err := c.Write([]byte(bad + good)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "SIP/2.0 400 Malformed Max-Forwards Header\r\n" {
		t.Fatalf("answer %q (%v), want 400 Malformed Max-Forwards Header", line, err)
	}
	select {
	case got := <-passed:
		if got != good {
			t.Fatalf("sipgo read %q, want the OPTIONS after the malformed INVITE", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the OPTIONS after the malformed INVITE never reached sipgo")
	}
}

func BenchmarkSuspect(b *testing.B) {
	msg := []byte(strings.Replace(request("INVITE", "z9hG4bK-524287-1", "CSeq: 2 INVITE",
		"Contact: <sip:alice@127.0.0.1:5070>\nProxy-Authorization: Digest username=\"alice\", realm=\"r\", nonce=\"abcdef\", uri=\"sip:bob@b\", response=\"0123456789abcdef0123456789abcdef\"\nContent-Type: application/sdp\n"),
		"Content-Length: 0\r\n\r\n", "Content-Length: 5\r\n\r\nv=0\r\n", 1))
	b.ReportAllocs()
	for b.Loop() {
		if suspect(msg) {
			b.Fatal("suspected")
		}
	}
}

// Whatever the bytes, the scan does not panic, and a 400 the front would
// send is one message: nothing copied from the request ends its header
// section early or adds a line.
func FuzzSuspect(f *testing.F) {
	f.Add([]byte(request("OPTIONS", "b1", "CSeq: abc OPTIONS", "")))
	f.Add([]byte(request("BYE", "b2", "CSeq: 1 BYE", "Contact: <sip:a@[::1>\n")))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("INVITE sip:a SIP/2.0\r\nVia: x\r\n y\r\nl: 9\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:a\r\nVia: SIP/2.0/UDP h;rport\r\nSubject: a\rb\r\n\r\n"))
	p := sip.NewParser()
	f.Fuzz(func(t *testing.T, msg []byte) {
		if !suspect(msg) {
			return
		}
		if _, err := p.ParseSIP(msg); err == nil {
			return
		}
		m, ok := diagnose(msg)
		if !ok {
			return
		}
		out := m.response("127.0.0.1:5060", "UDP").String()
		if i := strings.Index(out, "\r\n\r\n"); i != len(out)-4 {
			t.Fatalf("the 400 is not one message:\n%q", out)
		}
		if strings.Count(out, "\n") != strings.Count(out, "\r\n") || strings.Count(out, "\r") != strings.Count(out, "\r\n") {
			t.Fatalf("a bare LF or CR in the 400:\n%q", out)
		}
	})
}

// tcpFront serves f on a loopback TCP listener, reads what reaches sipgo
// on the one connection accepted (as sipgo would) into passed, and
// returns a client connected to it.
func tcpFront(t *testing.T, f *Front) (c net.Conn, passed chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := f.Listener(ln, "TCP")
	t.Cleanup(func() { _ = wl.Close() })
	passed = make(chan string, 4)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			passed <- string(buf[:n])
		}
	}()
	if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, passed
}
