package keyfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sipwarden/sipwarden/keyfile"
)

func TestLoadOrCreateHex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "k.key")
	k1, created, err := keyfile.LoadOrCreateHex(path, 32)
	if err != nil || !created || len(k1) != 32 {
		t.Fatalf("first: got %d bytes, created %v, %v; want 32 new bytes", len(k1), created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: got %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, created, err := keyfile.LoadOrCreateHex(path, 32)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second: created %v, %v, same key %v; want the same key read back", created, err, bytes.Equal(k1, k2))
	}
	if err := os.WriteFile(path, []byte("abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyfile.LoadOrCreateHex(path, 32); err == nil {
		t.Error("a 2-byte key was accepted")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (no temporary file left)", len(entries))
	}
}
