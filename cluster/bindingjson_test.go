package cluster

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// appendBinding's JSON decodes to what json.Marshal's does, for bindings
// with every field set or empty and strings holding what JSON escapes
// (quotes, backslashes, control characters, HTML's <>&, U+2028, invalid
// UTF-8).
func TestAppendBinding(t *testing.T) {
	odd := []string{"", "plain", `q"uo\te`, "<sip:alice@192.0.2.1;transport=tcp>", "a&b", "tab\tnl\nnul\x00\x1f", "é ünï 日本", "bad\xff\xfeutf8", "\u2028\u2029", "\xe6\x97"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return odd[rng.IntN(len(odd))] }
	at := time.Date(2026, 12, 6, 15, 4, 5, 123456789, time.UTC)
	for i := range 2000 {
		b := store.Binding{
			ID: pick(), AOR: pick(), CredentialID: pick(), Contact: pick(), Source: pick(), Transport: pick(),
			LocalAddr: pick(), CallID: pick(), CSeq: rng.Uint32(), UserAgent: pick(), InstanceID: pick(), RegID: pick(),
			Expires:      at.Add(time.Duration(rng.Int64N(int64(time.Hour)))),
			RegisteredAt: at.Add(-time.Duration(rng.Int64N(int64(time.Hour)))).In(time.FixedZone("x", 3600)),
		}
		if i%2 == 0 {
			b.UpdatedAt = at.Truncate(time.Second)
		}
		if i%3 == 0 {
			b.TokenIssuedAt = at.Add(-time.Hour)
		}
		var got, want store.Binding
		if err := json.Unmarshal(appendBinding(nil, b), &got); err != nil {
			t.Fatalf("%q: %v", appendBinding(nil, b), err)
		}
		std, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("binding %+v:\nappendBinding decodes to %+v\njson.Marshal decodes to   %+v", b, got, want)
		}
	}
}

func BenchmarkAppendBinding(b *testing.B) {
	x := store.Binding{ID: "b3f1c2d4e5f60718", AOR: "user00042", CredentialID: "c0123456789abcdef", Contact: "sip:user00042@127.0.0.1:5061;transport=udp",
		Source: "127.0.0.1:5061", Transport: "udp", LocalAddr: "127.0.0.1:5060", CallID: "1-12345@127.0.0.1", CSeq: 2,
		Expires: time.Now().Add(time.Hour), UserAgent: "sipp", RegisteredAt: time.Now(), UpdatedAt: time.Now()}
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = appendBinding(buf[:0], x)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(x)
		}
	})
}
