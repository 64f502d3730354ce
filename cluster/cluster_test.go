package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/guard"
)

func open(t *testing.T, r *redistest.Server, node string) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cluster.Open(ctx, cluster.Config{URL: r.URL(), Node: node, Advertise: "127.0.0.1:5060"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSecretFirstNodeWins(t *testing.T) {
	r := redistest.Start(t)
	a, b := open(t, r, "a"), open(t, r, "b")
	ctx := context.Background()
	ka, err := a.RandomSecret(ctx, cluster.SecretNonceKey, 32)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.RandomSecret(ctx, cluster.SecretNonceKey, 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ka, kb) || len(ka) != 32 {
		t.Errorf("got %x and %x, want the same 32 bytes", ka, kb)
	}
	// A node configured with another key is refused (strict).
	if _, err := b.Secret(ctx, cluster.SecretNonceKey, bytes.Repeat([]byte{1}, 32), true); err == nil {
		t.Error("a different configured key was accepted")
	}
	if got, err := b.Secret(ctx, cluster.SecretNonceKey, ka, true); err != nil || !bytes.Equal(got, ka) {
		t.Errorf("the same configured key: got %x, %v", got, err)
	}
}

// A nonce count accepted through one node is refused through another, and
// a count of a nonce whose counts Redis lost (FLUSHALL) is refused too:
// the nodes move to a new epoch.
func TestNonceCountsShared(t *testing.T) {
	r := redistest.Start(t)
	na, nb := twoNodesNonces(t, r)
	nonce := na.New()
	st, exp := nb.Check(nonce)
	if st != digest.NonceValid {
		t.Fatalf("node b checks node a's nonce: got %v, want valid", st)
	}
	steps := []struct {
		n    *cluster.Nonces
		nc   uint32
		want bool
	}{
		{na, 1, true}, {nb, 1, false}, {na, 1, false}, {nb, 2, true}, {na, 2, false}, {na, 5, true}, {nb, 4, false},
	}
	for i, s := range steps {
		got, err := s.n.Accept(nonce, s.nc, exp)
		if err != nil || got != s.want {
			t.Errorf("step %d nc=%d: got %v, %v, want %v, nil", i, s.nc, got, err, s.want)
		}
	}
	if got := r.Do("FLUSHALL"); got != "+OK" {
		t.Fatalf("FLUSHALL: %s", got)
	}
	for i, n := range []*cluster.Nonces{na, nb} {
		if ok, err := n.Accept(nonce, 9, exp); ok || err != nil {
			t.Errorf("node %d after the counts were lost: got %v, %v, want false, nil (stale)", i, ok, err)
		}
		if st, _ := n.Check(nonce); st != digest.NonceStale {
			t.Errorf("node %d: the old nonce is %v, want stale", i, st)
		}
	}
	fresh := nb.New()
	_, exp = na.Check(fresh)
	first, _ := na.Accept(fresh, 1, exp)
	again, _ := nb.Accept(fresh, 1, exp)
	if !first || again {
		t.Error("the new epoch's nonce: want accepted once")
	}
	// Redis down: an error, never accepted blindly nor taken for a replay.
	r.Stop()
	if ok, err := nb.Accept(fresh, 7, exp); ok || !errors.Is(err, cluster.ErrUnavailable) {
		t.Errorf("with redis down: got %v, %v, want false and ErrUnavailable", ok, err)
	}
	if nb.Errors() == 0 {
		t.Error("errors not counted")
	}
}

func TestBansShared(t *testing.T) {
	r := redistest.Start(t)
	a, b := open(t, r, "a"), open(t, r, "b")
	cfg := cluster.BanConfig{MaxFailures: 4, Window: time.Minute, BanDuration: time.Minute}
	ga, gb := guard.New(guard.Config{MaxFailures: 4}), guard.New(guard.Config{MaxFailures: 4})
	ba, bb := a.Bans(ga, cfg), b.Bans(gb, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ba.Run(ctx)
	go bb.Run(ctx)
	time.Sleep(100 * time.Millisecond) // subscribed (a missed message is caught up within 5 s anyway)
	scanner := netip.MustParseAddr("192.0.2.9")
	// Two failures on each node: neither guard alone reaches 4.
	for range 2 {
		ga.Failure(scanner, "x", "mismatch")
		ba.Failure(scanner)
		gb.Failure(scanner, "x", "mismatch")
		bb.Failure(scanner)
	}
	wait(t, "banned on both nodes", 3*time.Second, func() bool {
		_, x := ga.Banned(scanner)
		_, y := gb.Banned(scanner)
		return x && y
	})
	// Lifted through b: lifted on a too.
	if ok, err := bb.Lift(scanner); !ok || err != nil {
		t.Errorf("Lift: got %v, %v, want true", ok, err)
	}
	wait(t, "lifted on a", 3*time.Second, func() bool { _, x := ga.Banned(scanner); return !x })
	// A ban a's guard decides alone (its own count) reaches b.
	other := netip.MustParseAddr("192.0.2.10")
	for range 4 {
		ga.Failure(other, "", "mismatch")
	}
	if _, x := ga.Banned(other); !x {
		t.Fatal("a's guard did not ban")
	}
	wait(t, "a's own ban on b", 4*time.Second, func() bool { _, x := gb.Banned(other); return x })
	if got := len(bb.List()); got != 1 {
		t.Errorf("b lists %d bans, want 1", got)
	}
}

func wait(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMembers: a node trusts the addresses of the other live nodes (their
// advertise and listeners, by IP), not its own, not an unspecified
// listener address, not an address no node announced, and no longer
// those of a node whose presence expired.
func TestMembers(t *testing.T) {
	r := redistest.Start(t)
	a := open(t, r, "a")
	ctx := context.Background()
	mk := func(name, advertise string) *cluster.Cluster {
		c, err := cluster.Open(ctx, cluster.Config{URL: r.URL(), Node: name, Advertise: advertise}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	b := mk("b", "192.0.2.20:5060")
	if err := b.Announce(ctx, []string{"127.0.0.21:5060", "0.0.0.0:5061", "[::ffff:127.0.0.22]:5062"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Announce(ctx, []string{"127.0.0.1:5060"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.20", true},        // b's advertise
		{"127.0.0.21", true},        // b's listener
		{"::ffff:127.0.0.21", true}, // the same, mapped
		{"127.0.0.22", true},        // a mapped listener address
		{"0.0.0.0", false},          // an unspecified listener is no source
		{"127.0.0.1", false},        // a's own
		{"127.0.0.23", false},       // nobody's
		{"2001:db8::20", false},     // nobody's
	} {
		if got := a.Member(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Member(%s): got %v, want %v", tc.addr, got, tc.want)
		}
	}
	// c advertises a host name: its addresses are trusted too.
	c := mk("c", "localhost:5070")
	if err := c.Announce(ctx, []string{"127.0.0.31:5060"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Announce(ctx, []string{"127.0.0.1:5060"}); err != nil {
		t.Fatal(err)
	}
	if !a.Member(netip.MustParseAddr("127.0.0.1")) {
		t.Error("Member(127.0.0.1): false, want true (c advertises localhost)")
	}
	if !a.Member(netip.MustParseAddr("127.0.0.31")) {
		t.Error("Member(127.0.0.31): false, want true (c's listener)")
	}
	c.Close()
	if got := r.Do("DEL sipwarden:alive:c"); got != ":1" {
		t.Fatalf("DEL c's presence: %s", got)
	}
	// b dies: once its presence key is gone, the next refresh drops it.
	if got := r.Do("DEL sipwarden:alive:b"); got != ":1" {
		t.Fatalf("DEL b's presence: %s", got)
	}
	if err := a.Announce(ctx, []string{"127.0.0.1:5060"}); err != nil {
		t.Fatal(err)
	}
	if a.Member(netip.MustParseAddr("127.0.0.21")) {
		t.Error("b's address still trusted after its presence expired")
	}
	if a.Member(netip.MustParseAddr("127.0.0.1")) {
		t.Error("c's resolved address still trusted after its presence expired")
	}
}

// twoNodesNonces opens two nodes on r and returns their nonces, with the
// key the first stored.
func twoNodesNonces(t *testing.T, r *redistest.Server) (na, nb *cluster.Nonces) {
	t.Helper()
	a, b := open(t, r, "a"), open(t, r, "b")
	ctx := context.Background()
	key, err := a.RandomSecret(ctx, cluster.SecretNonceKey, 32)
	if err != nil {
		t.Fatal(err)
	}
	if na, err = a.Nonces(ctx, key, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	if nb, err = b.Nonces(ctx, key, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	return na, nb
}

// TestPresenceSurvivesEmptyRedis: Redis restarted without persistence
// (here: FLUSHALL) loses the nodes table; each node's presence loop
// writes its entry again, so the others relay calls to its connections
// and trust the calls it relays, without a restart.
func TestPresenceSurvivesEmptyRedis(t *testing.T) {
	r := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := open(t, r, "a")
	b, err := cluster.Open(ctx, cluster.Config{URL: r.URL(), Node: "b", Advertise: "192.0.2.20:5060"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Announce(ctx, []string{"192.0.2.20:5061"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Announce(ctx, []string{"127.0.0.1:5060"}); err != nil {
		t.Fatal(err)
	}
	go a.RunPresence(ctx)
	go b.RunPresence(ctx)
	if _, ok := a.PeerAt("192.0.2.20:5061"); !ok {
		t.Fatal("b unknown to a before the flush")
	}
	if got := r.Do("FLUSHALL"); got != "+OK" {
		t.Fatalf("FLUSHALL: %s", got)
	}
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if r.Do("HEXISTS sipwarden:nodes b") == ":1" && r.Do("HEXISTS sipwarden:nodes a") == ":1" {
			break
		}
	}
	if got := r.Do("HEXISTS sipwarden:nodes b"); got != ":1" {
		t.Fatalf("b's entry not written again after Redis lost it: HEXISTS %s", got)
	}
	// a learns it at its next refresh (every second), or when b publishes.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, known := a.PeerAt("192.0.2.20:5061")
		if known && a.Member(netip.MustParseAddr("192.0.2.20")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a does not know b's listener (%v) or trust b after Redis came back empty", known)
		}
	}
}
