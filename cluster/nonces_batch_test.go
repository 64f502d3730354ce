package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/cluster/redistest"
)

// Counts checked by many callers at once share pipelines: each caller
// still gets its own answer (a first count accepted, its replay refused,
// through either node).
func TestNonceCountsConcurrent(t *testing.T) {
	r := redistest.Start(t)
	na, nb := twoNodesNonces(t, r)
	const callers = 64
	nonces := make([]string, callers)
	for i := range nonces {
		nonces[i] = na.New()
	}
	_, exp := na.Check(nonces[0])
	round := func(name string, nc uint32, want bool) {
		t.Helper()
		got := make([]bool, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := na
				if i%2 == 1 {
					n = nb
				}
				// Every caller sends its nonce's count twice: at most
				// one of the two accepted.
				x, errx := n.Accept(nonces[i], nc, exp)
				y, erry := n.Accept(nonces[i], nc, exp)
				if errx != nil || erry != nil {
					t.Errorf("%s: caller %d: %v, %v", name, i, errx, erry)
				}
				got[i] = x || y
				if x && y {
					t.Errorf("%s: caller %d: the same count accepted twice", name, i)
				}
			}()
		}
		wg.Wait()
		for i, g := range got {
			if g != want {
				t.Errorf("%s: caller %d: got %v, want %v", name, i, g, want)
			}
		}
	}
	// nc 1 takes the scripts' shortcut (SET NX), higher counts the script.
	round("first count", 1, true)
	round("first count replayed", 1, false)
	round("third count", 3, true)
	round("third count replayed", 3, false)
	round("second count after the third", 2, false)
	if na.Errors()+nb.Errors() != 0 {
		t.Errorf("got %d errors, want 0", na.Errors()+nb.Errors())
	}
}

// Redis restarted (empty, its scripts gone): the check loads the script
// again instead of failing, and a fresh nonce is accepted.
func TestNonceCountsAfterRedisRestart(t *testing.T) {
	r := redistest.Start(t)
	a := open(t, r, "a")
	ctx := context.Background()
	key, err := a.RandomSecret(ctx, cluster.SecretNonceKey, 32)
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.Nonces(ctx, key, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, unused, unused2 := n.New(), n.New(), n.New()
	_, exp := n.Check(old)
	if ok, err := n.Accept(old, 1, exp); !ok || err != nil {
		t.Fatalf("first count: %v, %v; want accepted", ok, err)
	}
	r.Stop()
	r.Restart()
	wait(t, "redis answers", 5*time.Second, func() bool { return a.Ping(ctx) == nil })
	accepted := func(nonce string, nc uint32, exp time.Time) bool {
		t.Helper()
		ok, err := n.Accept(nonce, nc, exp)
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		return ok
	}
	// Its counts lost with the epoch: even a first count is refused.
	if accepted(unused, 1, exp) {
		t.Error("a first count of the lost epoch accepted")
	}
	if accepted(old, 2, exp) {
		t.Error("a count of the lost epoch accepted")
	}
	fresh := n.New()
	_, exp = n.Check(fresh)
	if !accepted(fresh, 1, exp) {
		t.Error("a fresh nonce refused after the restart")
	}
	// The cluster is on a new epoch now: a first count of the old one is
	// still refused.
	if accepted(unused2, 1, exp) {
		t.Error("a first count of the old epoch accepted in the new one")
	}
	if got := n.Errors(); got != 0 {
		t.Errorf("got %d errors (NOSCRIPT not handled?), want 0", got)
	}
}
