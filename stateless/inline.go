package stateless

import "time"

// Inline answers (issue 18). Handing each REGISTER datagram to a worker
// woke a parked worker on the other core for almost every datagram
// below saturation: the reader, free again at once, read the next
// datagram alone, so batches held one datagram and each answer went out
// by its own sendto(2), and both threads slept and woke on futexes. At
// 10,000 REGISTER flows/s over UDP the scheduler was 11% of the CPU,
// futex 5.5%, and lone sendto(2)s 8.6%; the same build limited to one
// core (GOMAXPROCS=1, where the worker runs only once the reader waits,
// so the datagrams that arrived meanwhile make the next batch) used 0.044
// to 0.049 ms of CPU a flow against 0.053 to 0.062 in three alternated
// runs (a second, noisier set: 0.046-0.055 against 0.048-0.062).
//
// So the socket's reader answers the REGISTERs it reads itself, one
// after the other, and sends their answers together (one sendmmsg(2))
// once its batch is read, before it reads again; the datagrams that
// arrived meanwhile are the next batch. At 10,000 flows/s: a median of
// 0.041 ms a flow against 0.058 (7 alternated runs each), and in the
// same run against Kamailio 0.67x its CPU per flow and 16,000 against
// 13,100 flows/s (docs/bench.md, eighth round). A datagram that waited in the
// socket longer than maxInlineLag finds the reader behind: it goes to
// the workers, as before, so that every core serves a socket one cannot.

// inline handles the REGISTER datagram msg (the reader's buffer, valid
// until its next read) with the reader's crew; its answer is sent with
// the batch's (packetConn.readBatched).
func (f *Front) inline(c *crew, msg []byte, j job) {
	c.msg = msg
	j.buf, j.n = &c.msg, len(msg)
	f.handle(c, j)
	c.msg = nil
}

// maxInlineLag is how long a datagram may have waited in the socket for
// the reader to answer it itself: one that waited longer finds the reader
// behind, and goes to the workers.
const maxInlineLag = time.Millisecond

// inlines reports whether the reader answers a REGISTER datagram that
// waited lag in the socket (negative: not known) itself. Without arrival
// times, a batch that was not full tells that the reader keeps up.
func (f *Front) inlines(lag time.Duration, b batchReader) bool {
	if lag < 0 {
		return !b.full()
	}
	return lag <= maxInlineLag
}

// A stream connection's reader (sipgo's goroutine for it) answers every
// REGISTER it frames itself, and writes their answers in one write before
// it reads again or hands sipgo a message: at 10,000 REGISTER flows/s over
// one TCP connection, 0.045 to 0.049 ms of CPU a flow against 0.052 to
// 0.059 through the workers, and the same CPU and rate at 20,000/s. Each
// connection has a reader of its own, so connections use every core; one
// connection's REGISTERs are answered one after the other, as a Kamailio
// TCP worker reads one connection at a time. A connection that sends
// faster than its reader answers waits in TCP's flow control.

// inline answers msg, a REGISTER framed on c, with a crew from the
// front's pool, kept until c.flushInline.
func (c *streamConn) inline(msg []byte) {
	if c.crew == nil {
		c.crew = c.f.crews.Get().(*crew)
	}
	c.f.inline(c.crew, msg, job{conn: c, transport: c.transport})
}

// flushInline writes the answers c's reader made, if any, and gives its
// crew back.
func (c *streamConn) flushInline() {
	if c.crew == nil {
		return
	}
	c.crew.flush(c.f)
	c.f.crews.Put(c.crew)
	c.crew = nil
}
