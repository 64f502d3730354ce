package auth_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
)

func TestCheckConnectionACL(t *testing.T) {
	clk := newClock()
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	trunk, err := db.CreateConnection(store.Connection{Name: "pbx", Active: true, AllowedCIDRs: []string{"192.0.2.0/24", "2001:db8::/32"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []store.Credential{
		{Username: "pbx1", ConnectionID: trunk.ID, Enabled: true},
		{Username: "roamer", ConnectionID: store.DefaultConnectionID, Enabled: true},
		{Username: "off", ConnectionID: trunk.ID, Enabled: false},
	} {
		c.Realm, c.HA1 = realm, ha1s(c.Username)
		if _, err := db.CreateCredential(c); err != nil {
			t.Fatal(err)
		}
	}
	nonces, err := digest.NewNonces([]byte("0123456789abcdef0123456789abcdef"), 5*time.Minute, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Realm: realm, Algorithms: []digest.Algorithm{digest.MD5}, QOP: []string{"auth"},
		Nonce: nonces, Count: auth.LocalCounts(digest.NewCountsFor(nonces, 1024, clk.now)), Now: clk.now, Connections: db,
	}, db)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, pass, source string
		want               auth.Outcome
	}{
		{"pbx1", pw, "192.0.2.10:5060", auth.OK},
		{"pbx1", pw, "[2001:db8:5::1]:5061", auth.OK},
		{"pbx1", pw, "[::ffff:192.0.2.77]:5060", auth.OK},
		{"pbx1", pw, "198.51.100.1:5060", auth.ACLDenied},
		{"pbx1", pw, "", auth.ACLDenied}, // no source: fail closed
		{"pbx1", "wrong-password!", "198.51.100.1:5060", auth.Mismatch},
		{"off", pw, "198.51.100.1:5060", auth.Disabled},
		{"roamer", pw, "198.51.100.1:5060", auth.OK}, // no allow-list
	}
	for _, tc := range cases {
		res := a.Check(auth.Request{Method: "REGISTER", Source: tc.source,
			Authorization: []string{answer(tc.user, tc.pass, nonces.New(), digest.MD5, 1)}})
		if res.Outcome != tc.want {
			t.Errorf("%s from %q: got %v, want %v", tc.user, tc.source, res.Outcome, tc.want)
		}
	}
	// The right password from outside the allow-list, answering with a
	// count already used or after the nonce expired: refused as with a
	// fresh nonce, never a new challenge (stale=true) that a wrong
	// password does not get.
	nonce := nonces.New()
	replayed := answer("pbx1", pw, nonce, digest.MD5, 1)
	if res := a.Check(auth.Request{Method: "REGISTER", Source: "192.0.2.10:5060", Authorization: []string{replayed}}); res.Outcome != auth.OK {
		t.Fatalf("pbx1 inside its allow-list: %v", res.Outcome)
	}
	if res := a.Check(auth.Request{Method: "REGISTER", Source: "198.51.100.1:5060", Authorization: []string{replayed}}); res.Outcome != auth.ACLDenied {
		t.Errorf("replayed count from outside the allow-list: %v, want acl", res.Outcome)
	}
	clk.add(6 * time.Minute)
	if res := a.Check(auth.Request{Method: "REGISTER", Source: "198.51.100.1:5060", Authorization: []string{answer("pbx1", pw, nonce, digest.MD5, 2)}}); res.Outcome != auth.ACLDenied {
		t.Errorf("stale nonce from outside the allow-list: %v, want acl", res.Outcome)
	}
	if !auth.ACLDenied.Failure() || auth.ACLDenied.String() != "acl" {
		t.Errorf("ACLDenied: Failure %v, String %q; want true, acl", auth.ACLDenied.Failure(), auth.ACLDenied.String())
	}
}
