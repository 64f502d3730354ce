package admission_test

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/reply"
)

type nopTx struct{ sip.ServerTransaction }

func (nopTx) Respond(*sip.Response) error { return nil }

// BenchmarkAdmit is the admission rules' cost per request on the path
// every REGISTER takes: the User-Agent deny list, source parsing, the ban
// check and the in-flight bound.
func BenchmarkAdmit(b *testing.B) {
	g := guard.New(guard.Config{})
	gate := admission.NewGate(g, admission.GateConfig{UserAgentDeny: []string{"friendly-scanner", "sipcli", "sipvicious"}})
	limit := admission.NewLimit(10000, reply.Builder{}, nil, nil)
	handled := 0
	h := admission.Chain(func(*sip.Request, sip.ServerTransaction) { handled++ }, gate.Middleware, limit.Middleware)
	raw := "REGISTER sip:sipwarden.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nTo: <sip:alice@sipwarden.test>\r\n" +
		"Call-ID: bench\r\nCSeq: 2 REGISTER\r\nContact: <sip:alice@192.0.2.10:5060>\r\n" +
		"User-Agent: Zoiper rv2.10.20.4_2\r\n" +
		`Authorization: Digest username="alice", realm="sipwarden.test", nonce="abc", uri="sip:sipwarden.test", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="x"` + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	req := msg.(*sip.Request)
	req.SetSource("192.0.2.10:5060")
	var tx sip.ServerTransaction = nopTx{}
	b.ReportAllocs()
	for b.Loop() {
		h(req, tx)
	}
	if handled == 0 {
		b.Fatal("refused")
	}
}
