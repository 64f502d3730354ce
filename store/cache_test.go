package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/sipwarden/sipwarden/store"
)

// TestCredentialCacheFollowsWrites: lookups by username see every write at
// once (the cache never serves a record older than the last commit).
func TestCredentialCacheFollowsWrites(t *testing.T) {
	db := open(t, store.Options{})
	alice := cred(store.DefaultConnectionID, "alice")
	alice.HA1 = map[string]string{"MD5": "aa"}
	c, err := db.CreateCredential(alice)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second read comes from the cache
		got, err := db.CredentialByUsername("alice")
		if err != nil || got.HA1["MD5"] != "aa" {
			t.Fatalf("read: %+v %v", got, err)
		}
	}
	if _, err := db.UpdateCredential(c.ID, func(c *store.Credential) error {
		c.HA1 = map[string]string{"MD5": "bb"}
		c.Enabled = false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.CredentialByUsername("alice")
	if err != nil || got.HA1["MD5"] != "bb" || got.Enabled {
		t.Fatalf("after the update: %+v %v", got, err)
	}
	if _, err := db.DeleteCredential(c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CredentialByUsername("alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
}

// TestCredentialCacheConcurrentWrites races readers against password
// changes: once UpdateCredential returned, no reader sees the old value.
func TestCredentialCacheConcurrentWrites(t *testing.T) {
	db := open(t, store.Options{})
	bob := cred(store.DefaultConnectionID, "bob")
	bob.HA1 = map[string]string{"MD5": "v0"}
	c, err := db.CreateCredential(bob)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := db.CredentialByUsername("bob"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 200 {
		want := "v" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err := db.UpdateCredential(c.ID, func(c *store.Credential) error {
			c.HA1 = map[string]string{"MD5": want}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := db.CredentialByUsername("bob")
		if err != nil || got.HA1["MD5"] != want {
			close(stop)
			wg.Wait()
			t.Fatalf("write %d: read %q after the update returned, want %q (%v)", i, got.HA1["MD5"], want, err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestConnectionCacheFollowsWrites: a connection's allow-list change and
// its removal are seen by the next read (the auth path's ACL check).
func TestConnectionCacheFollowsWrites(t *testing.T) {
	db := open(t, store.Options{})
	c, err := db.CreateConnection(store.Connection{Name: "pbx", Active: true, AllowedCIDRs: []string{"192.0.2.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second read comes from the cache
		got, err := db.Connection(c.ID)
		if err != nil || len(got.AllowedCIDRs) != 1 || got.AllowedCIDRs[0] != "192.0.2.0/24" {
			t.Fatalf("read: %+v %v", got, err)
		}
	}
	if _, err := db.UpdateConnection(c.ID, func(c *store.Connection) error {
		c.AllowedCIDRs = []string{"198.51.100.7/32"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Connection(c.ID)
	if err != nil || len(got.AllowedCIDRs) != 1 || got.AllowedCIDRs[0] != "198.51.100.7/32" {
		t.Fatalf("after the update: %+v %v", got, err)
	}
	// A write to another record (a credential) also makes the entry stale,
	// and the read after it still finds the connection.
	if _, err := db.CreateCredential(cred(c.ID, "carol")); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Connection(c.ID); err != nil || got.ID != c.ID {
		t.Fatalf("after a credential write: %+v %v", got, err)
	}
	if _, err := db.DeleteCredential(mustCredID(t, db, "carol")); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteConnection(c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Connection(c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
}

func mustCredID(t *testing.T, db *store.DB, username string) string {
	t.Helper()
	c, err := db.CredentialByUsername(username)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}
