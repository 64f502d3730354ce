package digest

import (
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMaxCounts is the capacity of a Counts created with maxEntries <= 0.
const DefaultMaxCounts = 1 << 20

// Counts remembers, for each nonce in use, the highest nonce count accepted,
// so that a request whose count is not higher is refused as a replay
// (RFC 7616 section 3.4.5, RFC 2617 section 3.2.2). It is safe for
// concurrent use; nonces are spread over independently locked shards.
//
// Memory is bounded: at most maxEntries nonces are tracked, about 40 bytes
// each (1<<20 entries measured at 40 MB of heap). Each shard holds
// maxEntries/shards, so eviction may start a little (well under 1%) before
// maxEntries are held in all. An entry is dropped when
// its nonce expires (amortised inside Accept, or all at once by Sweep).
// When a shard is full, the entries closest to expiry are evicted, and the
// shard remembers the latest expiry it evicted: a nonce it does not know
// whose expiry is not later than that is refused, since it may be one whose
// count was forgotten. So eviction never lets a replay through; the price
// is that, under memory pressure, clients holding the oldest nonces are
// refused and must fetch a fresh nonce (a new challenge, with stale=true if
// the caller maps a refusal to that), one extra round trip.
//
// Nonces are tracked by a 64-bit keyed hash (hash/maphash with a random
// seed), not by the string: a collision between two live nonces can only
// make one of them look replayed, never accept a replay, and the chance of
// one is about maxEntries/2^64 per nonce.
//
// Retransmissions must be absorbed before Accept (the SIP transaction layer
// does it): a retransmitted request carries the same count and is refused.
type Counts struct {
	seed     maphash.Seed
	now      func() time.Time
	shards   []countShard
	mask     uint64
	perShard int
}

// countShard is one lock's worth of Counts. Each map key has exactly one
// item in the heap, whose exp is at most the entry's.
type countShard struct {
	mu    sync.Mutex
	m     map[uint64]countEntry
	heap  []countItem // min-heap on exp
	floor int64       // latest expiry evicted before its time, Unix ns
	_     [64]byte    // keep shards on separate cache lines
}

type countEntry struct {
	exp int64 // Unix ns
	nc  uint32
}

type countItem struct {
	exp int64
	key uint64
}

// purgeBatch bounds the expired entries one Accept removes, to bound its
// latency; each Accept adds at most one entry, so expired ones cannot pile
// up for long.
const purgeBatch = 8

// NewCounts returns a Counts holding at most maxEntries nonces
// (DefaultMaxCounts when maxEntries <= 0). now is the clock; nil means
// time.Now.
func NewCounts(maxEntries int, now func() time.Time) *Counts {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxCounts
	}
	if now == nil {
		now = time.Now
	}
	n := 64
	for n > 1 && maxEntries/n < 256 {
		n /= 2
	}
	c := &Counts{
		seed:     maphash.MakeSeed(),
		now:      now,
		shards:   make([]countShard, n),
		mask:     uint64(n - 1),
		perShard: maxEntries / n,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]countEntry)
	}
	return c
}

// Cap returns the most entries c holds: maxEntries rounded down to a
// multiple of the shard count.
func (c *Counts) Cap() int { return c.perShard * len(c.shards) }

// Accept records nc as the count of a request answering nonce, which
// expires at expires (as Nonces.Check returns it), and reports whether it
// is fresh: higher than every count accepted for nonce so far. It refuses
// nc 0 and expired nonces.
func (c *Counts) Accept(nonce string, nc uint32, expires time.Time) bool {
	now := c.now()
	if nc == 0 || !expires.After(now) {
		return false
	}
	nowNs, exp := now.UnixNano(), expires.UnixNano()
	key := maphash.String(c.seed, nonce)
	s := &c.shards[key&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked(nowNs, purgeBatch)
	if e, ok := s.m[key]; ok {
		if nc <= e.nc {
			return false // RFC 7616 section 3.4.5: a replay
		}
		e.nc = nc
		e.exp = max(e.exp, exp)
		s.m[key] = e
		return true
	}
	if exp <= s.floor {
		return false // its count may have been evicted: fail closed
	}
	s.m[key] = countEntry{exp: exp, nc: nc}
	s.push(countItem{exp: exp, key: key})
	for len(s.m) > c.perShard {
		s.evictLocked()
	}
	return true
}

// Sweep removes every entry whose nonce has expired and returns how many it
// removed. Accept already does this a little at a time; call Sweep
// periodically to return memory after a burst.
func (c *Counts) Sweep() int {
	now := c.now().UnixNano()
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		removed += s.purgeLocked(now, -1)
		s.mu.Unlock()
	}
	return removed
}

// Len returns the number of nonces tracked.
func (c *Counts) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// purgeLocked removes up to limit (all when limit < 0) entries expired at
// now and returns how many it removed.
func (s *countShard) purgeLocked(now int64, limit int) int {
	removed := 0
	for len(s.heap) > 0 && s.heap[0].exp <= now && removed != limit {
		top := s.heap[0]
		if e := s.m[top.key]; e.exp > top.exp {
			// The entry's expiry grew since it was pushed: requeue it.
			s.heap[0].exp = e.exp
			s.down(0)
			continue
		}
		s.pop()
		delete(s.m, top.key)
		removed++
	}
	return removed
}

// evictLocked removes the entry closest to expiry and raises the floor.
func (s *countShard) evictLocked() {
	for len(s.heap) > 0 {
		top := s.heap[0]
		if e := s.m[top.key]; e.exp > top.exp {
			s.heap[0].exp = e.exp
			s.down(0)
			continue
		}
		s.pop()
		delete(s.m, top.key)
		s.floor = max(s.floor, top.exp)
		return
	}
}

// The heap is written out rather than built on container/heap, whose
// interface boxing would allocate on every push.

func (s *countShard) push(it countItem) {
	s.heap = append(s.heap, it)
	s.up(len(s.heap) - 1)
}

func (s *countShard) pop() {
	n := len(s.heap) - 1
	s.heap[0] = s.heap[n]
	s.heap = s.heap[:n]
	if n > 0 {
		s.down(0)
	}
}

func (s *countShard) up(i int) {
	h := s.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].exp <= h[i].exp {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (s *countShard) down(i int) {
	h := s.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].exp < h[l].exp {
			m = r
		}
		if h[i].exp <= h[m].exp {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
