package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// A store file cut short (a backup copied in part, a disk that filled) is
// refused by CheckFile (restore) and Open (serve) with ErrCutShort: bbolt
// maps the file and read the missing pages as a SIGBUS, which crashed
// both. A file cut only in the space bbolt grew ahead of its pages is
// still whole.
func TestCutShortRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	db, err := store.Open(path, store.Options{NoSync: true, BindingFlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "user" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Enabled: true,
			Realm: "r", HA1: map[string]string{"MD5": "0123456789abcdef0123456789abcdef"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(path); err != nil {
		t.Fatalf("the whole file: %v", err)
	}
	// bbolt grows its file ahead of its pages: the last byte is unused,
	// and a file cut there is whole for the check.
	tail := filepath.Join(dir, "tail.db")
	if err := os.WriteFile(tail, whole[:len(whole)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(tail); err != nil {
		t.Errorf("cut in the unused tail: %v", err)
	}
	for _, n := range []int{3 * 4096, 8 * 4096} {
		cut := filepath.Join(dir, "cut.db")
		if err := os.WriteFile(cut, whole[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := store.CheckFile(cut); !errors.Is(err, store.ErrCutShort) {
			t.Errorf("CheckFile of %d of %d bytes: %v, want ErrCutShort", n, len(whole), err)
		}
		if db, err := store.Open(cut, store.Options{NoSync: true}); !errors.Is(err, store.ErrCutShort) {
			if err == nil {
				_ = db.Close()
			}
			t.Errorf("Open of %d of %d bytes: %v, want ErrCutShort", n, len(whole), err)
		}
	}
}
