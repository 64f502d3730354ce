package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/guard"
)

// A node that missed a ban's message (not running then) imposes it when
// it reloads the bans (from the index of bans, not a scan of the
// keyspace), and one lifted meanwhile is not imposed.
func TestBansReloadedFromIndex(t *testing.T) {
	r := redistest.Start(t)
	a, b := open(t, r, "a"), open(t, r, "b")
	cfg := cluster.BanConfig{MaxFailures: 4, Window: time.Minute, BanDuration: time.Minute}
	ga, gb := guard.New(guard.Config{MaxFailures: 100}), guard.New(guard.Config{MaxFailures: 100})
	ba, bb := a.Bans(ga, cfg), b.Bans(gb, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ba.Run(ctx)
	banned, lifted := netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.21")
	for range 4 { // counted in Redis: a's own guard allows 100
		ba.Failure(banned)
		ba.Failure(lifted)
	}
	wait(t, "both banned on a", 3*time.Second, func() bool {
		_, x := ga.Banned(banned)
		_, y := ga.Banned(lifted)
		return x && y
	})
	if _, err := ba.Lift(lifted); err != nil {
		t.Fatal(err)
	}
	go bb.Run(ctx) // b starts now: it saw none of the messages
	wait(t, "the ban reloaded on b", 3*time.Second, func() bool { _, x := gb.Banned(banned); return x })
	if _, x := gb.Banned(lifted); x {
		t.Error("b imposed a ban lifted before it started")
	}
	if got := r.Do("ZCARD sipwarden:banindex"); got != ":1" {
		t.Errorf("ZCARD of the index: got %s, want :1", got)
	}
}

// A lift Redis cannot store lifts nothing, here either, and says Redis is
// unavailable (503 in the API): it lifted the ban on this node only, and
// the API answered 204 while the other nodes kept banning the source.
func TestLiftWithoutRedisLiftsNothing(t *testing.T) {
	r := redistest.Start(t)
	a := open(t, r, "a")
	cfg := cluster.BanConfig{MaxFailures: 4, Window: time.Minute, BanDuration: time.Minute}
	ga := guard.New(guard.Config{MaxFailures: 100})
	ba := a.Bans(ga, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ba.Run(ctx)
	banned := netip.MustParseAddr("192.0.2.30")
	for range 4 {
		ba.Failure(banned)
	}
	wait(t, "banned", 3*time.Second, func() bool { _, x := ga.Banned(banned); return x })
	r.Pause()
	defer r.Resume()
	ok, err := ba.Lift(banned)
	if ok || !errors.Is(err, cluster.ErrUnavailable) {
		t.Errorf("Lift with Redis paused: %v, %v; want false and ErrUnavailable", ok, err)
	}
	if _, x := ga.Banned(banned); !x {
		t.Error("the ban was lifted here although Redis did not store the lift")
	}
}
