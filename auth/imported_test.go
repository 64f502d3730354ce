package auth_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
)

// TestChallengesOnlyWithHA1: a credential imported with only an MD5 HA1
// (a Kamailio subscriber row) is challenged with MD5 alone, and with the
// server's whole list once its password changes.
func TestChallengesOnlyWithHA1(t *testing.T) {
	clk := newClock()
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	imported, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "kam", Enabled: true, Realm: realm,
		HA1: map[string]string{"MD5": digest.HA1(digest.MD5, "kam", realm, pw)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "alice", Enabled: true, Realm: realm, HA1: ha1s("alice")}); err != nil {
		t.Fatal(err)
	}
	nonces, err := digest.NewNonces([]byte("0123456789abcdef0123456789abcdef"), 5*time.Minute, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Realm: realm, Algorithms: []digest.Algorithm{digest.SHA256, digest.MD5}, QOP: []string{"auth"},
		Nonce: nonces, Count: auth.LocalCounts(digest.NewCountsFor(nonces, 1024, clk.now)), Now: clk.now,
	}, db)
	if err != nil {
		t.Fatal(err)
	}
	algs := func(user string) string {
		var out []string
		for _, ch := range a.Challenges(user, false, false) {
			_, rest, _ := strings.Cut(ch, "algorithm=")
			alg, _, _ := strings.Cut(rest, ",")
			out = append(out, alg)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct{ user, want string }{
		{"kam", "MD5"},
		{"alice", "SHA-256,MD5"},
		{"nobody", "SHA-256,MD5"},
	} {
		if got := algs(tc.user); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.user, got, tc.want)
		}
	}
	if got := a.Check(auth.Request{Method: "REGISTER", Authorization: []string{answer("kam", pw, nonces.New(), digest.MD5, 1)}}).Outcome; got != auth.OK {
		t.Fatalf("kam with MD5: %v, want OK", got)
	}
	if _, err := db.UpdateCredential(imported.ID, func(c *store.Credential) error { c.HA1 = ha1s("kam"); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := algs("kam"); got != "SHA-256,MD5" {
		t.Errorf("kam after a password change: got %s, want SHA-256,MD5", got)
	}
}
