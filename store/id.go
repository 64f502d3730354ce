package store

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/google/uuid"
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
//
// google/uuid's NewV7 is not used to make them: it reads the wall clock
// itself (the store's Options.Now, which also stamps CreatedAt, would be
// ignored) and keeps its last timestamp in a package variable that cannot
// be advanced to the state of a previous run, so IDs made after a restart
// with the clock set back would sort before older ones. The ID is encoded
// by google/uuid's UUID type.
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

	var u uuid.UUID
	ts := v >> 12
	for i := range 6 {
		u[i] = byte(ts >> (40 - 8*i))
	}
	u[6] = 0x70 | byte(v>>8&0x0f) // version 7
	u[7] = byte(v)
	_, _ = rand.Read(u[8:]) // never fails (crypto/rand)
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return u.String(), v
}

// advance makes later IDs sort after the state last, as stored in the
// meta bucket by a previous run: IDs stay in order across restarts even
// if the clock went back meanwhile.
func (g *idGen) advance(last uint64) {
	g.mu.Lock()
	g.last = max(g.last, last)
	g.mu.Unlock()
}
