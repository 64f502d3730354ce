package registrar

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/digest"
)

const benchRegister = "REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n" +
	"To: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nCall-ID: bench@127.0.0.1\r\n" +
	"CSeq: %d REGISTER\r\nContact: <sip:alice@127.0.0.1:5070>;expires=3600\r\nMax-Forwards: 70\r\nUser-Agent: bench\r\n%sContent-Length: 0\r\n\r\n"

func parseBench(b *testing.B, raw string) *sip.Request {
	b.Helper()
	m, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	req := m.(*sip.Request)
	req.SetSource("127.0.0.1:5070")
	req.SetTransport("UDP")
	return req
}

// BenchmarkRegisterChallenge is the first leg: a REGISTER without
// credentials answered 401 (our code only: the request is parsed once).
func BenchmarkRegisterChallenge(b *testing.B) {
	r, _ := newTestRegistrar(b)
	req := parseBench(b, fmt.Sprintf(benchRegister, 1, ""))
	b.ReportAllocs()
	for b.Loop() {
		if res := r.Handle(req); res.StatusCode != 401 {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkRegisterAuthenticated is the second leg: digest verification,
// the binding update and the 200. Requests are parsed before the timer.
func BenchmarkRegisterAuthenticated(b *testing.B) {
	r, _ := newTestRegistrar(b)
	const batch = 4096
	reqs := make([]*sip.Request, 0, batch)
	var nonce string
	seq, nc := uint32(1), uint32(digest.MaxCount) // CSeq, and the nonce count
	refill := func() {
		reqs = reqs[:0]
		if nc+batch > digest.MaxCount {
			// A nonce takes at most MaxCount answers: a fresh one, as a
			// client refused at the limit would fetch.
			ch := r.Handle(parseBench(b, fmt.Sprintf(benchRegister, seq, "")))
			nonce = between(ch.GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
			nc = 0
		}
		for range batch {
			seq++
			nc++
			c := digest.Credentials{Username: "alice", Realm: "sipwarden.test", Nonce: nonce, URI: "sip:sipwarden.test",
				QOP: "auth", CNonce: "c", NC: fmt.Sprintf("%08x", nc), NonceCount: nc}
			resp := digest.Response(c, digest.MD5, "REGISTER", digest.HA1(digest.MD5, "alice", "sipwarden.test", "pw-0123456789"), nil)
			authz := fmt.Sprintf("Authorization: Digest username=\"alice\", realm=\"sipwarden.test\", nonce=\"%s\", uri=\"sip:sipwarden.test\", response=\"%s\", algorithm=MD5, qop=auth, nc=%s, cnonce=\"c\"\r\n", nonce, resp, c.NC)
			reqs = append(reqs, parseBench(b, fmt.Sprintf(benchRegister, seq, authz)))
		}
	}
	refill()
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if i == len(reqs) {
			b.StopTimer()
			refill()
			i = 0
			b.StartTimer()
		}
		if res := r.Handle(reqs[i]); res.StatusCode != 200 {
			b.Fatalf("status %d %s", res.StatusCode, res.Reason)
		}
		i++
	}
}

func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(after, end)
	return v
}
