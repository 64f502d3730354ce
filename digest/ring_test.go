package digest_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
)

// ringFixture: a Counts made for its Nonces, so that their nonces go to
// the ring.
func ringFixture(t testing.TB, max int) (*clock, *digest.Nonces, *digest.Counts) {
	t.Helper()
	clk := newClock()
	n := newNonces(t, testKey, clk)
	return clk, n, digest.NewCountsFor(n, max, clk.Now)
}

// The ring follows Accept's and AcceptRepeat's rules, the same table as
// for the map, with nonces that Nonces issued.
func TestRingAcceptRepeat(t *testing.T) {
	clk, n, c := ringFixture(t, 1024)
	nonce, other := n.New(), n.New()
	exp := clk.Now().Add(time.Minute)
	until := clk.Now().Add(10 * time.Second)
	steps := []struct {
		nonce   string
		nc      uint32
		req     uint16
		advance time.Duration
		until   time.Time
		want    digest.Verdict
	}{
		{nonce, 1, 7, 0, until, digest.Fresh},
		{nonce, 1, 7, 0, until, digest.Repeat},
		{nonce, 1, 8, 0, until, digest.Refused},       // another request with that count: a replay
		{nonce, 1, 0, 0, until, digest.Refused},       // no request named: Accept's rule
		{nonce, 1, 7, 0, time.Time{}, digest.Refused}, // no window: Accept's rule
		{other, 1, 7, 0, until, digest.Fresh},         // counts are per nonce
		{nonce, 2, 9, 0, until, digest.Fresh},
		{nonce, 1, 7, 0, until, digest.Refused}, // not the count accepted last
		{nonce, 2, 9, 0, until, digest.Repeat},
		{nonce, 2, 9, 11 * time.Second, until, digest.Refused}, // past repeatUntil
		{nonce, 5, 9, 0, until, digest.Fresh},                  // gaps are fine
		{nonce, 4, 3, 0, until, digest.Refused},
		{nonce, 0, 9, 0, until, digest.Refused}, // nc starts at 1
		{nonce, digest.MaxCount, 1, 0, until, digest.Fresh},
		{nonce, digest.MaxCount + 1, 1, 0, until, digest.Refused}, // fail closed
		{other, 1, 7, 0, until, digest.Refused},
		{other, 2, 0, 0, until, digest.Fresh},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		if got := c.AcceptRepeat(s.nonce, s.nc, s.req, exp, s.until); got != s.want {
			t.Errorf("step %d: AcceptRepeat(nc %d, request %d): got %v, want %v", i, s.nc, s.req, got, s.want)
		}
	}
	if got := c.Len(); got != 2 {
		t.Errorf("Len: got %d, want 2", got)
	}
	if c.Accept(nonce, 1, clk.Now()) {
		t.Errorf("an expired nonce: got true, want false")
	}
}

// sameSlot issues nonces from n until the one a ring of 1,024 puts in the
// slot of the nonce n issued last, and returns that one.
func sameSlot(n *digest.Nonces) string {
	for range 1023 {
		n.New()
	}
	return n.New()
}

// Nonces the Counts' Nonces did not issue (another process's epoch, or not
// nonces at all) are counted in the map, by the same rules; its own are
// not.
func TestRingOtherNonces(t *testing.T) {
	clk, n, c := ringFixture(t, 1024)
	foreign := newNonces(t, testKey, clk).New() // another epoch
	exp := clk.Now().Add(time.Minute)
	for i, nonce := range []string{foreign, "a", ""} {
		if !c.Accept(nonce, 1, exp) || c.Accept(nonce, 1, exp) || !c.Accept(nonce, 2, exp) {
			t.Errorf("%q: want 1 accepted, 1 again refused, 2 accepted", nonce)
		}
		if got := digest.MapLen(c); got != i+1 {
			t.Errorf("%q: got %d nonces in the map, want %d", nonce, got, i+1)
		}
	}
	if !c.Accept(n.New(), 1, exp) || digest.MapLen(c) != 3 || c.Len() != 4 {
		t.Errorf("an own nonce: got %d in the map and %d in all, want 3 and 4", digest.MapLen(c), c.Len())
	}
	// A Nonces whose epoch is shared (NewNoncesEpoch: a cluster's nodes)
	// has no ring: a nonce with its epoch may be another node's.
	shared, err := digest.NewNoncesEpoch(testKey, [4]byte{1, 2, 3, 4}, 5*time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	sc := digest.NewCountsFor(shared, 1024, clk.Now)
	if !sc.Accept(shared.New(), 1, exp) || digest.MapLen(sc) != 1 {
		t.Errorf("a shared epoch's nonce: got %d in the map, want 1", digest.MapLen(sc))
	}
}

// Of two nonces in one slot, the one issued later wins, whichever is
// answered first; and a slot written long ago (2^39 challenges and more,
// none answered in it since) does not make a new nonce look earlier.
func TestRingLaterNonceWins(t *testing.T) {
	clk, n, c := ringFixture(t, 1024)
	exp := clk.Now().Add(time.Hour)
	earlier := n.New()
	later := sameSlot(n)
	if !c.Accept(later, 1, exp) {
		t.Fatal("the later nonce: got false, want true")
	}
	if c.Accept(earlier, 1, exp) {
		t.Errorf("the earlier nonce, answered after the later one took the slot: got true, want false")
	}
	if c.Accept(later, 1, exp) || !c.Accept(later, 2, exp) {
		t.Errorf("the later nonce: want its replay refused, its next count accepted")
	}

	_, n, c = ringFixture(t, 1024)
	old := n.New()
	if !c.Accept(old, 1, exp) {
		t.Fatal("first nonce: got false, want true")
	}
	for _, jump := range []uint64{1 << 39, 1<<39 + 1<<38, 1<<40 - 2048} {
		digest.SetNonceSequence(n, digest.NonceSequence(n)+jump-1) // the next nonce: old's slot
		fresh := n.New()
		if !c.Accept(fresh, 1, exp) || c.Accept(fresh, 1, exp) {
			t.Errorf("a nonce %d challenges later, in a slot written then: want 1 accepted and its replay refused", jump)
		}
		if c.Accept(old, 2, exp) {
			t.Errorf("the nonce %d challenges earlier: got accepted, want refused", jump)
		}
		old = fresh
	}
}

// A slot moves only to a later nonce: once the nonce issued a ring's size
// later is answered, the earlier one is refused (its count is forgotten),
// and the earlier one can never take the slot back. A later nonce that was
// issued but not answered takes nothing.
func TestRingEvictionFailsClosed(t *testing.T) {
	clk, n, c := ringFixture(t, 1024)
	exp := clk.Now().Add(time.Hour)
	first := n.New()
	if !c.Accept(first, 1, exp) {
		t.Fatal("first nonce: got false, want true")
	}
	same := sameSlot(n)
	if !c.Accept(first, 2, exp) {
		t.Errorf("first nonce after its slot's next nonce was issued, not answered: got false, want true")
	}
	if !c.Accept(same, 1, exp) {
		t.Errorf("the slot's next nonce: got false, want true")
	}
	for nc := uint32(1); nc <= 4; nc++ {
		if c.Accept(first, nc, exp) {
			t.Errorf("first nonce, nc %d, after its slot was taken: got true, want false", nc)
		}
	}
	if c.Accept(same, 1, exp) || !c.Accept(same, 2, exp) {
		t.Errorf("the slot's nonce: want its replay refused and its next count accepted")
	}
}

// The sequence wraps at 2^40: nonces either side of the wrap keep their
// own slots, replays stay refused, and a nonce after the wrap is later
// than the one before it in the same slot.
func TestRingSequenceWraps(t *testing.T) {
	clk, n, c := ringFixture(t, 1024)
	exp := clk.Now().Add(time.Hour)
	digest.SetNonceSequence(n, 1<<40-1024-8)
	var nonces []string
	for range 1024 + 16 { // the last 9 are after the wrap; the last 16 in the first 16's slots
		nonces = append(nonces, n.New())
	}
	for i, nonce := range nonces[:1024] {
		if !c.Accept(nonce, 1, exp) {
			t.Fatalf("nonce %d: got false, want true", i)
		}
	}
	for i, nonce := range nonces[:1024] {
		if c.Accept(nonce, 1, exp) {
			t.Errorf("replay of nonce %d: got true, want false", i)
		}
	}
	for i, nonce := range nonces[1024:] {
		if !c.Accept(nonce, 1, exp) {
			t.Errorf("nonce %d after the wrap: got false, want true", i)
		}
		if c.Accept(nonces[i], 2, exp) {
			t.Errorf("nonce %d, whose slot a nonce after the wrap took: got true, want false", i)
		}
	}
}

// Hammer one nonce from several goroutines (run with -race): each count is
// accepted at most once, the highest exactly once, and the slot's nonce
// issued a ring's size later, answered meanwhile, wins the slot for good.
func TestRingConcurrent(t *testing.T) {
	clk, n, c := ringFixture(t, 1024)
	exp := clk.Now().Add(time.Hour)
	shared := n.New()
	later := sameSlot(n)
	const workers, counts = 8, 3000
	var (
		mu       sync.Mutex
		accepted = make(map[uint32]int)
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			mine := make(map[uint32]int)
			for nc := uint32(1); nc <= counts; nc++ {
				if c.Accept(shared, nc, exp) {
					mine[nc]++
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
	for nc, k := range accepted {
		if k != 1 {
			t.Errorf("nc %d: got accepted %d times, want once", nc, k)
		}
	}
	if accepted[counts] != 1 {
		t.Errorf("highest nc: got accepted %d times, want 1", accepted[counts])
	}
	var laterOK int
	for range workers {
		wg.Go(func() {
			for nc := uint32(1); nc <= 100; nc++ {
				if c.Accept(later, nc, exp) {
					mu.Lock()
					laterOK++
					mu.Unlock()
				}
				c.Accept(shared, counts+nc, exp)
			}
		})
	}
	wg.Wait()
	if c.Accept(shared, counts+1000, exp) {
		t.Errorf("the earlier nonce after the later one took its slot: got true, want false")
	}
	if laterOK == 0 || laterOK > 100 {
		t.Errorf("the later nonce: got %d counts accepted, want 1 to 100", laterOK)
	}
}

// Memory of the ring, full: 8 bytes a slot (the map takes about 45 per
// nonce, TestCountsMemory); a regression past 10 fails.
func TestRingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a million slots")
	}
	const max = 1 << 20
	clk := newClock()
	n := newNonces(t, testKey, clk)
	nonces := make([]string, max)
	for i := range nonces {
		nonces[i] = n.New()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := digest.NewCountsFor(n, max, clk.Now)
	exp := clk.Now().Add(time.Hour)
	for i, nonce := range nonces {
		if !c.Accept(nonce, 1, exp) {
			t.Fatalf("nonce %d: got false, want true", i)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(nonces)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(c.Len())
	t.Logf("%d nonces: %.1f bytes each (heap %.1f MB)", c.Len(), per, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20))
	if c.Len() != max {
		t.Errorf("Len: got %d, want %d", c.Len(), max)
	}
	if per > 10 {
		t.Errorf("got %.1f bytes per nonce, want at most 10", per)
	}
	runtime.KeepAlive(c)
}

// The ring is allocated as the sequence reaches it: a Counts that has
// seen a few nonces holds one chunk, not a million slots.
func TestRingAllocatedAsUsed(t *testing.T) {
	clk, n, _ := ringFixture(t, 1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := digest.NewCountsFor(n, 1<<24, clk.Now)
	for range 100 {
		c.Accept(n.New(), 1, clk.Now().Add(time.Minute))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
		t.Errorf("a ring of 16M slots with 100 used: heap grew by %d bytes, want under 1 MB", grew)
	}
	runtime.KeepAlive(c)
	if got := c.Len(); got != 100 { // all in the ring
		t.Errorf("Len: got %d, want 100", got)
	}
}
