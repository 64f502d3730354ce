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
// A Counts made by NewCountsFor keeps the counts of its Nonces' own nonces
// in a ring indexed by their sequence number (countRing, 8 bytes per slot,
// allocated as used), and only other nonces in the map below. At 5,000
// REGISTERs a second the map held 14.7 of the live heap's 39 MB after 90
// s (issue 18's heap profile), on its way to 45 MB when full
// (TestCountsMemory); the ring full is 8 MB (TestRingMemory).
//
// The map's memory is bounded: at most maxEntries nonces, about 45 bytes
// each with the map's slack (`go test -run CountsMemory -v ./digest/`
// measures it: an 8-byte key and an 8-byte entry in the map, an 8-byte key
// in the shard's queue; the expiry heap this replaced took 72).
// Each shard holds maxEntries/shards, so eviction may start a little (well
// under 1%) before maxEntries are held in all. An entry is dropped when its
// nonce expires (amortised inside Accept, or all at once by Sweep).
//
// Each shard queues its keys in the order they were first accepted. Every
// nonce of a server has the same lifetime and is answered soon after it is
// issued, so that order is, within the delay of an answer, the order of
// expiry: the queue's front is purged while it has expired, and when a
// shard is full its front (the oldest) is evicted. The shard remembers the
// latest expiry it evicted: a nonce it does not know whose expiry is not
// later than that is refused, since it may be one whose count was
// forgotten. So eviction never lets a replay through; the price is that,
// under memory pressure, clients holding the oldest nonces are refused and
// must fetch a fresh nonce (a new challenge, with stale=true if the caller
// maps a refusal to that), one extra round trip. A nonce answered late
// (behind younger ones in the queue) is only purged once they are: memory,
// not safety.
//
// Expiries are kept in whole seconds after the Counts was made, rounded
// up: an entry outlives its nonce by under a second, which errs on the
// side of refusing.
//
// Nonces are tracked by a 64-bit keyed hash (hash/maphash with a random
// seed), not by the string: a collision between two live nonces can only
// make one of them look replayed, never accept a replay, and the chance of
// one is about maxEntries/2^64 per nonce.
//
// Retransmissions must be absorbed before Accept (the SIP transaction layer
// does it): a retransmitted request carries the same count and is refused.
// A caller with no transaction layer (a stateless registrar) uses
// AcceptRepeat, which tells such a retransmission apart.
type Counts struct {
	ring     *countRing // the counts of one Nonces' own nonces, or nil
	seed     maphash.Seed
	now      func() time.Time
	base     time.Time // second 0 of the entries' expiries
	shards   []countShard
	mask     uint64
	perShard int
}

// countShard is one lock's worth of Counts. Every map key is in the queue
// (at most once: a key leaves the map only when it expires or is evicted,
// and an expired nonce is never accepted again); the queue may hold keys
// Sweep removed from the map, skipped when they reach the front.
type countShard struct {
	mu    sync.Mutex
	m     map[uint64]countEntry
	queue []uint64 // keys by first acceptance; the front is queue[head]
	head  int
	floor uint32   // latest expiry evicted before its time
	_     [64]byte // keep shards on separate cache lines
}

type countEntry struct {
	exp uint32 // seconds after Counts.base, rounded up
	// nc is the highest count accepted: at most MaxCount, so that it and
	// tag, the request that carried it (AcceptRepeat; 0: unknown), keep
	// an entry at 8 bytes.
	nc, tag uint16
}

// MaxCount is the highest nonce count accepted. A higher one is refused
// (fail closed): only a client sending more than 65,535 requests on one
// nonce within its lifetime gets there, and refused as a replay it is
// challenged with stale=true and starts again at 1 on a fresh nonce.
const MaxCount = 1<<16 - 1

// Verdict is AcceptRepeat's answer.
type Verdict uint8

const (
	// Refused: a replay, a count of 0, an expired or forgotten nonce.
	Refused Verdict = iota
	// Fresh: the count is higher than every one accepted for the nonce;
	// it is now the nonce's count.
	Fresh
	// Repeat: the count accepted last for the nonce, again, in the same
	// request, before the caller's repeatUntil: a retransmission. Nothing
	// was recorded.
	Repeat
)

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
		base:     now(),
		shards:   make([]countShard, n),
		mask:     uint64(n - 1),
		perShard: maxEntries / n,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]countEntry)
	}
	return c
}

// NewCountsFor is NewCounts for the nonces of n: those are tracked in a
// ring of slots, one per sequence number modulo the ring's size (the
// largest power of two not above maxEntries, 1,024 to 2^26), 8 bytes
// each, allocated 64 KB at a time as answers reach them. A nonce of n's
// is forgotten, and then refused, once the nonce issued the ring's size
// after it has been answered: every challenge moves the ring on, answered
// or not, so at 3,500 challenges a second a ring of 2^20 turns over
// within a nonce lifetime of 5 minutes, and a client reusing an older
// nonce is challenged again (with stale=true): one extra round trip,
// never a replay accepted. Other nonces go to the map, as with NewCounts.
// Only a Nonces made by NewNonces has a ring: its epoch is its own, so a
// nonce with its epoch is one it issued. A Nonces made by NewNoncesEpoch
// shares its epoch with other processes (a cluster's nodes), whose
// sequences mean nothing here: NewCountsFor is then NewCounts.
func NewCountsFor(n *Nonces, maxEntries int, now func() time.Time) *Counts {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxCounts
	}
	c := NewCounts(maxEntries, now)
	if n.ownEpoch {
		c.ring = newCountRing(n, maxEntries)
	}
	return c
}

// Cap returns the most entries c holds: maxEntries rounded down to a
// multiple of the shard count, plus the ring's slots.
func (c *Counts) Cap() int {
	n := c.perShard * len(c.shards)
	if c.ring != nil {
		n += c.ring.slots()
	}
	return n
}

// secs converts a time to c's expiry seconds: after base, rounded up, and
// at most what a uint32 holds (136 years).
func (c *Counts) secs(t time.Time) uint32 {
	d := t.Sub(c.base)
	if d <= 0 {
		return 0
	}
	return uint32(min((d+time.Second-1)/time.Second, 1<<32-1))
}

// Accept records nc as the count of a request answering nonce, which
// expires at expires (as Nonces.Check returns it: a nonce must have passed
// Check, which proves who issued it, before its count is taken), and reports whether it
// is fresh: higher than every count accepted for nonce so far. It refuses
// nc 0 and expired nonces.
func (c *Counts) Accept(nonce string, nc uint32, expires time.Time) bool {
	return c.AcceptRepeat(nonce, nc, 0, expires, time.Time{}) == Fresh
}

// AcceptRepeat is Accept for a caller that answers requests without a
// transaction layer, which would absorb retransmissions. request
// identifies the request among its retransmissions (a hash of its top
// Via's branch, Call-ID and CSeq, RFC 3261 section 17.2.3; never 0). It
// is recorded with a fresh count; before repeatUntil, the same request
// again with the count accepted last for nonce is a Repeat (a client whose
// answer was lost retransmits the very request), not a replay. It is also
// what an eavesdropper could send, so the caller must answer a Repeat
// without changing anything, and keep repeatUntil short: a few
// retransmission intervals after the nonce was issued. request 0 makes it
// Accept.
func (c *Counts) AcceptRepeat(nonce string, nc uint32, request uint16, expires, repeatUntil time.Time) Verdict {
	now := c.now()
	if nc == 0 || nc > MaxCount || !expires.After(now) {
		return Refused
	}
	if c.ring != nil {
		if seq, ok := c.ring.nonces.ownSeq(nonce); ok {
			return c.ring.accept(seq, uint16(nc), request, request != 0 && now.Before(repeatUntil))
		}
	}
	nowS, exp := c.secs(now), c.secs(expires)
	key := maphash.String(c.seed, nonce)
	s := &c.shards[key&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked(nowS, purgeBatch)
	n := uint16(nc)
	if e, ok := s.m[key]; ok {
		if n == e.nc && request != 0 && request == e.tag && now.Before(repeatUntil) {
			return Repeat
		}
		if n <= e.nc {
			return Refused // RFC 7616 section 3.4.5: a replay
		}
		e.nc, e.tag = n, request
		e.exp = max(e.exp, exp)
		s.m[key] = e
		return Fresh
	}
	if exp <= s.floor {
		return Refused // its count may have been evicted: fail closed
	}
	s.m[key] = countEntry{exp: exp, nc: n, tag: request}
	s.queue = append(s.queue, key)
	for len(s.m) > c.perShard {
		s.evictLocked()
	}
	return Fresh
}

// Sweep removes every entry whose nonce has expired and returns how many it
// removed. Accept already does this a little at a time; call Sweep
// periodically to return memory after a burst, or when nonces of very
// different lifetimes share the table.
func (c *Counts) Sweep() int {
	now := c.secs(c.now())
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.exp <= now {
				delete(s.m, k)
				removed++
			}
		}
		live := s.queue[:0]
		for _, k := range s.queue[s.head:] {
			if _, ok := s.m[k]; ok {
				live = append(live, k)
			}
		}
		clear(s.queue[len(live):])
		s.queue, s.head = live, 0
		s.mu.Unlock()
	}
	return removed
}

// Len returns the number of nonces tracked: in the map, and the ring's
// slots written.
func (c *Counts) Len() int {
	n := c.mapLen()
	if c.ring != nil {
		n += int(c.ring.used.Load())
	}
	return n
}

// mapLen returns the number of nonces in the map.
func (c *Counts) mapLen() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// purgeLocked removes up to limit entries from the front of the queue
// while they have expired at now (or left the map), and returns how many
// entries it removed.
func (s *countShard) purgeLocked(now uint32, limit int) int {
	removed := 0
	for s.head < len(s.queue) && removed < limit {
		k := s.queue[s.head]
		e, ok := s.m[k]
		if ok && e.exp > now {
			break
		}
		s.popFront()
		if ok {
			delete(s.m, k)
			removed++
		}
	}
	return removed
}

// evictLocked removes the oldest entry and raises the floor to its expiry.
func (s *countShard) evictLocked() {
	for s.head < len(s.queue) {
		k := s.queue[s.head]
		s.popFront()
		if e, ok := s.m[k]; ok {
			delete(s.m, k)
			s.floor = max(s.floor, e.exp)
			return
		}
	}
}

// popFront drops the queue's front, moving the rest down once half the
// slice is spent, so that the queue's memory stays within twice its
// length.
func (s *countShard) popFront() {
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
		return
	}
	if s.head >= 1024 && s.head*2 >= len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		s.queue, s.head = s.queue[:n], 0
	}
}
