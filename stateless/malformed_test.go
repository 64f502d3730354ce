package stateless

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
)

// malformedRegister is a REGISTER with line (CRLF-terminated lines given
// with \n) in place of its CSeq.
func malformedRegister(branch, line string) string {
	return crlf("REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=" + branch + ";rport\nFrom: <sip:a@b>;tag=1\n" +
		"To: <sip:a@b>\nCall-ID: c-" + branch + "\n" + line + "\nUser-Agent: probe\nContent-Length: 0\n\n")
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct{ line, reason string }{
		{"CSeq: abc REGISTER", "Malformed CSeq Header"},
		{"CSeq: 1", "Malformed CSeq Header"},
		{"CSeq: 1 REGISTER\nMax-Forwards: abc", "Malformed Max-Forwards Header"},
		{"CSeq: 1 REGISTER\nm: <<<>>>", "Malformed Contact Header"},
		{"CSeq: 1 REGISTER\nContact: <sip:a@[::1>", "Malformed Contact Header"},
		{"CSeq: 1 REGISTER\nnocolon", "Malformed Header Line"},
		{"CSeq: 1 REGISTER\ni: ", "Malformed Call-ID Header"},
		{"CSeq: 1 REGISTER\nContent-Length: 0x0", "Malformed Content-Length Header"},
		{"CSeq: 1 REGISTER\nX-Folded: a\n b", "Bad Request"}, // folded: well formed
		{"CSeq: 1 REGISTER\nSubject: a\rInjected: b", "Malformed Header Line"},
		{"Subject: x", "Missing CSeq Header"},
	} {
		m, ok := diagnose([]byte(malformedRegister("z9hG4bK1", tc.line)))
		if !ok || m.reason != tc.reason {
			t.Errorf("%q: reason %q (answered %v), want %q", tc.line, m.reason, ok, tc.reason)
		}
	}
	short := strings.Replace(malformedRegister("z9hG4bK1", "CSeq: 1 REGISTER"), "Content-Length: 0", "Content-Length: 10", 1)
	if m, _ := diagnose([]byte(short)); m.reason != "Message Shorter Than Content-Length" {
		t.Errorf("short body: reason %q", m.reason)
	}
	if m, _ := diagnose([]byte(crlf("REGISTER sip:[::1 SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nContent-Length: 0\n\n"))); m.reason != "Malformed Request-URI" {
		t.Errorf("bad Request-URI: reason %q", m.reason)
	}
	for _, tc := range []struct{ line, reason string }{
		{"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0", "Unsupported URI Scheme"}, // 416
		{"OPTIONS <sip:b> SIP/2.0", "Malformed Request-URI"},
		{"OPTIONS sip:b SIP/2.0 ", "Malformed Request Line"},
		{"INVITE sip:b; lr SIP/2.0", "Malformed Request Line"},
		// Answered since a Via says where from; they got nothing before.
		{"OPTIONS sip:b", "Malformed Request Line"},
		{"OPTIONS\tsip:b\tSIP/2.0", "Malformed Request Line"},
		{"OPTIONS sip:b HTTP/1.1", "Malformed Request Line"},
		{"OPTIONS sip:b SIP/2", "Malformed Request Line"},
	} {
		m, ok := diagnose([]byte(crlf(tc.line + "\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nContent-Length: 0\n\n")))
		if !ok || m.reason != tc.reason || (m.code == 416) != (tc.reason == "Unsupported URI Scheme") {
			t.Errorf("%q: %d %q (answered %v), want %q", tc.line, m.code, m.reason, ok, tc.reason)
		}
	}
	for name, msg := range map[string]string{
		"no Via":               crlf("REGISTER sip:b SIP/2.0\nFrom: <sip:a@b>;tag=1\nCSeq: x\nContent-Length: 0\n\n"),
		"empty Via":            crlf("REGISTER sip:b SIP/2.0\nVia: \nCSeq: x\nContent-Length: 0\n\n"),
		"two-part start line":  crlf("REGISTER sip:b\nVia: \nContent-Length: 0\n\n"),
		"no end of headers":    "REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: x\r\n",
		"LF in a copied value": strings.Replace(malformedRegister("z9hG4bK1", "CSeq: abc REGISTER"), "Call-ID: c-", "Call-ID: c\nX: c-", 1),
	} {
		if _, ok := diagnose([]byte(msg)); ok {
			t.Errorf("%s: answered, want dropped", name)
		}
	}
}

// A REGISTER sipgo's parser refuses is answered 400 naming what is
// malformed, with its Vias, From, To (tagged), Call-ID and CSeq as sent;
// a source the admission gate refuses gets nothing.
func TestMalformedRegisterAnswered(t *testing.T) {
	u := newUDPFront(t, func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(reply.FromRequest(req, 200, "OK"))
	}, Config{
		Admit: func(req *sip.Request) bool {
			ua := req.GetHeader("User-Agent")
			return ua == nil || ua.Value() != "denied"
		},
	})
	u.send(t, malformedRegister("z9hG4bKbad", "CSeq: abc REGISTER"))
	res := u.answers(t, 1)["z9hG4bKbad"]
	for _, want := range []string{
		"SIP/2.0 400 Malformed CSeq Header\r\n",
		// RFC 3581 section 4: rport filled from the source, received added.
		"\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbad;rport=",
		";received=127.0.0.1\r\n",
		"\r\nFrom: <sip:a@b>;tag=1\r\n",
		"\r\nTo: <sip:a@b>;tag=",
		"\r\nCall-ID: c-z9hG4bKbad\r\n",
		"\r\nCSeq: abc REGISTER\r\n",
		"\r\nContent-Length: 0\r\n\r\n",
	} {
		if !strings.Contains(res, want) {
			t.Errorf("answer lacks %q:\n%s", want, res)
		}
	}
	// The one worker answers in order: had the denied one been answered,
	// its 400 would come before the well-formed REGISTER's 200.
	u.send(t, strings.Replace(malformedRegister("z9hG4bKdenied", "CSeq: abc REGISTER"), "User-Agent: probe", "User-Agent: denied", 1),
		udpRegister("z9hG4bKgood", false))
	for branch, res := range u.answers(t, 1) {
		if branch != "z9hG4bKgood" || !strings.HasPrefix(res, "SIP/2.0 200 OK\r\n") {
			t.Fatalf("first answer after the denied REGISTER: %s", res)
		}
	}
}

// TestRported: the raw first Via of a malformed request's 400 gets rport
// and received for an empty rport (RFC 3581), and received alone when its
// sent-by is a name or another address than the source (RFC 3261 18.2.1),
// as reply.Received does for a parsed Via.
func TestRported(t *testing.T) {
	const src = "192.0.2.7:5062"
	for via, want := range map[string]string{
		"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport":                 "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport=5062;received=192.0.2.7",
		"SIP/2.0/WS abc.invalid;branch=z9hG4bK1":                          "SIP/2.0/WS abc.invalid;branch=z9hG4bK1;received=192.0.2.7",
		"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.9": "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;received=192.0.2.7, SIP/2.0/UDP 10.0.0.9",
		"SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1":                      "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1",
		"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;received=192.0.2.9":    "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;received=192.0.2.9",
		"SIP/2.0/UDP  [2001:db8::1]:5060;branch=z9hG4bK1":                 "SIP/2.0/UDP  [2001:db8::1]:5060;branch=z9hG4bK1;received=192.0.2.7",
	} {
		if got := rported(via, src); got != want {
			t.Errorf("rported(%q):\n got %q\nwant %q", via, got, want)
		}
	}
}
