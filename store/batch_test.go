package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

func TestCreateCredentialsAllOrNothing(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	mk := func(u string) store.Credential {
		return store.Credential{ConnectionID: store.DefaultConnectionID, Username: u, Enabled: true, Realm: "r", HA1: map[string]string{"MD5": "00"}}
	}
	if _, err := db.CreateCredential(mk("taken")); err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateCredentials([]store.Credential{mk("a"), mk("b"), mk("taken")})
	var be *store.BatchError
	if !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, store.ErrUsernameTaken) {
		t.Fatalf("got %v, want a BatchError at 2 wrapping ErrUsernameTaken", err)
	}
	if _, err := db.CredentialByUsername("a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a after a failed batch: got %v, want not found", err)
	}
	out, err := db.CreateCredentials([]store.Credential{mk("a"), mk("b")})
	if err != nil || len(out) != 2 || out[0].ID == "" || out[1].Username != "b" {
		t.Fatalf("got %+v, %v", out, err)
	}
	if c, err := db.CredentialByUsername("b"); err != nil || c.ID != out[1].ID {
		t.Fatalf("b: got %+v, %v", c, err)
	}
}

func TestBackupOpens(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "s.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "alice", Enabled: true, Realm: "r", HA1: map[string]string{"MD5": "00"}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var size int64
	n, err := db.Backup(&buf, func(n int64) { size = n })
	if err != nil || n != int64(buf.Len()) || n == 0 || size != n {
		t.Fatalf("backup: %d bytes (buffer %d), %v", n, buf.Len(), err)
	}
	// The live file is still open and locked; the copy opens on its own.
	path := filepath.Join(dir, "copy.db")
	if err := writeFile(path, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Fatalf("check the copy: %v", err)
	}
	if _, err := cp.CredentialByUsername("alice"); err != nil {
		t.Fatalf("alice in the copy: %v", err)
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

func TestRestore(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "data", store.FileName)
	db, err := store.Open(live, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "alice", Enabled: true, Realm: "r", HA1: map[string]string{"MD5": "00"}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := db.Backup(&buf, nil); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "b.db")
	if err := writeFile(backup, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(backup); err != nil {
		t.Fatalf("CheckFile of a good backup: %v", err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// The live file is held: refused.
	if _, err := store.Restore(backup, live, now); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("restore over a held file: got %v, want ErrLocked", err)
	}
	if _, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "bob", Enabled: true, Realm: "r", HA1: map[string]string{"MD5": "00"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	prev, err := store.Restore(backup, live, now)
	if err != nil || prev != live+".pre-restore-20260102T030405Z" {
		t.Fatalf("restore: prev %q, %v", prev, err)
	}
	db, err = store.Open(live, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CredentialByUsername("alice"); err != nil {
		t.Errorf("alice after restore: %v", err)
	}
	if _, err := db.CredentialByUsername("bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob (created after the backup) after restore: got %v, want not found", err)
	}
	// A file that is not a database is refused.
	junk := filepath.Join(dir, "junk.db")
	if err := writeFile(junk, bytes.Repeat([]byte("x"), 8192)); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(junk); err == nil {
		t.Error("CheckFile of junk: no error")
	}
	if _, err := store.Restore(junk, filepath.Join(dir, "other", store.FileName), now); err == nil {
		t.Error("restore of junk: no error")
	}
}
