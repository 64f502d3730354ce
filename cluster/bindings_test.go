package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/store"
)

// Flush writes everything queued, in more than one batch when the queue
// is long, and Load reads it all back.
func TestBindingsFlushLoad(t *testing.T) {
	r := redistest.Start(t)
	c := open(t, r, "a")
	b := c.Bindings(func(string, []store.Binding) {})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	const n = 2500 // three batches
	for i := range n {
		aor := fmt.Sprintf("user%05d", i)
		b.SaveBindings(aor, []store.Binding{{ID: "b" + aor, AOR: aor, Contact: "<sip:" + aor + "@192.0.2.1>", Transport: "udp", Expires: exp}})
	}
	b.SaveBindings("gone", nil) // a deletion in the same flush
	ctx := context.Background()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d bindings, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, x := range got {
		if x.ID != "b"+x.AOR || !x.Expires.Equal(exp) {
			t.Errorf("got %+v, want ID b%s expiring at %v", x, x.AOR, exp)
		}
		seen[x.AOR] = true
	}
	if len(seen) != n {
		t.Errorf("got %d AORs, want %d", len(seen), n)
	}
	if ttl := r.Do("PTTL sipwarden:bind:user00042"); ttl == ":-1" || ttl == ":-2" {
		t.Errorf("PTTL: got %s, want the binding's expiry", ttl)
	}
}
