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
// A slot only ever moves to a later nonce: a nonce issued a ring's size
// after another, once answered, takes the slot, and the earlier one is
// then refused (its count is forgotten: fail closed, as the map's
// eviction). The high bits are compared modulo their width, half the range
// ahead counting as later, which is exact while fewer than 2^39 nonces are
// issued within a nonce's lifetime.
type countRing struct {
	nonces   *Nonces
	bits     uint   // log2 of the number of slots
	mask     uint64 // slots - 1
	hmask    uint64 // the high bits' range - 1
	half     uint64 // half that range
	chunkLen uint64
	chunks   []atomic.Pointer[ringChunk]
	used     atomic.Int64 // slots ever written
}

type ringChunk struct{ s []atomic.Uint64 }

// newCountRing returns a ring for n's nonces with the largest power of two
// of slots not above maxSlots (at least 1,024).
func newCountRing(n *Nonces, maxSlots int) *countRing {
	b := uint(bits.Len(uint(max(maxSlots, 1024)))) - 1
	r := &countRing{
		nonces:   n,
		bits:     b,
		mask:     1<<b - 1,
		hmask:    1<<(nonceSeqBits-b) - 1,
		half:     1 << (nonceSeqBits - b - 1),
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
	slot := r.slot(seq & r.mask)
	h := seq >> r.bits & r.hmask
	next := h<<32 | uint64(nc)<<16 | uint64(tag)
	for {
		old := slot.Load()
		if old != 0 { // nc >= 1: a written slot is never 0
			switch oh := old >> 32; {
			case oh == h:
				onc, otag := uint16(old>>16), uint16(old)
				if repeat && nc == onc && tag == otag {
					return Repeat
				}
				if nc <= onc {
					return Refused // RFC 7616 section 3.4.5: a replay
				}
			case (h-oh)&r.hmask >= r.half:
				return Refused // a later nonce holds the slot: this one's count is forgotten
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
