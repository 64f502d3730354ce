package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// TestOnCommit checks that every committed record write is reported once,
// and a write rolled back by a domain error is not.
func TestOnCommit(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []error
	)
	db := open(t, store.Options{OnCommit: func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if d <= 0 {
			t.Errorf("commit duration %v, want > 0", d)
		}
		calls = append(calls, err)
	}})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }
	base := count() // Open may write an API key or the schema: not through update
	if _, err := db.CreateCredential(cred(store.DefaultConnectionID, "alice")); err != nil {
		t.Fatal(err)
	}
	if got := count() - base; got != 1 {
		t.Fatalf("after one credential: got %d commits, want 1", got)
	}
	if _, err := db.CreateCredential(cred(store.DefaultConnectionID, "alice")); !errors.Is(err, store.ErrUsernameTaken) {
		t.Fatalf("duplicate: got %v, want ErrUsernameTaken", err)
	}
	if got := count() - base; got != 1 {
		t.Fatalf("after a rolled-back duplicate: got %d commits, want 1", got)
	}
	if _, err := db.CreateConnection(store.Connection{Name: "trunk"}); err != nil {
		t.Fatal(err)
	}
	if got := count() - base; got != 2 {
		t.Fatalf("after a connection: got %d commits, want 2", got)
	}
	for _, err := range calls {
		if err != nil {
			t.Errorf("commit reported error %v, want nil", err)
		}
	}
}
