package store_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

var t0 = time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)

func binding(aor, id string, expires time.Time) store.Binding {
	return store.Binding{
		ID: id, AOR: aor, CredentialID: "cred-" + aor, Contact: "<sip:" + aor + "@192.0.2.1:5060>",
		Source: "192.0.2.1:5060", Transport: "udp", CallID: "call-" + id, CSeq: 1,
		Expires: expires, RegisteredAt: t0, UpdatedAt: t0,
	}
}

// flushes records the OnBindingFlush calls.
type flushes struct {
	mu    sync.Mutex
	calls []int
	ch    chan int
}

func newFlushes() *flushes { return &flushes{ch: make(chan int, 100)} }

func (f *flushes) hook(n int, _ time.Duration, err error) {
	if err != nil {
		n = -1
	}
	f.mu.Lock()
	f.calls = append(f.calls, n)
	f.mu.Unlock()
	select {
	case f.ch <- n:
	default:
	}
}

func (f *flushes) get() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.calls...)
}

func ids(bs []store.Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.AOR+"/"+b.ID)
	}
	return out
}

func TestBindingsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	// The flusher never runs on its own here: Close must flush.
	db := openAt(t, path, store.Options{BindingFlushInterval: time.Hour})
	alice := []store.Binding{binding("alice", "a1", t0.Add(time.Hour)), binding("alice", "a2", t0.Add(2*time.Hour))}
	bob := []store.Binding{binding("bob", "b1", t0.Add(time.Hour))}
	db.SaveBindings("bob", bob)
	db.SaveBindings("alice", alice)
	mustClose(t, db)

	db = openAt(t, path, store.Options{})
	got, err := db.LoadBindings(t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]store.Binding{}, alice...), bob...); !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadBindings = %v, want %v (grouped by AOR in order)", ids(got), ids(want))
	}
}

func TestSaveBindings(t *testing.T) {
	exp := t0.Add(time.Hour)
	tests := []struct {
		name  string
		saves func(db *store.DB)
		want  []string
	}{
		{"latest per aor wins", func(db *store.DB) {
			db.SaveBindings("alice", []store.Binding{binding("alice", "a1", exp)})
			db.SaveBindings("alice", []store.Binding{binding("alice", "a2", exp), binding("alice", "a3", exp)})
			db.SaveBindings("bob", []store.Binding{binding("bob", "b1", exp)})
		}, []string{"alice/a2", "alice/a3", "bob/b1"}},
		{"nil deletes", func(db *store.DB) {
			db.SaveBindings("alice", []store.Binding{binding("alice", "a1", exp)})
			_ = db.FlushBindings()
			db.SaveBindings("alice", nil)
		}, nil},
		{"empty deletes", func(db *store.DB) {
			db.SaveBindings("alice", []store.Binding{binding("alice", "a1", exp)})
			_ = db.FlushBindings()
			db.SaveBindings("alice", []store.Binding{})
		}, nil},
		{"delete then save", func(db *store.DB) {
			db.SaveBindings("alice", nil)
			db.SaveBindings("alice", []store.Binding{binding("alice", "a1", exp)})
		}, []string{"alice/a1"}},
		{"stored under the aor given", func(db *store.DB) {
			db.SaveBindings("alice", []store.Binding{binding("", "a1", exp), binding("mallory", "a2", exp)})
		}, []string{"alice/a1", "alice/a2"}},
		{"caller's slice is copied", func(db *store.DB) {
			bs := []store.Binding{binding("alice", "a1", exp)}
			db.SaveBindings("alice", bs)
			bs[0].ID = "changed"
		}, []string{"alice/a1"}},
		{"invalid aors do not stop a flush", func(db *store.DB) {
			db.SaveBindings("", []store.Binding{binding("", "x", exp)})
			db.SaveBindings(string(make([]byte, 40000)), []store.Binding{binding("", "y", exp)})
			db.SaveBindings("bob", []store.Binding{binding("bob", "b1", exp)})
		}, []string{"bob/b1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			db := openAt(t, path, store.Options{BindingFlushInterval: time.Hour})
			tc.saves(db)
			if err := db.FlushBindings(); err != nil {
				t.Fatalf("FlushBindings: %v", err)
			}
			mustCheck(t, db)
			mustClose(t, db)
			db = openAt(t, path, store.Options{})
			got, err := db.LoadBindings(t0)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); !reflect.DeepEqual(g, tc.want) {
				t.Fatalf("LoadBindings = %v, want %v", g, tc.want)
			}
		})
	}
}

func TestLoadBindingsDropsExpired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := openAt(t, path, store.Options{BindingFlushInterval: time.Hour})
	db.SaveBindings("alice", []store.Binding{
		binding("alice", "gone", t0.Add(-time.Second)),
		binding("alice", "edge", t0), // expiring at now is expired
		binding("alice", "kept", t0.Add(time.Second)),
	})
	db.SaveBindings("bob", []store.Binding{binding("bob", "gone", t0.Add(-time.Hour))})
	db.SaveBindings("carol", []store.Binding{binding("carol", "kept", t0.Add(time.Hour))})

	got, err := db.LoadBindings(t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alice/kept", "carol/kept"}
	if g := ids(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("LoadBindings = %v, want %v", g, want)
	}
	mustCheck(t, db)
	mustClose(t, db)

	// They were deleted, not just skipped: an earlier now does not bring
	// them back.
	db = openAt(t, path, store.Options{})
	got, err = db.LoadBindings(t0.Add(-24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(got); !reflect.DeepEqual(g, want) {
		t.Fatalf("LoadBindings after reopen = %v, want %v", g, want)
	}
}

func TestFlushBindings(t *testing.T) {
	f := newFlushes()
	db := open(t, store.Options{BindingFlushInterval: time.Hour, OnBindingFlush: f.hook})
	if err := db.FlushBindings(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		db.SaveBindings("alice", []store.Binding{binding("alice", fmt.Sprint(i), t0.Add(time.Hour))})
	}
	db.SaveBindings("bob", nil)
	if err := db.FlushBindings(); err != nil {
		t.Fatal(err)
	}
	if err := db.FlushBindings(); err != nil {
		t.Fatal(err)
	}
	// One flush of two coalesced AORs; the empty flushes are not reported.
	if got, want := f.get(), []int{2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("flushes = %v, want %v", got, want)
	}
	got, err := db.LoadBindings(t0)
	if err != nil {
		t.Fatal(err)
	}
	if g, want := ids(got), []string{"alice/99"}; !reflect.DeepEqual(g, want) {
		t.Fatalf("LoadBindings = %v, want %v", g, want)
	}
}

func TestBindingFlusherRuns(t *testing.T) {
	f := newFlushes()
	db := open(t, store.Options{BindingFlushInterval: 10 * time.Millisecond, OnBindingFlush: f.hook})
	db.SaveBindings("alice", []store.Binding{binding("alice", "a1", t0.Add(time.Hour))})
	select {
	case n := <-f.ch:
		if n != 1 {
			t.Fatalf("background flush wrote %d AORs, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no background flush within 5s")
	}
	// Nothing is pending any more: FlushBindings has nothing to report.
	if err := db.FlushBindings(); err != nil {
		t.Fatal(err)
	}
	if got := f.get(); len(got) != 1 {
		t.Fatalf("flushes = %v, want one", got)
	}
}

func TestSaveBindingsAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := openAt(t, path, store.Options{})
	mustClose(t, db)
	db.SaveBindings("alice", []store.Binding{binding("alice", "a1", t0.Add(time.Hour))}) // must not panic or block
	db = openAt(t, path, store.Options{})
	if got, err := db.LoadBindings(t0); err != nil || len(got) != 0 {
		t.Fatalf("LoadBindings = %v, %v; want none", ids(got), err)
	}
}

// SaveBindings is called with the registrar's locks held: it must return
// while a flush is under way, not wait for it.
func TestSaveBindingsDuringFlush(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	db := open(t, store.Options{BindingFlushInterval: time.Hour, OnBindingFlush: func(int, time.Duration, error) {
		select {
		case entered <- struct{}{}:
			<-release
		default:
		}
	}})
	defer close(release)
	exp := t0.Add(time.Hour)
	db.SaveBindings("alice", []store.Binding{binding("alice", "a1", exp)})
	go func() { _ = db.FlushBindings() }()
	<-entered // the flush holds its lock until release

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			db.SaveBindings(fmt.Sprintf("user%d", i), []store.Binding{binding("", "b", exp)})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SaveBindings waited for a flush in progress")
	}
}
