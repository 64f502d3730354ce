package sipcheck

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestHasLineBreak(t *testing.T) {
	cases := []struct {
		raw  string
		want bool
	}{
		{"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", false},
		{"REGISTER :00 SIP\r\nT:0\n0<:00>\r\n\r\n", true}, // found by FuzzRegister: LF in a display name
		{"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-Note: a\nb\r\nCSeq: 1 REGISTER\r\n\r\n", true},
		// A NUL, and a header without a name: no field holds either.
		{"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: a\x00b\r\nCSeq: 1 REGISTER\r\n\r\n", true},
		{"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n: nameless\r\nCSeq: 1 REGISTER\r\n\r\n", true},
		{"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: tab\there\r\nCSeq: 1 REGISTER\r\n\r\n", false},
	}
	p := sip.NewParser()
	for _, tc := range cases {
		m, err := p.ParseSIP([]byte(tc.raw))
		if err != nil {
			t.Fatalf("parse %q: %v", tc.raw, err)
		}
		if got := HasLineBreak(m.(*sip.Request)); got != tc.want {
			t.Errorf("HasLineBreak(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func BenchmarkHasLineBreak(b *testing.B) {
	raw := "REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nTo: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nCall-ID: a@b\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:5070>;expires=60\r\nAuthorization: Digest username=\"alice\", realm=\"sipwarden.test\", nonce=\"n\", uri=\"sip:127.0.0.1\", response=\"00000000000000000000000000000000\", qop=auth, nc=00000001, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n"
	m, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if HasLineBreak(m.(*sip.Request)) {
			b.Fatal("found a line break")
		}
	}
}

func TestHasLineBreakEveryField(t *testing.T) {
	// Each case puts a bare LF into a different parsed field.
	parsed := 0
	for _, line := range []string{
		"To: \"a\nb\" <sip:a@b>",
		"To: <sip:a\nb@b>",
		"From: <sip:a@b;x=1\n2>;tag=1",
		"From: <sip:a@b>;tag=1\n2",
		"Contact: <sip:a@h>;expires=6\n0",
		"Contact: <sip:a@h?X=1\n2>",
		"Via: SIP/2.0/UDP h;branch=z9hG4bK1\nx",
		"Call-ID: a\nb",
		"Route: <sip:p;lr\n>",
		"Record-Route: <sip:p\n;lr>",
		"Content-Type: application/sdp\nX",
		"X-Anything: a\nb",
	} {
		raw := "REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK0\r\nCSeq: 1 REGISTER\r\n" + line + "\r\n\r\n"
		m, err := sip.NewParser().ParseSIP([]byte(raw))
		if err != nil {
			continue // the parser refusing it is as good
		}
		parsed++
		if !HasLineBreak(m.(*sip.Request)) {
			t.Errorf("%q: line break not found", line)
		}
	}
	if parsed < 8 {
		t.Errorf("only %d of the cases parsed: the test no longer reaches the checker", parsed)
	}
}
