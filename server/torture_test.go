package server_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tortureAnswers are the status lines the server answers RFC 4475's
// messages with over UDP, where the answer is about the message's syntax
// (the others are answered by what the request asks: 404, 407...), and
// wsinv's, whose blanks sipgo's own parser misread: "" is no answer (a
// response, or a request without the end of its header section or a Via:
// nobody to answer).
var tortureAnswers = map[string]string{
	"invalid/badaspec.dat":   "SIP/2.0 400 Malformed To Header",
	"invalid/badinv01.dat":   "SIP/2.0 400 Malformed Via Header",
	"invalid/badvers.dat":    "SIP/2.0 505 Version Not Supported",
	"invalid/bext01.dat":     "SIP/2.0 420 Bad Extension",
	"invalid/clerr.dat":      "SIP/2.0 400 Message Shorter Than Content-Length",
	"invalid/insuf.dat":      "SIP/2.0 400 Missing To Header",
	"invalid/ltgtruri.dat":   "SIP/2.0 400 Malformed Request-URI",
	"invalid/lwsruri.dat":    "SIP/2.0 400 Malformed Request Line",
	"invalid/lwsstart.dat":   "SIP/2.0 400 Malformed Request Line",
	"invalid/trws.dat":       "SIP/2.0 400 Malformed Request Line",
	"invalid/mcl01.dat":      "SIP/2.0 400 Duplicate Content-Length Header",
	"invalid/mismatch01.dat": "SIP/2.0 400 CSeq Method Does Not Match",
	"invalid/mismatch02.dat": "SIP/2.0 400 CSeq Method Does Not Match",
	"invalid/multi01.dat":    "SIP/2.0 400 Duplicate CSeq Header",
	"invalid/ncl.dat":        "SIP/2.0 400 Malformed Content-Length Header",
	"invalid/novelsc.dat":    "SIP/2.0 416 Unsupported URI Scheme",
	"invalid/quotbal.dat":    "SIP/2.0 400 Malformed To Header",
	"invalid/scalar02.dat":   "SIP/2.0 400 Malformed CSeq Header",
	"invalid/zeromf.dat":     "SIP/2.0 483 Too Many Hops",
	"invalid/baddn.dat":      "",
	"invalid/test.dat":       "",
	"invalid/bcast.dat":      "",
	"invalid/bigcode.dat":    "",
	"invalid/scalarlg.dat":   "",
	"valid/wsinv.dat":        "SIP/2.0 481 Call/Transaction Does Not Exist", // a To tag: an unknown dialog
	"valid/intmeth.dat":      "SIP/2.0 501 Not Implemented",                 // a method of lower-case letters and punctuation
	"valid/noreason.dat":     "",
	"valid/unreason.dat":     "",
}

// TestTortureMessages sends every RFC 4475 torture message
// (testdata/torture) over UDP and over TCP to a running server: the
// answers about syntax are tortureAnswers' (over TCP, but for what a
// stream frames otherwise); after each message a
// client on another address still registers, and at the end a sipgo
// client registers over both transports.
func TestTortureMessages(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "torture", "*", "*.dat"))
	if err != nil || len(files) < 45 {
		t.Fatalf("torture messages: %d files (%v), want the RFC 4475 set", len(files), err)
	}
	for _, tp := range []string{"udp", "tcp"} {
		// A server each: over the other transport the same messages would
		// be retransmissions of the first run's transactions.
		ts := startServer(t, testConfig(t, t.TempDir()))
		ts.createCredential(t, "alice", pw, nil)
		checker := newRawUA(t, tp, "127.0.0.40", ts.Addr(tp))
		for _, f := range files {
			name := filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
			msg, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch tp {
			case "udp":
				if got, err := udpAnswer(ts.Addr("udp"), msg, tortureAnswers[name]); err != nil {
					t.Fatalf("%s over udp: %v", name, err)
				} else if want, ok := tortureAnswers[name]; ok && got != want {
					t.Errorf("%s over udp: answer %q, want %q", name, got, want)
				}
			case "tcp":
				want, check := tortureAnswers[name]
				switch name {
				case "invalid/clerr.dat":
					want, check = "", true // a stream waits for the rest of the body
				case "invalid/inv2543.dat":
					want, check = "SIP/2.0 400 Missing Content-Length Header", true // RFC 3261 18.3
				}
				if got, err := streamAnswer(ts.Addr("tcp"), msg, want); err != nil {
					t.Fatalf("%s over tcp: %v", name, err)
				} else if check && got != want {
					t.Errorf("%s over tcp: answer %q, want %q", name, got, want)
				}
			}
			if st := checker.register("alice", pw); st != "SIP/2.0 200 OK" {
				t.Fatalf("after %s over %s: REGISTER got %q, want 200 OK", name, tp, st)
			}
		}
		for _, phone := range []string{"udp", "tcp"} {
			wantStatus(t, newPhone(t, ts, phone).register(t, regOpts{user: "alice", pass: pw}), 200)
		}
		if strings.Contains(ts.logs.String(), "panic") {
			t.Error("the server log mentions a panic")
		}
	}
}

// udpAnswer sends msg from a new socket on 127.0.0.41 to addr and returns
// the status line of the answer: within 5 s when one is expected (want
// not ""), else what comes within 200 ms ("" for nothing).
func udpAnswer(addr string, msg []byte, want string) (string, error) {
	d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.0.41")}}
	c, err := d.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return "", err
	}
	wait := 200 * time.Millisecond
	if want != "" {
		wait = 5 * time.Second
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return "", nil // nothing came
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
	return line, nil
}

// streamAnswer sends msg on a new TCP connection from 127.0.0.41 to addr
// and returns the status line of the answer: within 5 s when one is
// expected (want not ""), else what comes within 300 ms ("" for nothing
// or a close).
func streamAnswer(addr string, msg []byte, want string) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.41")}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	wait := 300 * time.Millisecond
	if want != "" {
		wait = 5 * time.Second
	}
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", nil // nothing came, or the connection closed
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}
