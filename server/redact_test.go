package server

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestRedactedMessage(t *testing.T) {
	raw := "REGISTER sip:example.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n" +
		"To: <sip:alice@example.test>\r\nFrom: <sip:alice@example.test>;tag=1\r\n" +
		"Call-ID: c1\r\nCSeq: 1 REGISTER\r\n" +
		"AUTHORIZATION: Digest username=\"alice\", response=\"abc\"\r\n" +
		"Proxy-Authorization: Bearer eyJsecret\r\n" +
		"proxy-authorization: Digest response=\"def\"\r\n" +
		"X-Authorization-Note: kept\r\n" +
		"Content-Length: 4\r\n\r\nbody"
	msg, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	got := redactedMessage(msg.(*sip.Request))
	for _, leak := range []string{"abc", "eyJsecret", "def", "username"} {
		if strings.Contains(got, leak) {
			t.Errorf("redacted message holds %q:\n%s", leak, got)
		}
	}
	if n := strings.Count(got, ": [redacted]\r\n"); n != 3 {
		t.Errorf("got %d redacted headers, want 3:\n%s", n, got)
	}
	for _, want := range []string{"REGISTER sip:example.test SIP/2.0\r\n", "Call-ID: c1\r\n", "X-Authorization-Note: kept\r\n", "\r\n\r\nbody"} {
		if !strings.Contains(got, want) {
			t.Errorf("redacted message lacks %q:\n%s", want, got)
		}
	}
}
