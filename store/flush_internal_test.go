package store

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A failed flush keeps its bindings pending, unless a newer save of the
// same AOR replaced them, and the next flush writes them. The failure is
// made by closing the bbolt file under the DB, which no caller can do:
// hence a white-box test.
func TestFlushFailureKeepsPending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	var results []error
	db, err := Open(path, Options{NoSync: true, BindingFlushInterval: time.Hour, OnBindingFlush: func(_ int, _ time.Duration, err error) {
		results = append(results, err)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	exp := time.Now().Add(time.Hour)
	set := func(id string) []Binding { return []Binding{{ID: id, Expires: exp}} }

	db.SaveBindings("alice", set("old"))
	db.SaveBindings("bob", set("b1"))
	if err := db.bolt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.FlushBindings(); err == nil {
		t.Fatal("FlushBindings on a closed file: got nil error")
	}
	db.SaveBindings("alice", set("new")) // newer than the failed batch
	db.SaveBindings("carol", set("c1"))
	if db.bolt, err = bolt.Open(path, 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.FlushBindings(); err != nil {
		t.Fatalf("FlushBindings after the file is back: %v", err)
	}
	if len(results) != 2 || results[0] == nil || results[1] != nil {
		t.Fatalf("OnBindingFlush errors = %v, want a failure then a success", results)
	}
	bs, err := db.LoadBindings(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bs {
		got = append(got, b.AOR+"/"+b.ID)
	}
	if want := []string{"alice/new", "bob/b1", "carol/c1"}; !slices.Equal(got, want) {
		t.Fatalf("LoadBindings = %v, want %v", got, want)
	}
}
