package registrar

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
)

// TestOnEventFansOut checks that every function added with OnEvent sees
// every event, in order: metrics and the guard both listen.
func TestOnEventFansOut(t *testing.T) {
	r, _ := newTestRegistrar(t)
	var got []string
	r.OnEvent(func(ev Event) { got = append(got, "first:"+ev.Outcome.String()) })
	r.OnEvent(func(ev Event) { got = append(got, "second:"+ev.Outcome.String()) })
	raw := "REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n" +
		"To: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nCall-ID: a@b\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:alice@127.0.0.1:5070>;expires=60\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	req.SetSource("127.0.0.1:5070")
	req.SetTransport("UDP")
	if res := r.Handle(req); res == nil || res.StatusCode != 401 {
		t.Fatalf("got %v, want a 401 challenge", res)
	}
	ch := auth.NoCredentials.String()
	want := []string{"first:" + ch, "second:" + ch}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}
