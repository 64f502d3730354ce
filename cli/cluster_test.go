package cli

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/store"
)

// TestClusterMigrate: a single node's records go into Redis and come back
// into another data dir, byte for byte.
func TestClusterMigrate(t *testing.T) {
	r := redistest.Start(t)
	src := t.TempDir()
	db, err := store.Open(filepath.Join(src, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "alice", Enabled: true,
		Realm: "example.com", HA1: map[string]string{"MD5": "0123456789abcdef0123456789abcdef"}})
	if err != nil {
		t.Fatal(err)
	}
	// A running server holds the file: refused.
	var out, errb strings.Builder
	if code := Run([]string{"cluster", "migrate", r.URL(), "--data-dir", src}, strings.NewReader(""), &out, &errb); code == exitOK {
		t.Fatalf("migrate while the store is open: exit 0, want a refusal")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := Run([]string{"cluster", "migrate", r.URL(), "--data-dir", src}, strings.NewReader(""), &out, &errb); code != exitOK {
		t.Fatalf("migrate: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "records copied") {
		t.Errorf("migrate said %q", out.String())
	}
	dst := t.TempDir()
	out.Reset()
	if code := Run([]string{"cluster", "migrate", r.URL(), "--back", "--data-dir", dst}, strings.NewReader(""), &out, &errb); code != exitOK {
		t.Fatalf("migrate --back: exit %d: %s", code, errb.String())
	}
	back, err := store.Open(filepath.Join(dst, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	got, err := back.CredentialByUsername("alice")
	if err != nil || got.ID != c.ID || got.HA1["MD5"] != c.HA1["MD5"] {
		t.Fatalf("alice back: got %+v %v, want %+v", got, err, c)
	}
	if _, err := back.CredentialByUsername("bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob: %v, want not found", err)
	}
}
