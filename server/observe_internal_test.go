package server

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// TestFailedCommitNotReady: a failed store commit (a full disk) takes
// readiness away until a commit of its kind succeeds; /readyz said ready
// while every write failed.
func TestFailedCommitNotReady(t *testing.T) {
	o, err := newObserver(&logControl{}, slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"store", "sip", "server"} {
		o.ready.Ready(c) // whatever the observer waits for at start
	}
	base := o.ready.Reasons()
	opts := o.storeOptions(store.Options{})
	opts.OnCommit(time.Millisecond, errors.New("write sipwarden.db: no space left on device"))
	opts.OnBindingFlush(10, time.Millisecond, errors.New("write sipwarden.db: no space left on device"))
	got := o.ready.Reasons()
	for _, want := range []string{"store.records: the last commit failed: write sipwarden.db: no space left on device", "store.bindings: the last commit failed: write sipwarden.db: no space left on device"} {
		if !slices.Contains(got, want) {
			t.Errorf("reasons %q lack %q", got, want)
		}
	}
	// A bindings flush that succeeds (the disk has room again) clears
	// both: records are committed only on API writes.
	opts.OnBindingFlush(10, time.Millisecond, nil)
	if got := o.ready.Reasons(); !slices.Equal(got, base) {
		t.Errorf("after a successful flush: %q, want %q", got, base)
	}
}
