package proxy

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// The relayed copy drops only the top Via, keeps every other header in
// order with the body, and leaves the received response as it was.
func TestUpstreamCopy(t *testing.T) {
	raw := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsw.1, SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKa\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.3:5064;branch=z9hG4bKb\r\n" +
		"Record-Route: <sip:127.0.0.1:5060;lr>\r\n" +
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:b@10.0.0.9>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
	res := parseResponse(t, raw)
	before := res.String()

	out := upstreamCopy(res, true)
	want := strings.Replace(raw, "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsw.1, ", "", 1)
	if got, want := out.String(), parseResponse(t, want).String(); got != want {
		t.Errorf("relayed\n%s\nwant\n%s", got, want)
	}
	if res.String() != before {
		t.Errorf("the received response changed:\n%s", res.String())
	}
	if v := out.Via(); v == nil || v.Host != "10.0.0.2" {
		t.Errorf("top Via of the copy %v, want 10.0.0.2", v)
	}
	if got := upstreamCopy(res, false).String(); got != before {
		t.Errorf("copy without dropping\n%s\nwant\n%s", got, before)
	}
}

func parseResponse(t *testing.T, raw string) *sip.Response {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	res, ok := msg.(*sip.Response)
	if !ok {
		t.Fatalf("parsed %T, want a response", msg)
	}
	return res
}
