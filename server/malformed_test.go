package server_test

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
)

// A malformed request other than a REGISTER, sent to a running server, is
// answered 400 with a reason naming the fault over UDP and TCP, where
// sipgo's parser dropped it (UDP) or closed the connection (TCP). Over TCP
// the connection stays: a REGISTER after it on the same connection is
// answered.
func TestMalformedRequestAnswered(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			u := newRawUA(t, tp, "127.0.0.1", ts.Addr(tp))
			for _, c := range []struct{ method, fault, want string }{
				{"OPTIONS", "CSeq: abc OPTIONS", "SIP/2.0 400 Malformed CSeq Header"},
				{"INVITE", "CSeq: 1 INVITE\r\nMax-Forwards: many", "SIP/2.0 400 Malformed Max-Forwards Header"},
				{"BYE", "CSeq: 2 BYE\r\nContact: <<<>>>", "SIP/2.0 400 Malformed Contact Header"},
				{"MESSAGE", "CSeq: 1 MESSAGE\r\nnocolon", "SIP/2.0 400 Malformed Header Line"},
			} {
				msg := fmt.Sprintf("%s sip:alice@sipwarden.test SIP/2.0\r\n"+
					"Via: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n"+
					"From: <sip:bob@sipwarden.test>;tag=%s\r\nTo: <sip:alice@sipwarden.test>\r\nCall-ID: %s\r\n%s\r\nContent-Length: 0\r\n\r\n",
					c.method, strings.ToUpper(tp), u.local, randHex(8), randHex(4), randHex(8), c.fault)
				if st, raw := u.exchange(msg, 2*time.Second); st != c.want {
					t.Errorf("%s with %q: got %q, want %q\n%s", c.method, c.fault, st, c.want, raw)
				}
			}
			if st := u.register("alice", pw); st != "SIP/2.0 200 OK" {
				t.Fatalf("REGISTER on the same %s socket after the malformed requests: %q", tp, st)
			}
		})
	}
}

// A request longer than sip.max_message_bytes is answered 513 Message Too
// Large, where sipgo dropped it (UDP) or closed the connection without a
// word (TCP): over UDP a REGISTER and an INVITE with a body over the
// limit, after which the socket still registers; over TCP a header
// section announcing a body over the limit (or a Content-Length of 20
// digits), after which the connection is closed (its next message would
// start after a body not read).
func TestOversizedRequestAnswered(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.SIP.MaxMessageBytes = 4096
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	request := func(method, tp, local, extra, body string, length string) string {
		return fmt.Sprintf("%s sip:alice@sipwarden.test SIP/2.0\r\n"+
			"Via: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n"+
			"From: <sip:bob@sipwarden.test>;tag=%s\r\nTo: <sip:alice@sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n%sContent-Length: %s\r\n\r\n%s",
			method, strings.ToUpper(tp), local, randHex(8), randHex(4), randHex(8), method, extra, length, body)
	}
	t.Run("udp", func(t *testing.T) {
		u := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
		body := strings.Repeat("a=x\r\n", 1000)
		for _, msg := range []string{
			request("INVITE", "udp", u.local, "Content-Type: application/sdp\r\n", body, fmt.Sprint(len(body))),
			request("REGISTER", "udp", u.local, "X-Pad: "+strings.Repeat("p", 5000)+"\r\n", "", "0"),
		} {
			if st, raw := u.exchange(msg, 2*time.Second); st != "SIP/2.0 513 Message Too Large" {
				t.Errorf("%d bytes: got %q, want 513\n%s", len(msg), st, raw)
			}
		}
		if st := u.register("alice", pw); st != "SIP/2.0 200 OK" {
			t.Fatalf("REGISTER on the same socket after the oversized requests: %q", st)
		}
	})
	for _, length := range []string{"5000", "100000000000000000000"} {
		t.Run("tcp "+length, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", ts.Addr("tcp"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := request("OPTIONS", "tcp", c.LocalAddr().String(), "", "", length)
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(c) // the answer, then the close
			if err != nil {
				t.Fatalf("read %q: %v (want the connection closed after the answer)", got, err)
			}
			if !strings.HasPrefix(string(got), "SIP/2.0 513 Message Too Large\r\n") {
				t.Fatalf("got %q, want 513", got)
			}
		})
	}
}

// RFC 3261 section 25.1 has CSeq = 1*DIGIT LWS Method, and LWS may be
// several blanks: "CSeq: 2 \t REGISTER" is a REGISTER's CSeq, not a
// method mismatch (sipgo kept the extra blanks in the method, and every
// request so written was answered 400 CSeq Method Does Not Match). Over
// UDP and TCP: a digest REGISTER flow, an OPTIONS to the server and an
// INVITE, all with such CSeqs, are served.
func TestCSeqWithSeveralBlanks(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	blanks := func(msg, method string) string {
		return regexp.MustCompile(`(?m)^CSeq: (\d+) `+method+"\r$").ReplaceAllString(msg, "CSeq: $1 \t  "+method+"\r")
	}
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			u := newRawUA(t, tp, "127.0.0.1", ts.Addr(tp))
			callID := randHex(8)
			msg := blanks(u.registerMsg("alice", callID, 1, "", ""), "REGISTER")
			if !strings.Contains(msg, "CSeq: 1 \t  REGISTER\r\n") {
				t.Fatalf("the test's REGISTER has no blanks in its CSeq:\n%s", msg)
			}
			st, raw := u.exchange(msg, 2*time.Second)
			m := nonceRE.FindStringSubmatch(raw)
			if !strings.HasPrefix(st, "SIP/2.0 401") || m == nil {
				t.Fatalf("first REGISTER: %q, want 401 with a nonce", st)
			}
			if st, raw := u.exchange(blanks(u.registerMsg("alice", callID, 2, digestAuth("alice", pw, m[1]), ""), "REGISTER"), 2*time.Second); st != "SIP/2.0 200 OK" {
				t.Fatalf("REGISTER with credentials: %q, want 200\n%s", st, raw)
			}
			options := fmt.Sprintf("OPTIONS sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\nMax-Forwards: 70\r\n"+
				"From: <sip:alice@sipwarden.test>;tag=%s\r\nTo: <sip:sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n",
				strings.ToUpper(tp), u.local, randHex(8), randHex(4), randHex(8))
			if st, raw := u.exchange(blanks(options, "OPTIONS"), 2*time.Second); st != "SIP/2.0 200 OK" {
				t.Errorf("OPTIONS: %q, want 200\n%s", st, raw)
			}
			if st, raw := u.exchange(blanks(u.inviteMsg("bob", randHex(8), 1, ""), "INVITE"), 2*time.Second); st != "SIP/2.0 407 Proxy Authentication Required" {
				t.Errorf("INVITE: %q, want 407\n%s", st, raw)
			}
		})
	}
}

// TestLowerCaseMethod: methods are case-sensitive (RFC 3261 section 7.1),
// so "options" and "register" are extension methods the server does not
// implement (501), whatever their CSeq says; sipgo's parser upper-cases
// them, and served "options" as OPTIONS.
func TestLowerCaseMethod(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			u := newRawUA(t, tp, "127.0.0.1", ts.Addr(tp))
			request := func(method, cseqMethod string) string {
				return fmt.Sprintf("%s sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\nMax-Forwards: 70\r\n"+
					"From: <sip:alice@sipwarden.test>;tag=%s\r\nTo: <sip:alice@sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 7 %s\r\n"+
					"Contact: <sip:alice@%s>\r\nContent-Length: 0\r\n\r\n",
					method, strings.ToUpper(tp), u.local, randHex(8), randHex(4), randHex(8), cseqMethod, u.local)
			}
			for _, c := range []struct{ method, cseq, want string }{
				{"options", "options", "SIP/2.0 501 Not Implemented"},
				{"options", "OPTIONS", "SIP/2.0 501 Not Implemented"},
				{"Options", "Options", "SIP/2.0 501 Not Implemented"},
				{"register", "register", "SIP/2.0 501 Not Implemented"},
				{"invite", "invite", "SIP/2.0 501 Not Implemented"},
				{"OPTIONS", "options", "SIP/2.0 400 CSeq Method Does Not Match"},
				{"OPTIONS", "OPTIONS", "SIP/2.0 200 OK"},
			} {
				if st, raw := u.exchange(request(c.method, c.cseq), 2*time.Second); st != c.want {
					t.Errorf("%s with CSeq %s: %q, want %q\n%s", c.method, c.cseq, st, c.want, raw)
				}
			}
		})
	}
}

// TestProbedRequestLines: what an outside probe found answered wrongly,
// over UDP and TCP, with nothing logged at ERROR (the connection serves
// each in turn):
//   - a version in another case is SIP/2.0 (RFC 3261 7.1: the answer's is
//     upper case; sipgo echoed "sip/2.0", and refused "Sip/2.0");
//   - a request line that is not three parts with single spaces, or
//     whose version is not SIP, gets 400 Malformed Request Line (they
//     got nothing, or an ERROR);
//   - a request without a CSeq gets 400 Missing CSeq Header (a REGISTER
//     got nothing, an OPTIONS a bare 400 and an ERROR);
//   - a CR inside a header line gets 400 Malformed Header Line;
//   - an OPTIONS to the server that requires an extension gets 420;
//   - the answers made from the header section fill rport and received
//     (RFC 3581 section 4).
func TestProbedRequestLines(t *testing.T) {
	// In the registrar's stateful modes too, where sipgo serves REGISTERs:
	// there the front did not read the sockets, and the stream's
	// connection ended at the first request sipgo refused.
	for _, name := range []string{"udp", "tcp", "udp stateful", "tcp stateful"} {
		tp, mode, _ := strings.Cut(name, " ")
		t.Run(name, func(t *testing.T) {
			ts, logs := quietServerWith(t, func(c *config.Config) {
				if mode != "" {
					c.Registrar.UDPMode, c.Registrar.StreamMode = mode, mode
				}
			})
			u := newRawUA(t, tp, "127.0.0.1", ts.Addr(tp))
			msg := func(line, method, extra string, cseq bool) string {
				var b strings.Builder
				fmt.Fprintf(&b, "%s\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\nMax-Forwards: 70\r\n"+
					"From: <sip:alice@sipwarden.test>;tag=%s\r\nTo: <sip:alice@sipwarden.test>\r\nCall-ID: %s\r\n",
					line, strings.ToUpper(tp), u.local, randHex(8), randHex(4), randHex(8))
				if cseq {
					fmt.Fprintf(&b, "CSeq: 1 %s\r\n", method)
				}
				b.WriteString(extra + "Content-Length: 0\r\n\r\n")
				return b.String()
			}
			for _, c := range []struct {
				name, line, method, extra string
				noCSeq                    bool
				want                      string
			}{
				{name: "lower-case version", line: "OPTIONS sip:sipwarden.test sip/2.0", method: "OPTIONS", want: "SIP/2.0 200 OK"},
				{name: "mixed-case version", line: "OPTIONS sip:sipwarden.test Sip/2.0", method: "OPTIONS", want: "SIP/2.0 200 OK"},
				{name: "HTTP version", line: "OPTIONS sip:sipwarden.test HTTP/1.1", method: "OPTIONS", want: "SIP/2.0 400 Malformed Request Line"},
				{name: "two parts", line: "OPTIONS sip:sipwarden.test", method: "OPTIONS", want: "SIP/2.0 400 Malformed Request Line"},
				{name: "tabs", line: "OPTIONS\tsip:sipwarden.test\tSIP/2.0", method: "OPTIONS", want: "SIP/2.0 400 Malformed Request Line"},
				{name: "REGISTER of two parts", line: "REGISTER sip:sipwarden.test", method: "REGISTER", want: "SIP/2.0 400 Malformed Request Line"},
				{name: "OPTIONS without CSeq", line: "OPTIONS sip:sipwarden.test SIP/2.0", noCSeq: true, want: "SIP/2.0 400 Missing CSeq Header"},
				{name: "REGISTER without CSeq", line: "REGISTER sip:sipwarden.test SIP/2.0", noCSeq: true, want: "SIP/2.0 400 Missing CSeq Header"},
				{name: "CR in a line", line: "OPTIONS sip:sipwarden.test SIP/2.0", method: "OPTIONS", extra: "Subject: a\rInjected: b\r\n", want: "SIP/2.0 400 Malformed Header Line"},
				{name: "CR in a REGISTER's line", line: "REGISTER sip:sipwarden.test SIP/2.0", method: "REGISTER", extra: "Subject: a\rInjected: b\r\n", want: "SIP/2.0 400 Malformed Header Line"},
				{name: "Require", line: "OPTIONS sip:sipwarden.test SIP/2.0", method: "OPTIONS", extra: "Require: x-teleport\r\n", want: "SIP/2.0 420 Bad Extension"},
				{name: "after them", line: "OPTIONS sip:sipwarden.test SIP/2.0", method: "OPTIONS", want: "SIP/2.0 200 OK"},
			} {
				st, raw := u.exchange(msg(c.line, c.method, c.extra, !c.noCSeq), 2*time.Second)
				if st != c.want {
					t.Errorf("%s: %q, want %q\n%s", c.name, st, c.want, raw)
					continue
				}
				if via := header(raw, "Via"); !strings.Contains(via, ";rport=") || !strings.Contains(via, ";received=127.0.0.1") {
					t.Errorf("%s: Via %q, want rport and received filled", c.name, via)
				}
				if c.name == "Require" && header(raw, "Unsupported") != "x-teleport" {
					t.Errorf("Require: Unsupported %q, want x-teleport", header(raw, "Unsupported"))
				}
			}
			if s := logs.String(); strings.Contains(s, "level=ERROR") {
				t.Errorf("logged as an error:\n%s", tail(s, 2000))
			}
		})
	}
}
