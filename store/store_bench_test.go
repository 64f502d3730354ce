package store_test

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// -store.bindings sets how many bindings BenchmarkLoadBindings loads; try
// 1000000 for the size a large registrar restarts with.
var benchBindings = flag.Int("store.bindings", 100_000, "bindings for BenchmarkLoadBindings")

// writeBindings stores n bindings, one per AOR ("user0000000"...), that
// expire at exp, with SaveBindings and one FlushBindings: the path the
// registrar takes, in one transaction.
func writeBindings(tb testing.TB, db *store.DB, n int, exp time.Time) {
	tb.Helper()
	now := exp.Add(-time.Hour)
	for i := range n {
		aor := fmt.Sprintf("user%07d", i)
		db.SaveBindings(aor, []store.Binding{{
			ID: fmt.Sprintf("b%07d", i), AOR: aor, CredentialID: "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
			Contact:   "<sip:" + aor + "@198.51.100.7:52342;transport=udp;rinstance=1a2b3c4d5e6f7a8b>",
			Source:    "198.51.100.7:52342",
			Transport: "udp", LocalAddr: "203.0.113.1:5060",
			CallID: "a84b4c76e66710-" + aor, CSeq: 1826,
			Expires: exp, UserAgent: "Zoiper rv2.10.20.3", RegisteredAt: now, UpdatedAt: now,
		}})
	}
	if err := db.FlushBindings(); err != nil {
		tb.Fatal(err)
	}
}

func TestWriteBindingsHelper(t *testing.T) {
	db := open(t, store.Options{})
	writeBindings(t, db, 1000, t0.Add(time.Hour))
	bs, err := db.LoadBindings(t0)
	if err != nil || len(bs) != 1000 {
		t.Fatalf("LoadBindings = %d bindings, %v; want 1000", len(bs), err)
	}
	mustCheck(t, db)
}

func BenchmarkCredentialByUsername(b *testing.B) {
	db := open(b, store.Options{})
	const n = 10_000
	users := make([]string, n)
	for i := range users {
		c := cred(store.DefaultConnectionID, fmt.Sprintf("user%05d", i))
		c.HA1 = map[string]string{
			"MD5":         "939e7578ed9e3c518a452acee763bce9",
			"SHA-256":     "7987c8bc6e9b3dc36fbcb7ed2fd1d9f5a14cfcfe9e1db00f5c5e2a0a3a8b1d0c",
			"SHA-512-256": "6b1d0e0a76d0d6d4c6e0f7b3b0d52b4a2a2c4fa39b4d5e2a9c62b3b9fd2a3a44",
		}
		if _, err := db.CreateCredential(c); err != nil {
			b.Fatal(err)
		}
		users[i] = c.Username
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := db.CredentialByUsername(users[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCredentialByUsernameParallel(b *testing.B) {
	db := open(b, store.Options{})
	if _, err := db.CreateCredential(cred(store.DefaultConnectionID, "alice")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.CredentialByUsername("alice"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkConnection is the allow-list read of every authenticated
// request: from the cache, as after the first read.
func BenchmarkConnection(b *testing.B) {
	db := open(b, store.Options{})
	c, err := db.CreateConnection(store.Connection{Name: "pbx", Active: true, AllowedCIDRs: []string{"192.0.2.0/24", "198.51.100.0/24"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Connection(c.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveBindings measures what the registrar pays per REGISTER:
// the copy and the map assignment, no I/O.
func BenchmarkSaveBindings(b *testing.B) {
	db := open(b, store.Options{BindingFlushInterval: time.Hour})
	const n = 10_000
	aors := make([]string, n)
	for i := range aors {
		aors[i] = fmt.Sprintf("user%05d", i)
	}
	bs := []store.Binding{binding("alice", "a1", t0.Add(time.Hour)), binding("alice", "a2", t0.Add(time.Hour))}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		db.SaveBindings(aors[i%n], bs)
	}
}

// BenchmarkFlushBindings measures a group commit of 10,000 AORs (each
// op) with fsync, as in production.
func BenchmarkFlushBindings(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "s.db"), store.Options{BindingFlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	const n = 10_000
	bs := []store.Binding{binding("alice", "a1", t0.Add(time.Hour))}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range n {
			db.SaveBindings(fmt.Sprintf("user%05d", (i*n/3+j)%(3*n)), bs)
		}
		b.StartTimer()
		if err := db.FlushBindings(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadBindings(b *testing.B) {
	n := *benchBindings
	db := open(b, store.Options{})
	writeBindings(b, db, n, t0.Add(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		bs, err := db.LoadBindings(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(bs) != n {
			b.Fatalf("loaded %d bindings, want %d", len(bs), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/binding")
}

// BenchmarkCredentialByUnknownUsername: a username with no credential
// costs about what a known one does (BenchmarkCredentialByUsername): the
// miss is cached, so the time of a REGISTER does not tell a prober which
// usernames exist.
func BenchmarkCredentialByUnknownUsername(b *testing.B) {
	db := open(b, store.Options{})
	if _, err := db.CreateCredential(cred(store.DefaultConnectionID, "alice")); err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("nobody%05d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := db.CredentialByUsername(users[i%n]); !errors.Is(err, store.ErrNotFound) {
			b.Fatal(err)
		}
	}
}

// TestUnknownUsernameCacheInvalidated: a username remembered as unknown is
// found once its credential is created.
func TestUnknownUsernameCacheInvalidated(t *testing.T) {
	db := open(t, store.Options{})
	for range 2 {
		if _, err := db.CredentialByUsername("zed"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown zed: %v", err)
		}
	}
	if _, err := db.CreateCredential(cred(store.DefaultConnectionID, "zed")); err != nil {
		t.Fatal(err)
	}
	if c, err := db.CredentialByUsername("zed"); err != nil || c.Username != "zed" {
		t.Fatalf("zed after its creation: %+v %v", c, err)
	}
}

// BenchmarkRoutingLookups: the INVITE path's number and ip connection
// lookups with 10,000 numbers and 100 ip connections, from the in-memory
// index.
func BenchmarkRoutingLookups(b *testing.B) {
	db := open(b, store.Options{NoSync: true})
	for i := range 100 {
		if _, err := db.CreateConnection(store.Connection{Name: "c", Active: true, Kind: store.ConnectionIP,
			AllowedCIDRs: []string{fmt.Sprintf("10.0.%d.0/24", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 10000 {
		if _, err := db.CreateNumber(store.Number{Number: fmt.Sprintf("+1555%07d", i), ConnectionID: store.DefaultConnectionID}); err != nil {
			b.Fatal(err)
		}
	}
	addr := netip.MustParseAddr("10.0.99.7")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := db.AssignedNumber("+15550004242"); !ok {
				b.Fatal("number not found")
			}
			if _, ok := db.PeerConnection(addr); !ok {
				b.Fatal("peer not found")
			}
		}
	})
}
