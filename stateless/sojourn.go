package stateless

import (
	"time"
)

// Overload seen where it starts: in the socket. A UDP socket's receive
// buffer is a queue the front does not see: when the process cannot keep
// up (the workers, and sipgo's goroutines for a call's second INVITE, its
// responses, ACK and BYE, outnumber the CPU), the reader falls behind,
// datagrams wait in the kernel, the buffer overflows, and every call in
// progress slows until all of them time out (issue 18: 12% goodput at 1.5
// times the maximum rate of calls over UDP, 56,709 datagrams dropped at
// the socket). The kernel stamps each datagram with its arrival
// (SO_TIMESTAMPNS), so the reader knows each one's sojourn in that queue,
// as CoDel does (RFC 8289): a queue that never empties within an interval
// (even its least delayed datagram waited longer than the target) is a
// standing queue, not a burst, and while it stands the front refuses new
// calls at once (Front.refuseNewInvite).
const (
	// standingTarget is the sojourn a standing queue keeps above.
	standingTarget = 20 * time.Millisecond
	// standingInterval is RFC 8289's interval: about the time a client
	// takes to react (a round trip).
	standingInterval = 100 * time.Millisecond
	// standingIntervals is how many intervals running the queue must
	// keep above the target: on this project's shared 2-core machines a
	// stall of one interval (the process not scheduled for 170 ms) came
	// at 2,000 calls/s, well under the maximum, and refused calls for
	// nothing; an overload keeps the queue standing for seconds.
	standingIntervals = 2
)

// sojourn tracks one socket's queue: the least sojourn seen in the
// current interval, and how many whole intervals running stood.
type sojourn struct {
	start time.Time     // of the current interval
	least time.Duration // its least sojourn so far
	over  int           // intervals running whose least sojourn was over the target
}

// observe records a datagram's sojourn d, read at now, and returns whether
// the queue is standing: in each of the last standingIntervals whole
// intervals every datagram waited longer than standingTarget. A datagram
// under the target ends it at once (the queue emptied).
func (s *sojourn) observe(d time.Duration, now time.Time) bool {
	if d < standingTarget {
		s.start, s.least, s.over = now, d, 0
		return false
	}
	if s.start.IsZero() {
		s.start, s.least = now, d
		return false
	}
	s.least = min(s.least, d)
	if now.Sub(s.start) >= standingInterval {
		if s.least >= standingTarget {
			s.over++
		} else {
			s.over = 0
		}
		s.start, s.least = now, d
	}
	return s.over >= standingIntervals
}

// observeQueue records a datagram's sojourn d in a socket's queue q: while
// q stands, the front is overloaded for one interval more; when q empties
// after standing, no longer (another socket's standing queue sets it again
// at its next datagram). An overload that UDP no longer reports (a flood
// that stopped, on a node whose calls come over TLS) thus lapses within an
// interval.
func (f *Front) observeQueue(q *sojourn, d time.Duration, now time.Time) {
	was := q.over >= standingIntervals
	switch stands := q.observe(d, now); {
	case stands:
		f.standingUntil.Store(now.Add(standingInterval).UnixNano())
	case was:
		f.standingUntil.Store(0)
	}
}

// overloaded reports whether a UDP socket's queue stood within the last
// interval (observeQueue), with the front's overload control on
// (Config.MaxQueueDelay).
func (f *Front) overloaded() bool {
	return f.cfg.MaxQueueDelay > 0 && time.Now().UnixNano() < f.standingUntil.Load()
}
