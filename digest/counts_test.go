package digest_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
)

// AcceptRepeat: the count accepted last, again in the same request before
// repeatUntil, is a Repeat that records nothing; after it, in another
// request, or any other count not higher, it is Refused.
func TestCountsAcceptRepeat(t *testing.T) {
	clk := newClock()
	c := digest.NewCounts(1024, clk.Now)
	exp := clk.Now().Add(time.Minute)
	until := clk.Now().Add(10 * time.Second)
	steps := []struct {
		nc      uint32
		req     uint16
		advance time.Duration
		until   time.Time
		want    digest.Verdict
	}{
		{1, 7, 0, until, digest.Fresh},
		{1, 7, 0, until, digest.Repeat},
		{1, 8, 0, until, digest.Refused},       // another request with that count: a replay
		{1, 0, 0, until, digest.Refused},       // no request named: Accept's rule
		{1, 7, 0, time.Time{}, digest.Refused}, // no window: Accept's rule
		{2, 9, 0, until, digest.Fresh},
		{1, 7, 0, until, digest.Refused}, // not the count accepted last
		{2, 9, 0, until, digest.Repeat},
		{2, 9, 11 * time.Second, until, digest.Refused}, // past repeatUntil
		{3, 9, 0, until, digest.Fresh},
		{0, 9, 0, until, digest.Refused},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		if got := c.AcceptRepeat("a", s.nc, s.req, exp, s.until); got != s.want {
			t.Errorf("step %d: AcceptRepeat(nc %d, request %d): got %v, want %v", i, s.nc, s.req, got, s.want)
		}
	}
}

func TestCountsSequence(t *testing.T) {
	clk := newClock()
	c := digest.NewCounts(1024, clk.Now)
	exp := clk.Now().Add(time.Minute)
	steps := []struct {
		nonce string
		nc    uint32
		want  bool
	}{
		{"a", 1, true},
		{"a", 1, false}, // replay: equal
		{"a", 2, true},  // increasing
		{"a", 5, true},  // gaps are fine
		{"a", 3, false}, // lower than the highest accepted
		{"a", 5, false}, // equal to the highest
		{"b", 1, true},  // counts are per nonce
		{"b", 0, false}, // nc starts at 1
		{"a", digest.MaxCount, true},
		{"a", digest.MaxCount, false},
		{"c", digest.MaxCount + 1, false}, // past MaxCount: fail closed
		{"b", 2, true},
	}
	for i, s := range steps {
		if got := c.Accept(s.nonce, s.nc, exp); got != s.want {
			t.Errorf("step %d: Accept(%q, %d): got %v, want %v", i, s.nonce, s.nc, got, s.want)
		}
	}
	if got := c.Len(); got != 2 {
		t.Errorf("Len: got %d, want 2", got)
	}
}

func TestCountsExpiredNonce(t *testing.T) {
	clk := newClock()
	c := digest.NewCounts(1024, clk.Now)
	if c.Accept("a", 1, clk.Now()) {
		t.Errorf("expiring now: got true, want false")
	}
	if c.Accept("a", 1, clk.Now().Add(-time.Second)) {
		t.Errorf("expired: got true, want false")
	}
	if got := c.Len(); got != 0 {
		t.Errorf("Len: got %d, want 0 (nothing stored for expired nonces)", got)
	}
}

func TestCountsSweep(t *testing.T) {
	clk := newClock()
	c := digest.NewCounts(1<<16, clk.Now)
	for i := range 1000 {
		exp := clk.Now().Add(time.Minute)
		if i%2 == 1 {
			exp = clk.Now().Add(time.Hour)
		}
		if !c.Accept(fmt.Sprint("n", i), 1, exp) {
			t.Fatalf("nonce %d: got false, want true", i)
		}
	}
	clk.Add(time.Minute + time.Second)
	if got := c.Sweep(); got != 500 {
		t.Errorf("Sweep: got %d removed, want 500", got)
	}
	if got := c.Len(); got != 500 {
		t.Errorf("Len after Sweep: got %d, want 500", got)
	}
	// The survivors keep their counts.
	if c.Accept("n1", 1, clk.Now().Add(time.Hour)) {
		t.Errorf("replay of a surviving nonce: got true, want false")
	}
	clk.Add(time.Hour)
	if got := c.Sweep(); got != 500 {
		t.Errorf("second Sweep: got %d removed, want 500", got)
	}
	if got := c.Len(); got != 0 {
		t.Errorf("Len: got %d, want 0", got)
	}
}

// Accept purges expired entries as it goes, without Sweep.
func TestCountsAmortisedPurge(t *testing.T) {
	clk := newClock()
	c := digest.NewCounts(1<<16, clk.Now)
	for i := range 1000 {
		c.Accept(fmt.Sprint("old", i), 1, clk.Now().Add(time.Minute))
	}
	clk.Add(2 * time.Minute)
	for i := range 1000 {
		c.Accept(fmt.Sprint("new", i), 1, clk.Now().Add(time.Minute))
	}
	// 1000 Accepts over 64 shards, 8 purged per Accept: all old ones are gone.
	if got := c.Len(); got != 1000 {
		t.Errorf("Len: got %d, want 1000 (the old entries purged)", got)
	}
}

func TestCountsBounded(t *testing.T) {
	for _, max := range []int{1, 100, 1024, 5000} {
		clk := newClock()
		c := digest.NewCounts(max, clk.Now)
		if c.Cap() > max || c.Cap() < max/2 {
			t.Errorf("max %d: got Cap %d, want at most %d and at least half of it", max, c.Cap(), max)
		}
		for i := range 4 * max {
			clk.Add(time.Millisecond)
			c.Accept(fmt.Sprint("n", i), 1, clk.Now().Add(time.Hour))
			if got := c.Len(); got > max {
				t.Fatalf("max %d: after %d nonces got Len %d, want at most %d", max, i+1, got, max)
			}
		}
		if got := c.Len(); got < c.Cap()/2 {
			t.Errorf("max %d: got Len %d, want the table well used (Cap %d)", max, got, c.Cap())
		}
	}
}

// Eviction must not open a replay window: a nonce whose count was evicted
// is refused, while nonces newer than every evicted one still work (by a
// second: expiries are kept in whole seconds).
func TestCountsEvictionFailsClosed(t *testing.T) {
	clk := newClock()
	c := digest.NewCounts(1024, clk.Now) // 4 shards of 256
	for i := range 5000 {
		clk.Add(time.Second)
		if !c.Accept(fmt.Sprint("n", i), 1, clk.Now().Add(time.Hour)) {
			t.Fatalf("fresh nonce %d: got false, want true", i)
		}
	}
	replays := 0
	for i := range 5000 {
		if c.Accept(fmt.Sprint("n", i), 1, clk.Now().Add(time.Hour-time.Duration(5000-i-1)*time.Second)) {
			replays++
		}
	}
	if replays != 0 {
		t.Errorf("got %d replays accepted after eviction, want 0", replays)
	}
	clk.Add(time.Second)
	if !c.Accept("brand-new", 1, clk.Now().Add(time.Hour)) {
		t.Errorf("a nonce newer than every evicted one: got false, want true")
	}
}

// Hammer one nonce and many from several goroutines (run with -race): each
// count is accepted at most once; with room in the table the highest is
// accepted exactly once. Under pressure (every nonce has the same expiry,
// so the first eviction closes the table to unknown nonces) the shared
// nonce may be refused, but never accepted twice.
func TestCountsConcurrent(t *testing.T) {
	tests := []struct {
		name        string
		max         int
		wantHighest bool
	}{
		{"roomy", 1 << 16, true},
		{"under pressure", 1 << 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			c := digest.NewCounts(tt.max, clk.Now)
			exp := clk.Now().Add(time.Hour)
			const workers, counts = 8, 2000
			var (
				mu       sync.Mutex
				accepted = make(map[uint32]int)
				wg       sync.WaitGroup
			)
			for w := range workers {
				wg.Go(func() {
					mine := make(map[uint32]int)
					for nc := uint32(1); nc <= counts; nc++ {
						if c.Accept("shared", nc, exp) {
							mine[nc]++
						}
						c.Accept(fmt.Sprint("w", w, "-", nc), 1, exp) // spread over the shards
						if nc%100 == 0 {
							c.Sweep()
							if got, max := c.Len(), c.Cap(); got > max {
								t.Errorf("Len: got %d, want at most %d", got, max)
							}
						}
					}
					mu.Lock()
					for k, v := range mine {
						accepted[k] += v
					}
					mu.Unlock()
				})
			}
			wg.Wait()
			for nc, n := range accepted {
				if n != 1 {
					t.Errorf("nc %d: got accepted %d times, want once", nc, n)
				}
			}
			if got := accepted[counts] == 1; tt.wantHighest && !got {
				t.Errorf("highest nc: got accepted %d times, want 1", accepted[counts])
			}
			if got, max := c.Len(), c.Cap(); got > max {
				t.Errorf("Len: got %d, want at most %d", got, max)
			}
		})
	}
}

func TestCountsDefaults(t *testing.T) {
	c := digest.NewCounts(0, nil)
	if got := c.Cap(); got != digest.DefaultMaxCounts {
		t.Errorf("Cap: got %d, want %d", got, digest.DefaultMaxCounts)
	}
	if !c.Accept("x", 1, time.Now().Add(time.Minute)) {
		t.Errorf("with the real clock: got false, want true")
	}
}

// The table's memory per nonce tracked, full, as the doc comment of Counts
// states it (about 45 bytes); a regression past 55 fails (the expiry heap
// it replaced took 72).
func TestCountsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a million entries")
	}
	const n = 1 << 20
	clk := newClock()
	nonces := make([]string, n)
	for i := range nonces {
		nonces[i] = fmt.Sprintf("nonce-%020d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := digest.NewCounts(n, clk.Now)
	exp := clk.Now().Add(time.Hour)
	for i, nonce := range nonces {
		if i%1024 == 0 {
			clk.Add(time.Second)
		}
		c.Accept(nonce, 1, exp.Add(time.Duration(i/1024)*time.Second))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(nonces)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(c.Len())
	t.Logf("%d entries: %.1f bytes each (heap %.1f MB)", c.Len(), per, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
	if per > 55 {
		t.Errorf("got %.1f bytes per entry, want at most 55", per)
	}
	runtime.KeepAlive(c)
}
