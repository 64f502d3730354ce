package api_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
)

var readFile = os.ReadFile

func ha1(t *testing.T, alg, user, realm, password string) string {
	t.Helper()
	a, err := digest.ParseAlgorithm(alg)
	if err != nil {
		t.Fatal(err)
	}
	return digest.HA1(a, user, realm, password)
}

func TestAdminKeyFile(t *testing.T) {
	dir := t.TempDir()
	db := openStore(t, dir)
	keyFile := filepath.Join(dir, "admin.key")
	logs := &syncBuffer{}
	newServer := func() {
		t.Helper()
		logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if _, err := api.New(api.Config{Realm: testRealm, AdminKeyFile: keyFile, Lifecycle: noLifecycle(db)}, db, &fakeLocations{}, logger); err != nil {
			t.Fatalf("api.New: %v", err)
		}
	}
	newServer()
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode: got %o, want 600", mode)
	}
	key := readKey(t, keyFile)
	if !regexp.MustCompile(`^swk_[^_]+_[A-Za-z0-9_-]{43}$`).MatchString(key) {
		t.Errorf("key %q does not read swk_<id>_<43 base64url characters>", key)
	}
	if l := logs.String(); !strings.Contains(l, keyFile) || strings.Contains(l, key) || strings.Contains(l, key[len(key)-43:]) {
		t.Errorf("log must name %s and not hold the key:\n%s", keyFile, l)
	}
	// The store keeps a hash only.
	keys, err := db.APIKeys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("api keys: %v %v", keys, err)
	}
	if strings.Contains(string(keys[0].Hash), key[len(key)-43:]) || len(keys[0].Hash) != 32 {
		t.Errorf("stored hash %x: want 32 bytes of SHA-256", keys[0].Hash)
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".admin-key") {
			t.Errorf("left behind %s", e.Name())
		}
	}

	// A second start keeps the key.
	newServer()
	if got := readKey(t, keyFile); got != key {
		t.Errorf("second start replaced the key")
	}
	if keys, _ := db.APIKeys(); len(keys) != 1 {
		t.Errorf("second start: got %d keys, want 1", len(keys))
	}
}

func TestConfiguredKeyWritesNoFile(t *testing.T) {
	dir := t.TempDir()
	db := openStore(t, dir)
	keyFile := filepath.Join(dir, "admin.key")
	if _, err := api.New(api.Config{Realm: testRealm, AdminKeyFile: keyFile, AdminKey: testAdminKey, Lifecycle: noLifecycle(db)}, db, &fakeLocations{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("key file written although a key is configured: %v", err)
	}
	if keys, _ := db.APIKeys(); len(keys) != 0 {
		t.Errorf("got %d stored keys, want 0", len(keys))
	}
}

func TestNoKeyAtAll(t *testing.T) {
	db := openStore(t, t.TempDir())
	if _, err := api.New(api.Config{Realm: testRealm, Lifecycle: noLifecycle(db)}, db, &fakeLocations{}, nil); err == nil {
		t.Fatal("New without key file nor key: got nil error")
	}
}

func TestKeyFileUnwritable(t *testing.T) {
	dir := t.TempDir()
	db := openStore(t, dir)
	bad := filepath.Join(dir, "file")
	if err := os.WriteFile(bad, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A path below a regular file cannot be created.
	if _, err := api.New(api.Config{Realm: testRealm, AdminKeyFile: filepath.Join(bad, "admin.key"), Lifecycle: noLifecycle(db)}, db, &fakeLocations{}, nil); err == nil {
		t.Fatal("got nil error")
	}
	if keys, _ := db.APIKeys(); len(keys) != 0 {
		t.Errorf("a key nobody can read was kept: %d keys", len(keys))
	}
}

// noLifecycle is a Keeper over an empty location table.
func noLifecycle(db *store.DB) api.Lifecycle {
	return lifecycle.New(&fakeLocations{}, nil, db, nil, nil)
}
