package digest

import (
	"math/bits"
	"sync/atomic"
)

// ringChunkBits: the ring's slots are allocated 8,192 at a time (64 KB), as
// the sequence reaches them, so that a node that issues few nonces never
// holds the whole ring.
const ringChunkBits = 13

// countRing keeps the counts of the nonces one Nonces issued, a slot per
// sequence number modulo the ring's size (a power of two), the way
// Kamailio's auth module keeps nonce counts by nonce index (nid_pool,
// nc_array): 8 bytes per slot, no map, no lock, no expiry to purge (the
// nonce's own expiry is checked before, by Nonces.Check and Counts).
//
// A slot holds the high bits of its nonce's sequence (the low bits are the
// slot's index), the count accepted last and the request that carried it.
// A slot only ever moves to a later nonce: once a nonce issued a ring's
// size after another is answered, it takes the slot, and the earlier one
// is then refused (its count is forgotten: fail closed, as the map's
// eviction). Which of two nonces is later is told by their age, counted
// back from the last sequence the Nonces issued (modulo 2^40): exact
// unless 2^40 nonces were issued since the slot was written, and then
// wrong once, for one nonce's lifetime.
type countRing struct {
	nonces   *Nonces
	bits     uint   // log2 of the number of slots
	mask     uint64 // slots - 1
	hmask    uint64 // the high bits' range - 1
	chunkLen uint64
	chunks   []atomic.Pointer[ringChunk]
	used     atomic.Int64 // slots ever written
}

type ringChunk struct{ s []atomic.Uint64 }

// Bounds of a ring's size: 1,024 to 2^26 slots (8 KB to 512 MB).
const (
	minRingBits = 10
	maxRingBits = 26
)

// newCountRing returns a ring for n's nonces with the largest power of two
// of slots not above maxSlots, within minRingBits and maxRingBits.
func newCountRing(n *Nonces, maxSlots int) *countRing {
	b := min(max(uint(bits.Len(uint(max(maxSlots, 1)))), minRingBits+1), maxRingBits+1) - 1
	r := &countRing{
		nonces:   n,
		bits:     b,
		mask:     1<<b - 1,
		hmask:    1<<(nonceSeqBits-b) - 1,
		chunkLen: min(uint64(1)<<ringChunkBits, uint64(1)<<b),
	}
	r.chunks = make([]atomic.Pointer[ringChunk], (1<<b)/r.chunkLen)
	return r
}

// slots returns the ring's size.
func (r *countRing) slots() int { return int(r.mask + 1) }

// slot returns the slot of index i, allocating its chunk on first use.
func (r *countRing) slot(i uint64) *atomic.Uint64 {
	p := &r.chunks[i/r.chunkLen]
	ch := p.Load()
	if ch == nil {
		ch = &ringChunk{s: make([]atomic.Uint64, r.chunkLen)}
		if !p.CompareAndSwap(nil, ch) {
			ch = p.Load()
		}
	}
	return &ch.s[i%r.chunkLen]
}

// accept is Counts.AcceptRepeat for the nonce of sequence seq, whose count
// nc is between 1 and MaxCount; repeat says whether a repetition of the
// count accepted last in the same request (tag) is still a Repeat.
func (r *countRing) accept(seq uint64, nc, tag uint16, repeat bool) Verdict {
	seq &= seqMask
	i := seq & r.mask
	slot := r.slot(i)
	h := seq >> r.bits & r.hmask
	next := h<<32 | uint64(nc)<<16 | uint64(tag)
	for {
		old := slot.Load()
		if old != 0 { // nc >= 1: a written slot is never 0
			if oh := old >> 32; oh == h {
				onc, otag := uint16(old>>16), uint16(old)
				if repeat && nc == onc && tag == otag {
					return Repeat
				}
				if nc <= onc {
					return Refused // RFC 7616 section 3.4.5: a replay
				}
			} else {
				// The last sequence issued, read after the slot: the
				// slot's nonce was issued before it, as this one was.
				cur := r.nonces.seq.Load()
				if other := oh<<r.bits | i; (cur-other)&seqMask < (cur-seq)&seqMask {
					return Refused // a later nonce holds the slot: this one's count is forgotten
				}
			}
		}
		if slot.CompareAndSwap(old, next) {
			if old == 0 {
				r.used.Add(1)
			}
			return Fresh
		}
	}
}
