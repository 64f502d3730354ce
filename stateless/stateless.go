// Package stateless answers REGISTER requests without a server
// transaction, in front of sipgo's transports (RFC 3261 section 8.2.7,
// stateless UAS behaviour). It wraps the UDP socket and the TCP/TLS
// listeners sipgo serves: REGISTERs are taken out of the byte stream and
// answered by a pool of long-lived workers; everything else reaches sipgo
// unchanged.
//
// Why: sipgo runs every request through a server transaction, in a
// goroutine of its own. For a REGISTER that costs more than the
// registration itself: the transaction's timers and state machine, the
// goroutine's stack growth, and over UDP the transaction kept for Timer J
// (32 s, about 13 KB per flow: 2 GB at 15,000 flows/s). A REGISTER is safe
// to answer statelessly: a retransmitted first leg gets a fresh 401; a
// retransmitted second leg re-presents a nonce count already accepted,
// which the nonce counts recognise as the same request, and gets 200 again
// with the bindings as they are (auth.Result.Repeat). Kamailio answers
// REGISTER the same way (sl_send_reply).
//
// With Front.ChallengeInvites it also answers the first INVITE of a call
// (no credentials) with the proxy's 407, and absorbs the ACK of that 407
// (invite.go).
package stateless

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/sipparse"
)

// Handler handles one REGISTER and answers it through tx (or not at all:
// the request is then dropped). It is sipgo's handler shape, so that the
// same admission chain (package admission) serves both paths: the chain
// around registrar.Registrar.ServeSIP. tx is the Front's: only Respond
// does anything, and the handler must not keep it after it returns.
type Handler = func(req *sip.Request, tx sip.ServerTransaction)

// Config configures a Front. Hooks are optional.
type Config struct {
	// Workers answering REGISTERs; default 1.
	Workers int
	// Queue is how many requests may wait for a worker; when it is full,
	// a REGISTER over UDP is dropped (the client retransmits), and the
	// reader of a stream waits for room: TCP's flow control then slows
	// the sender down, as a server that reads no faster than it serves
	// does. Default 4096.
	Queue int
	// MaxMessageBytes bounds a message: a longer request is answered 513
	// Message Too Large when its header section can be read whole, and a
	// stream's connection is then closed. A header section longer than
	// it on a stream goes to sipgo, which refuses it and closes the
	// connection. Default 65535.
	MaxMessageBytes int
	// WriteTimeout bounds a worker's write of answers on a TCP or TLS
	// connection; past it the connection is closed. Default 2s.
	WriteTimeout time.Duration
	// MessageTimeout bounds the time from a message's first byte to its
	// last on a TCP or TLS stream: a peer trickling a byte at a time
	// never lets the per-read idle timeout fire, and would hold its
	// connection forever. Past it the connection is closed (checked when
	// a read returns, so within one idle timeout more). Default 10s.
	MessageTimeout time.Duration
	// MaxQueueDelay is the longest a request that starts a flow (a
	// REGISTER or INVITE without credentials) may have waited for a
	// worker: past it the front is overloaded and answers it 503 Service
	// Unavailable with a Retry-After (RFC 3261 section 21.5.4) instead of
	// handling it, which costs a parse and a write. Requests with
	// credentials, which finish a flow already begun, are always handled.
	// It also turns on the refusal of new calls while a UDP socket's
	// queue stands (sojourn.go). 0: never.
	MaxQueueDelay time.Duration
	// RetryAfter is the least Retry-After of those 503s, in seconds; each
	// is drawn from [RetryAfter, 2*RetryAfter) so that the refused clients
	// do not come back together. Default 5.
	RetryAfter int
	// OnShed, if set, is called for every request refused or dropped for
	// overload, with the reason: "overload" (answered 503), "queue_full"
	// (a datagram dropped: no worker had room), "duplicate" (a datagram
	// dropped: the same bytes are queued already, a retransmission); and
	// for every request dropped as "unparsable", on any transport: nobody
	// to answer (no Via, or sipgo's parser refuses it without a request
	// line or Via to answer from; a datagram without the end of a header
	// section). Not overload: shed's warning is not logged for those.
	OnShed func(reason string)
	// Inline lets a socket's reader answer the REGISTERs it reads itself,
	// their answers sent together once its batch is read: a UDP socket's
	// while it keeps up, a stream connection's always (inline.go). A
	// cluster node's handlers wait for Redis (answer.Defer), which would
	// hold the reader: off there.
	Inline bool
	// StatefulUDP and StatefulStream hand the REGISTERs read over UDP, or
	// over TCP and TLS, to sipgo's stateful path (registrar.udp_mode,
	// registrar.stream_mode: stateful) instead of answering them. The
	// front still answers the requests sipgo would refuse or drop
	// (suspect.go, a REGISTER among them) and, with ChallengeInvites,
	// challenges first INVITEs.
	StatefulUDP, StatefulStream bool
	// OnQueueDelay, if set, is called for every request a worker takes,
	// with how long it waited in the queue.
	OnQueueDelay func(time.Duration)
	// Admit, if set, decides whether a request the front refuses for
	// overload (the 503s, answered before the handler's admission chain)
	// gets its answer: false drops it. The server passes its gate's check
	// (bans, the User-Agent deny list), so that an overloaded node never
	// answers a source its admission chain would not.
	Admit  func(*sip.Request) bool
	Logger *slog.Logger
}

// Reasons given to Config.OnShed.
const (
	ShedOverload  = "overload"
	ShedQueueFull = "queue_full"
	ShedDuplicate = "duplicate"
	// ShedUnparsable: a request nobody can be answered for, dropped
	// (answerMalformed).
	ShedUnparsable = "unparsable"
)

// Front is the pool of workers behind the wrapped sockets.
type Front struct {
	h       Handler
	cfg     Config
	log     *slog.Logger
	jobs    chan job
	bufs    sync.Pool
	handled atomic.Uint64
	wg      sync.WaitGroup
	ctx     context.Context
	stop    context.CancelFunc
	closed  chan struct{} // closed at New: the answers' Done
	inv     *invites      // nil: INVITEs are sipgo's (invite.go)
	crews   sync.Pool     // of *crew, for stream readers (inline.go)
	queued  queuedSet     // datagrams waiting for a worker (overload.go)
	// standingUntil is when the last standing queue seen on a UDP
	// socket stops counting (Unix ns; sojourn.go).
	standingUntil atomic.Int64
	// Requests shed for overload, and when that was last logged (Unix ns).
	shedTotal  atomic.Uint64
	shedLogged atomic.Int64
}

// job is one REGISTER to answer: the message in a pooled buffer and where
// the answer goes (a datagram to addr on pc, or the stream conn).
type job struct {
	buf       *[]byte
	n         int
	addr      net.Addr // UDP only
	pc        net.PacketConn
	conn      *streamConn
	transport string
	req       *sip.Request // an INVITE parsed by the reader (invite.go); buf is nil
	refusal   bool         // req is refused before authentication (Challenger.Refusal)
	at        time.Time    // when it was queued
	sum       uint64       // a datagram's hash in Front.queued; 0: not there
	slot      bool         // holds one of conn's slots (streamConn.slots)
}

// New starts cfg.Workers workers answering REGISTERs with h. Close stops
// them.
func New(h Handler, cfg Config) *Front {
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.MessageTimeout <= 0 {
		cfg.MessageTimeout = 10 * time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 65535
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{h: h, cfg: cfg, log: log, jobs: make(chan job, cfg.Queue), ctx: ctx, stop: cancel, closed: make(chan struct{})}
	close(f.closed)
	f.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	f.crews.New = func() any { return f.newCrew() }
	for range cfg.Workers {
		f.wg.Add(1)
		go f.worker()
	}
	return f
}

// Handled returns how many REGISTERs were answered here.
func (f *Front) Handled() uint64 { return f.handled.Load() }

// Close stops the workers; REGISTERs still queued are dropped (clients
// retransmit). Close the wrapped sockets first.
func (f *Front) Close() {
	f.stop()
	f.wg.Wait()
}

// dispatch queues msg (copied) for a worker. A datagram finding the queue
// full is not queued (false). A datagram whose very bytes are queued
// already is a retransmission: it is dropped (true), the answer to the
// first copy answers it too. A stream's message waits for room (false
// only when the front closes).
func (f *Front) dispatch(msg []byte, j job) bool {
	if j.conn == nil {
		sum, fresh := f.queued.add(msg)
		if !fresh {
			f.shed(ShedDuplicate)
			return true
		}
		j.sum = sum
	}
	bp := f.bufs.Get().(*[]byte)
	*bp = append((*bp)[:0], msg...)
	j.buf, j.n, j.at = bp, len(msg), time.Now()
	if j.conn != nil {
		return f.queueStream(j)
	}
	select {
	case f.jobs <- j:
		return true
	default:
		f.putBuf(bp)
		f.queued.remove(j.sum)
		return false
	}
}

// maxConnQueued bounds the messages of one stream connection waiting for
// a worker: past it the connection's reader waits. A connection sending
// faster than the workers answer (a load generator, an SBC's trunk in a
// storm) thus waits on its own slots, a few milliseconds' worth of work,
// rather than filling the whole queue: the others' REGISTERs still find
// room, and what it sends waits in TCP's buffers, where flow control
// slows it down.
const maxConnQueued = 256

// queueStream queues a stream's job, waiting for one of its connection's
// slots, then for room in the queue (issue 18: handing a stream's
// REGISTERs to sipgo's stateful path when the queue was full, as before,
// cost a transaction each and collapsed a TCP overload to 31% of the
// maximum rate at 814 MB). The wait counts in the job's queue delay
// (j.at is set before it), so a REGISTER that waited too long is still
// refused 503 by the worker. false: the front closed meanwhile.
func (f *Front) queueStream(j job) bool {
	if s := j.conn.slots; s != nil {
		if !s.acquire(f.ctx.Done()) {
			f.putBuf(j.buf)
			return false
		}
		j.slot = true
	}
	select {
	case f.jobs <- j:
		return true
	case <-f.ctx.Done():
		j.releaseSlot()
		f.putBuf(j.buf)
		return false
	}
}

// releaseSlot gives back the connection slot j holds, if any.
func (j *job) releaseSlot() {
	if j.slot {
		j.conn.slots.release()
	}
}

// connSlots counts a stream connection's messages waiting for a worker,
// at most maxConnQueued. Its one acquirer is the connection's reader
// (sipgo's goroutine for it); the workers release. A reader that found
// every slot taken is woken once half of them are free again, not at each
// release: a wake-up per message cost a goroutine switch per REGISTER.
type connSlots struct {
	n    atomic.Int32
	wake chan struct{} // one token: half the slots free again
}

func newConnSlots() *connSlots { return &connSlots{wake: make(chan struct{}, 1)} }

// acquire takes a slot, waiting while all are taken; false when done
// closed first.
func (s *connSlots) acquire(done <-chan struct{}) bool {
	for s.n.Load() >= maxConnQueued {
		select {
		case <-s.wake: // maybe an old token: the loop checks again
		case <-done:
			return false
		}
	}
	s.n.Add(1) // the one acquirer: nobody else adds in between
	return true
}

// release gives a slot back, and wakes the reader when the count comes
// down to half (it passes there on its way down from full: a reader that
// waits is woken).
func (s *connSlots) release() {
	if s.n.Add(-1) == maxConnQueued/2 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// putBuf returns a buffer to the pool, unless one large message grew it.
func (f *Front) putBuf(bp *[]byte) {
	if bp != nil && cap(*bp) <= 16384 {
		f.bufs.Put(bp)
	}
}

// Batching of stream answers: a worker that finds more REGISTERs queued
// keeps the answers for one connection in a buffer and writes them in one
// go once the queue is empty, the batch is this long, or the next answer
// is for another connection. Under load that turns one write(2) per
// answer (17% of the CPU at 30,000 TCP flows/s) into one per batch; a
// lone REGISTER is answered at once.
const (
	maxBatchJobs  = 32
	maxBatchBytes = 32 << 10
)

// outbox is a worker's answers for one stream connection, not yet written.
type outbox struct {
	conn *streamConn
	buf  bytes.Buffer
}

// add appends the serialized res for conn, writing out what was pending
// for another connection first.
func (o *outbox) add(f *Front, conn *streamConn, res *sip.Response) {
	if o.conn != conn {
		o.flush(f)
		o.conn = conn
	}
	res.StringWrite(&o.buf)
	if o.buf.Len() >= maxBatchBytes {
		o.flush(f)
	}
}

// flush writes the pending answers as one write, whole against sipgo's
// writes on the same connection (streamConn.answer).
func (o *outbox) flush(f *Front) {
	if o.buf.Len() > 0 {
		if err := o.conn.answer(o.buf.Bytes()); err != nil {
			f.log.Debug("send REGISTER responses", "transport", o.conn.transport, "bytes", o.buf.Len(), "error", err)
		}
	}
	o.buf.Reset()
	if o.buf.Cap() > 4*maxBatchBytes {
		o.buf = bytes.Buffer{}
	}
	o.conn = nil
}

// crew is what handling a request takes: a worker's, a UDP socket
// reader's, or a stream connection's reader's while it answers
// (inline.go).
type crew struct {
	ps  parsers
	dg  datagrams // UDP answers
	box outbox    // a stream's answers
	a   answer    // reused: handlers do not keep it
	msg []byte    // the datagram a reader handles (inline.go)
}

func (f *Front) newCrew() *crew {
	return &crew{ps: parsers{sipgo: sipparse.SipgoParser()}, a: answer{done: f.closed}}
}

// flush sends the round's answers, then runs the finishes it deferred.
func (c *crew) flush(f *Front) {
	c.dg.flush(f)
	c.box.flush(f)
	f.finishLater(&c.dg, &c.box, &c.a)
}

func (f *Front) worker() {
	defer f.wg.Done()
	c := f.newCrew()
	defer c.box.flush(f)
	defer c.dg.flush(f)
	for {
		j, ok := f.next()
		if !ok {
			return
		}
		f.work(c, j)
		// More queued: answer them before writing (bounded, so that the
		// first answers of a long queue do not wait for the last).
		for range maxBatchJobs - 1 {
			j, ok := f.queuedJob()
			if !ok {
				break
			}
			f.work(c, j)
		}
		c.flush(f)
	}
}

// finishLater runs the finishes the round's handlers deferred
// (answer.Defer), in order, and sends their answers.
func (f *Front) finishLater(dg *datagrams, box *outbox, a *answer) {
	if len(a.later) == 0 {
		return
	}
	for i := range a.later {
		d := a.later[i]
		a.later[i] = deferred{}
		a.reset()
		d.finish()
		if a.res != nil {
			f.handled.Add(1)
			f.send(dg, box, a.res, d.j)
		}
	}
	a.later = a.later[:0]
	dg.flush(f)
	box.flush(f)
}

// next waits for the next job; false when the front closes.
func (f *Front) next() (job, bool) {
	select {
	case j := <-f.jobs:
		return j, true
	case <-f.ctx.Done():
		return job{}, false
	}
}

// queuedJob returns a queued job without waiting; false when none is
// queued.
func (f *Front) queuedJob() (job, bool) {
	select {
	case j := <-f.jobs:
		return j, true
	default:
		return job{}, false
	}
}

// parsers are a worker's: sipparse's, whose request's memory the worker
// recycles once the request is answered, and sipgo's for the rest.
type parsers struct {
	lean  sipparse.Parser
	sipgo *sip.Parser
}

// work handles one job a worker took from the queue.
func (f *Front) work(c *crew, j job) {
	f.queued.remove(j.sum)
	j.releaseSlot()
	if f.cfg.OnQueueDelay != nil && !j.at.IsZero() {
		f.cfg.OnQueueDelay(time.Since(j.at))
	}
	f.handle(c, j)
	f.putBuf(j.buf)
}

func (f *Front) handle(c *crew, j job) {
	ps, dg, box, a := &c.ps, &c.dg, &c.box, &c.a
	if j.req != nil {
		f.handleInvite(dg, box, a, j)
		return
	}
	deferred := len(a.later)
	f.handleRegister(ps, dg, box, a, j)
	// The request is answered: its response is serialized (send), and
	// neither the handlers nor the admission chain keep a request or its
	// headers (they copy the strings they keep: a binding's, a cache's
	// keys). Unless its finish was deferred, the request's memory is the
	// next one's (sipparse.Parser.Recycle; a mistake shows as a cleared
	// request, which TestRecycledRequestsNotKept looks for).
	if len(a.later) == deferred {
		ps.lean.Recycle()
	}
}

func (f *Front) handleRegister(ps *parsers, dg *datagrams, box *outbox, a *answer, j job) {
	var source string
	if j.conn != nil {
		source = j.conn.src
	} else {
		source = j.addr.String()
	}
	req, ok := ps.lean.Request((*j.buf)[:j.n])
	if !ok { // not the common shape: sipgo's parser, and its answer
		msg, err := ps.sipgo.ParseSIP((*j.buf)[:j.n])
		if err != nil {
			// Not err: sipgo's errors quote the line they refused,
			// which may be an Authorization (secrets are never logged).
			f.badRequest(dg, box, (*j.buf)[:j.n], source, j) // malformed.go
			return
		}
		req, ok = msg.(*sip.Request)
	}
	if !ok || req.Via() == nil {
		return // RFC 3261 18.2.2: without a Via there is no one to answer
	}
	// Without a CSeq the registrar answers 400 Missing CSeq Header (RFC
	// 3261 8.1.1: every request has one), as it does a missing From, To
	// or Call-ID: the answer carries no CSeq, but the client's log, or
	// its developer's capture, says what was wrong, where silence looked
	// like a dead server.
	req.SetSource(source)
	req.SetTransport(j.transport)
	if f.late(j) && req.GetHeader("Authorization") == nil {
		f.refuse(dg, box, req, j)
		return
	}
	// The answer leaves once the handler returned, so that whatever the
	// chain counts while the request is handled (requests in flight) is
	// over before the client can act on it.
	a.reset()
	a.cur = j
	f.h(req, a)
	a.cur = job{}
	if a.res == nil {
		return // dropped, or deferred (answer.Defer)
	}
	f.handled.Add(1) // before sending: the client may act on it at once
	f.send(dg, box, a.res, j)
}

// send answers res the way its request came: over the request's own
// connection (through the worker's outbox), or as a datagram to its
// source address (RFC 3261 18.2.2 with rport, RFC 3581: the source is
// where a NATed client listens), through the worker's batch of datagrams.
func (f *Front) send(dg *datagrams, box *outbox, res *sip.Response, j job) {
	if j.conn != nil {
		box.add(f, j.conn, res)
		return
	}
	dg.add(f, j.pc, j.addr, res)
}

// sendNow answers res at once, off the workers' batches: the reader's own
// refusals (refuseNewInvite).
func (f *Front) sendNow(res *sip.Response, j job) {
	var b bytes.Buffer
	res.StringWrite(&b)
	var err error
	if j.conn != nil {
		err = j.conn.answer(b.Bytes())
	} else {
		_, err = j.pc.WriteTo(b.Bytes(), j.addr)
	}
	if err != nil {
		f.log.Debug("send response", "transport", j.transport, "status", res.StatusCode, "error", err)
	}
}

// answersRegister reports whether the front answers a REGISTER read by
// j's transport (Config.StatefulUDP, StatefulStream).
func (f *Front) answersRegister(j *job) bool {
	if j.conn == nil {
		return !f.cfg.StatefulUDP
	}
	return !f.cfg.StatefulStream
}

// isRegister reports whether a message starts a REGISTER request.
func isRegister(b []byte) bool {
	return len(b) > 9 && string(b[:9]) == "REGISTER "
}
