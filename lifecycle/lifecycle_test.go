package lifecycle_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
)

// ended records what a Keeper removed and ended.
type ended struct {
	mu    sync.Mutex
	aors  []string
	calls []string
	syncs int
}

func (e *ended) Sync() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.syncs++
	return nil
}

func (e *ended) RemoveWhere(aor string, drop func(store.Binding) bool) []store.Binding {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.aors = append(e.aors, aor)
	return []store.Binding{{AOR: aor}}
}

func (e *ended) EndCredential(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, id)
	return 1
}

func (e *ended) got() ([]string, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.aors...), append([]string(nil), e.calls...)
}

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func create(t *testing.T, db *store.DB, user string, expires time.Time) store.Credential {
	t.Helper()
	c, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: user,
		Enabled: true, Realm: "r", HA1: map[string]string{"MD5": "00"}, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEndRemovesBindingsAndCalls(t *testing.T) {
	var e ended
	k := lifecycle.New(&e, &e, openStore(t), nil, nil)
	var hooked []lifecycle.Reason
	k.OnEnded(func(_ store.Credential, r lifecycle.Reason, gone []store.Binding) {
		if len(gone) == 1 && gone[0].AOR == "alice" {
			hooked = append(hooked, r)
		}
	})
	k.End(store.Credential{ID: "c1", Username: "alice"}, lifecycle.Deleted)
	aors, calls := e.got()
	if len(aors) != 1 || aors[0] != "alice" || len(calls) != 1 || calls[0] != "c1" {
		t.Fatalf("got bindings of %v and calls of %v removed; want alice's and c1's", aors, calls)
	}
	if len(hooked) != 1 || hooked[0] != lifecycle.Deleted {
		t.Errorf("OnEnded: got %v, want [deleted]", hooked)
	}
}

// TestExpiryEndsCredential: a credential whose expires_at passes is ended
// by the Keeper's own timer; one given a later expiry before then, or one
// deleted, is not.
func TestExpiryEndsCredential(t *testing.T) {
	db := openStore(t)
	var e ended
	k := lifecycle.New(&e, &e, db, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go k.Run(ctx)

	now := time.Now()
	soon := create(t, db, "soon", now.Add(150*time.Millisecond))
	later := create(t, db, "later", now.Add(100*time.Millisecond))
	gone := create(t, db, "gone", now.Add(100*time.Millisecond))
	never := create(t, db, "never", time.Time{})
	for _, c := range []store.Credential{soon, later, gone, never} {
		k.Watch(c)
	}
	// "later" gets an hour more, "gone" is deleted, before their expiries.
	c, err := db.UpdateCredential(later.ID, func(c *store.Credential) error { c.ExpiresAt = now.Add(time.Hour); return nil })
	if err != nil {
		t.Fatal(err)
	}
	k.Watch(c)
	if _, err := db.DeleteCredential(gone.ID); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(3 * time.Second)
	for {
		aors, _ := e.got()
		if len(aors) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything else due would have ended by now
	aors, calls := e.got()
	if len(aors) != 1 || aors[0] != "soon" || len(calls) != 1 || calls[0] != soon.ID {
		t.Fatalf("ended: bindings of %v, calls of %v; want only soon's", aors, calls)
	}
}

func TestWatchOfPassedExpiryEndsAtOnce(t *testing.T) {
	var e ended
	k := lifecycle.New(&e, nil, openStore(t), nil, nil)
	k.Watch(store.Credential{ID: "c1", Username: "old", ExpiresAt: time.Now().Add(-time.Second)})
	if aors, _ := e.got(); len(aors) != 1 || aors[0] != "old" {
		t.Fatalf("got %v, want old's bindings removed at once", aors)
	}
}
