package stateless

import (
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
)

// Overload (issue 18). Past its capacity a server must keep answering at
// about its maximum and refuse the rest early and cheaply, or every
// refused client's retransmissions become the next overload. The front
// does three things, all cheap:
//   - a request that starts a flow and waited longer than
//     Config.MaxQueueDelay for a worker is answered 503 with a spread
//     Retry-After (a parse and a write, no authentication, no store);
//     requests with credentials finish flows already paid for and are
//     always handled;
//   - a UDP datagram that finds the queue full is dropped rather than
//     handed to sipgo's stateful path (a transaction per request, kept for
//     seconds after its answer: the memory that grew to 700 MB at twice the
//     maximum rate);
//   - a UDP datagram whose exact bytes are queued already is a
//     retransmission (RFC 3261 17.2: the client resends the very same
//     request) and is dropped: the answer to the queued copy answers both.

// late reports whether j waited past Config.MaxQueueDelay.
func (f *Front) late(j job) bool {
	return f.cfg.MaxQueueDelay > 0 && !j.at.IsZero() && time.Since(j.at) > f.cfg.MaxQueueDelay
}

// refuse answers req 503 Service Unavailable with a Retry-After in
// [RetryAfter, 2*RetryAfter) seconds (RFC 3261 section 21.5.4).
func (f *Front) refuse(dg *datagrams, box *outbox, req *sip.Request, j job) {
	if !f.admits(req) {
		return
	}
	res := f.serviceUnavailable(req)
	f.shed(ShedOverload)
	f.send(dg, box, res, j)
}

// admits reports whether req may be answered (Config.Admit).
func (f *Front) admits(req *sip.Request) bool { return f.cfg.Admit == nil || f.cfg.Admit(req) }

// serviceUnavailable is the 503 of an overloaded front, with its spread
// Retry-After.
func (f *Front) serviceUnavailable(req *sip.Request) *sip.Response {
	res := reply.FromRequest(req, sip.StatusServiceUnavailable, "Service Unavailable")
	secs := f.cfg.RetryAfter + rand.IntN(f.cfg.RetryAfter)
	res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(secs)))
	return res
}

// shed counts one request refused or dropped for overload, and logs at
// most once a second that it is happening.
func (f *Front) shed(reason string) {
	if f.cfg.OnShed != nil {
		f.cfg.OnShed(reason)
	}
	n := f.shedTotal.Add(1)
	now := time.Now().UnixNano()
	if last := f.shedLogged.Load(); now-last >= int64(time.Second) && f.shedLogged.CompareAndSwap(last, now) {
		f.log.Warn("overload: shedding requests", "reason", reason, "shed_since_start", n)
	}
}

// queuedSet holds a keyed hash of each datagram waiting for a worker. Two
// different datagrams collide with a chance of 2^-64 per pair: one would
// be dropped as a retransmission and the client would retransmit it. The
// zero value is ready to use.
type queuedSet struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[uint64]struct{}
}

// add records msg and returns its hash (never 0), and false when the same
// bytes are queued already.
func (q *queuedSet) add(msg []byte) (uint64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m == nil {
		q.seed, q.m = maphash.MakeSeed(), make(map[uint64]struct{})
	}
	sum := maphash.Bytes(q.seed, msg) | 1
	if _, dup := q.m[sum]; dup {
		return sum, false
	}
	q.m[sum] = struct{}{}
	return sum, true
}

// remove forgets the datagram of hash sum; 0 is no datagram.
func (q *queuedSet) remove(sum uint64) {
	if sum == 0 {
		return
	}
	q.mu.Lock()
	delete(q.m, sum)
	q.mu.Unlock()
}
