package store

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// idGen makes UUIDv7 IDs (RFC 9562 section 5.7) that sort, as text and as
// bytes, in the order they were made: 48 bits of unix milliseconds, then a
// 12-bit counter in rand_a (method 1 of RFC 9562 section 6.2), then 62
// random bits from crypto/rand. Within a millisecond the counter counts up;
// when it overflows, or the clock steps back, the timestamp runs ahead of
// the clock until the clock catches up, so IDs never go backwards.
//
// The store makes IDs inside its write transactions, which bbolt runs one
// at a time, so ID order is also commit order: a reader paging by ID never
// sees a record appear behind its cursor. Each of those transactions also
// stores the generator's state in the meta bucket, which Open reads back.
type idGen struct {
	mu   sync.Mutex
	last uint64 // timestamp<<12 | counter of the last ID made or seen
}

// next returns a new ID and the state to store (see newID).
func (g *idGen) next(now time.Time) (string, uint64) {
	ms := max(now.UnixMilli(), 0)
	g.mu.Lock()
	v := max(uint64(ms)<<12, g.last+1)
	g.last = v
	g.mu.Unlock()

	var u [16]byte
	ts := v >> 12
	for i := range 6 {
		u[i] = byte(ts >> (40 - 8*i))
	}
	u[6] = 0x70 | byte(v>>8&0x0f) // version 7
	u[7] = byte(v)
	_, _ = rand.Read(u[8:]) // never fails (crypto/rand)
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return formatUUID(u), v
}

// advance makes later IDs sort after the state last, as stored in the
// meta bucket by a previous run: IDs stay in order across restarts even
// if the clock went back meanwhile.
func (g *idGen) advance(last uint64) {
	g.mu.Lock()
	g.last = max(g.last, last)
	g.mu.Unlock()
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
