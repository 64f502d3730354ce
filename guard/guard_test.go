package guard_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/guard"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	attacker = netip.MustParseAddr("203.0.113.7")
	clean    = netip.MustParseAddr("198.51.100.20")
	nat      = netip.MustParseAddr("192.0.2.44")
)

func newGuard(t *testing.T, c *clock, mod func(*guard.Config)) *guard.Guard {
	t.Helper()
	cfg := guard.Config{MaxFailures: 10, Window: time.Minute, BanDuration: 10 * time.Minute,
		UserMaxFailures: 5, UserWindow: time.Minute, UserSlowdown: time.Minute, Now: c.now}
	if mod != nil {
		mod(&cfg)
	}
	return guard.New(cfg)
}

func wantVerdict(t *testing.T, g *guard.Guard, a netip.Addr, user string, want guard.Verdict) {
	t.Helper()
	if got := g.Check(a, user); got != want {
		t.Fatalf("Check(%v, %q): got %v, want %v", a, user, got, want)
	}
}

func TestBanAfterMaxFailures(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, nil)
	for i := range 9 {
		if g.Failure(attacker, fmt.Sprintf("user%d", i), "mismatch") {
			t.Fatalf("banned after %d failures, want 10", i+1)
		}
		wantVerdict(t, g, attacker, "", guard.Allow)
	}
	if !g.Failure(attacker, "user9", "unknown_user") {
		t.Fatal("10th failure did not ban")
	}
	wantVerdict(t, g, attacker, "", guard.Reject)
	wantVerdict(t, g, clean, "", guard.Allow)
	bans := g.Bans()
	if len(bans) != 1 {
		t.Fatalf("Bans: got %d, want 1", len(bans))
	}
	b := bans[0]
	if b.Source != netip.MustParsePrefix("203.0.113.7/32") || b.Failures != 10 ||
		!b.Since.Equal(c.now()) || !b.Until.Equal(c.now().Add(10*time.Minute)) {
		t.Errorf("ban: got %+v", b)
	}
	if want := "failed attempts reached 10 within 1m0s (last: unknown_user)"; b.Reason != want {
		t.Errorf("reason: got %q, want %q", b.Reason, want)
	}
	// The ban ends on its own, and counting starts afresh.
	c.add(10*time.Minute - time.Second)
	wantVerdict(t, g, attacker, "", guard.Reject)
	c.add(time.Second)
	wantVerdict(t, g, attacker, "", guard.Allow)
	if len(g.Bans()) != 0 {
		t.Errorf("expired ban still listed: %+v", g.Bans())
	}
	if g.Failure(attacker, "x", "mismatch") {
		t.Error("one failure after the ban ended banned again")
	}
}

func TestDropAction(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, func(cfg *guard.Config) { cfg.Drop = true })
	for range 10 {
		g.Failure(attacker, "", "malformed")
	}
	wantVerdict(t, g, attacker, "alice", guard.Drop)
}

func TestWindowSlides(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, nil)
	// 9 failures, then a pause of two windows: forgotten.
	for range 9 {
		g.Failure(attacker, "", "mismatch")
	}
	c.add(2 * time.Minute)
	for range 9 {
		if g.Failure(attacker, "", "mismatch") {
			t.Fatal("failures of an older window banned")
		}
	}
	// Half a window later half of the previous window still counts:
	// 9 (current) rolled into previous, weighted 1/2 -> 4, plus 6 new = 10.
	c.add(90 * time.Second)
	banned := false
	for i := range 6 {
		banned = g.Failure(attacker, "", "mismatch")
		if banned && i < 5 {
			t.Fatalf("banned after %d failures in the new window, want 6", i+1)
		}
	}
	if !banned {
		t.Fatal("not banned once the sliding count reached 10")
	}
}

func TestLift(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, nil)
	for range 10 {
		g.Failure(attacker, "", "mismatch")
	}
	if _, ok := g.Banned(attacker); !ok {
		t.Fatal("not banned")
	}
	if !g.Lift(attacker) {
		t.Fatal("Lift: got false, want true")
	}
	if g.Lift(attacker) {
		t.Fatal("second Lift: got true, want false")
	}
	wantVerdict(t, g, attacker, "", guard.Allow)
	// Its failures are forgotten too.
	if g.Failure(attacker, "", "mismatch") {
		t.Fatal("banned again at once after a lift")
	}
}

func TestIPv6CountedPer64(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, nil)
	for i := range 10 {
		g.Failure(netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)), "", "mismatch")
	}
	wantVerdict(t, g, netip.MustParseAddr("2001:db8:1:2:ffff::1"), "", guard.Reject)
	wantVerdict(t, g, netip.MustParseAddr("2001:db8:1:3::1"), "", guard.Allow)
	if b := g.Bans(); len(b) != 1 || b[0].Source != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Fatalf("bans: got %+v, want the /64", b)
	}
	// An IPv4-mapped IPv6 address is the IPv4 address.
	for range 10 {
		g.Failure(netip.MustParseAddr("::ffff:203.0.113.9"), "", "mismatch")
	}
	wantVerdict(t, g, netip.MustParseAddr("203.0.113.9"), "", guard.Reject)
}

func TestExempt(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, func(cfg *guard.Config) {
		cfg.Exempt = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("2001:db8::/32")}
	})
	for _, a := range []string{"10.1.2.3", "2001:db8::5", "::ffff:10.1.9.9"} {
		addr := netip.MustParseAddr(a)
		for range 100 {
			if g.Failure(addr, "alice", "mismatch") {
				t.Fatalf("%s banned, want exempt", a)
			}
		}
		wantVerdict(t, g, addr, "alice", guard.Allow)
	}
	if n, _, _ := g.Tracked(); n != 0 {
		t.Errorf("exempt addresses tracked: %d", n)
	}
}

// TestNATNeverBanned: a thousand phones behind one address re-register at
// once: first REGISTERs without credentials (challenged, not counted),
// then correct answers. Nothing is counted and nothing is banned; a few
// stale passwords among them (each phone retrying like baresip, 16 times
// back to back and again 40 s later) slow those users but do not ban the
// address.
func TestNATNeverBanned(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, func(cfg *guard.Config) { cfg.MaxFailures = guard.DefaultMaxFailures })
	for i := range 1000 {
		user := fmt.Sprintf("phone%04d", i)
		wantVerdict(t, g, nat, "", guard.Allow) // the first leg, challenged
		wantVerdict(t, g, nat, user, guard.Allow)
		g.Success(nat, user)
	}
	if a, u, p := g.Tracked(); a+u+p != 0 {
		t.Fatalf("successes tracked something: %d addresses, %d users, %d pairs", a, u, p)
	}
	for round := range 5 {
		for _, user := range []string{"stale1", "stale2"} {
			for range 16 {
				if g.Check(nat, user) == guard.Allow {
					g.Failure(nat, user, "mismatch")
				}
			}
		}
		c.add(40 * time.Second)
		if v := g.Check(nat, "phone0001"); v != guard.Allow {
			t.Fatalf("round %d: a good phone behind the NAT got %v", round, v)
		}
	}
	if _, ok := g.Banned(nat); ok {
		t.Fatalf("the NAT address was banned: %+v", g.Bans())
	}
}

func TestUsernameSlowedOnlyForFailingSources(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, func(cfg *guard.Config) { cfg.MaxFailures = 1000 })
	bots := make([]netip.Addr, 6)
	for i := range bots {
		bots[i] = netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)})
	}
	if g.Attacked() {
		t.Fatal("Attacked before any failure")
	}
	// Five bots fail once each for alice: she is under attack.
	for _, b := range bots[:5] {
		wantVerdict(t, g, b, "alice", guard.Allow)
		g.Failure(b, "alice", "mismatch")
	}
	if !g.Attacked() {
		t.Fatal("Attacked: got false after 5 failures for alice")
	}
	// Each failing bot is slowed for alice, not for bob.
	for _, b := range bots[:5] {
		wantVerdict(t, g, b, "alice", guard.Throttle)
		wantVerdict(t, g, b, "bob", guard.Allow)
	}
	// A bot that has not failed, and alice's own phone, are served.
	wantVerdict(t, g, bots[5], "alice", guard.Allow)
	wantVerdict(t, g, clean, "alice", guard.Allow)
	// A request without credentials is never slowed (it gets a challenge).
	wantVerdict(t, g, bots[0], "", guard.Allow)
	// After the slowdown the bot gets one more guess.
	c.add(time.Minute)
	wantVerdict(t, g, bots[0], "alice", guard.Allow)
	g.Failure(bots[0], "alice", "mismatch")
	wantVerdict(t, g, bots[0], "alice", guard.Throttle)
	// A source that answers correctly is no longer failing.
	g.Failure(clean, "alice", "mismatch")
	wantVerdict(t, g, clean, "alice", guard.Throttle)
	g.Success(clean, "alice")
	wantVerdict(t, g, clean, "alice", guard.Allow)
	// Once the attack is over nobody is slowed.
	c.add(3 * time.Minute)
	wantVerdict(t, g, bots[1], "alice", guard.Allow)
}

// TestHammeringSlowedSourceIsBanned: attempts while slowed count an
// eighth of a failure each.
func TestHammeringSlowedSourceIsBanned(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, nil) // 10 failures ban
	for range 5 {
		g.Failure(attacker, "alice", "mismatch") // 5 of 10
	}
	n := 0
	for g.Check(attacker, "alice") == guard.Throttle {
		n++
		if n > 100 {
			t.Fatal("never banned")
		}
	}
	if n != 40 {
		t.Errorf("banned after %d slowed attempts, want 40 (5 failures' worth)", n)
	}
	wantVerdict(t, g, attacker, "alice", guard.Reject)
}

func TestMemoryBounded(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, func(cfg *guard.Config) { cfg.MaxTracked = 1024; cfg.MaxFailures = 3 })
	// 100,000 distinct sources and usernames, each failing once.
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		g.Failure(a, fmt.Sprintf("u%d", i), "unknown_user")
	}
	a, u, p := g.Tracked()
	if a > 1024 || u > 1024 || p > 1024 {
		t.Fatalf("tracked %d addresses, %d users, %d pairs; want at most 1024 each", a, u, p)
	}
	// Banned sources are kept in preference to new ones.
	for range 3 {
		g.Failure(attacker, "", "mismatch")
	}
	for i := range 5000 {
		g.Failure(netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)}), "", "mismatch")
	}
	wantVerdict(t, g, attacker, "", guard.Reject)
	// Sweep drops what is over: failures count in the long window (1h)
	// for up to two of them.
	c.add(2*time.Hour + time.Minute)
	g.Sweep()
	if a, u, p := g.Tracked(); a+u+p != 0 {
		t.Fatalf("after Sweep: %d addresses, %d users, %d pairs, want none", a, u, p)
	}
}

// TestSlowGuessingBanned: one wrong password every 5 s never reaches 20
// in a minute, but 50 in an hour bans the address, for an hour; the
// address is banned again within a few failures after that.
func TestSlowGuessingBanned(t *testing.T) {
	c := newClock()
	g := newGuard(t, c, func(cfg *guard.Config) { cfg.MaxFailures = 20 }) // the server's default
	for i := range 49 {
		if g.Failure(attacker, "alice", "mismatch") {
			t.Fatalf("banned after %d slow failures, want 50", i+1)
		}
		c.add(5 * time.Second)
	}
	wantVerdict(t, g, attacker, "", guard.Allow)
	if !g.Failure(attacker, "alice", "mismatch") {
		t.Fatal("50 failures within an hour did not ban")
	}
	wantVerdict(t, g, attacker, "", guard.Reject)
	c.add(59 * time.Minute)
	wantVerdict(t, g, attacker, "", guard.Reject)
	c.add(2 * time.Minute)
	wantVerdict(t, g, attacker, "", guard.Allow)
	// The hour's count is kept through the ban: a few more failures ban
	// again.
	again := 0
	for again = 1; again <= 10 && !g.Failure(attacker, "alice", "mismatch"); again++ {
		c.add(5 * time.Second)
	}
	if again > 10 {
		t.Error("10 failures right after the long ban did not ban again")
	}
	// A disabled long window: never banned by slow guessing.
	g = newGuard(t, c, func(cfg *guard.Config) { cfg.MaxFailures, cfg.LongMaxFailures = 20, -1 })
	for range 200 {
		if g.Failure(attacker, "alice", "mismatch") {
			t.Fatal("banned with the long window disabled")
		}
		c.add(5 * time.Second)
	}
}

func TestConcurrentUse(t *testing.T) {
	g := guard.New(guard.Config{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				a := netip.AddrFrom4([4]byte{10, 0, byte(w), byte(i)})
				g.Check(a, "alice")
				g.Failure(a, "alice", "mismatch")
				g.Success(a, "alice")
				if i%500 == 0 {
					g.Bans()
					g.Sweep()
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkCheck(b *testing.B) {
	g := guard.New(guard.Config{Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	// Some state: a thousand tracked sources, one banned.
	for i := range 1000 {
		g.Failure(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), "", "mismatch")
	}
	for range 20 {
		g.Failure(attacker, "", "mismatch")
	}
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(clean, "alice") != guard.Allow {
				b.Fatal("not allowed")
			}
		}
	})
	b.Run("tracked", func(b *testing.B) {
		a := netip.MustParseAddr("198.51.0.7")
		b.ReportAllocs()
		for b.Loop() {
			g.Check(a, "alice")
		}
	})
	b.Run("banned", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if g.Check(attacker, "") != guard.Reject {
				b.Fatal("not banned")
			}
		}
	})
	b.Run("success", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Success(clean, "alice")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g.Check(clean, "alice")
			}
		})
	})
}
