package stateless

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sipwarden/sipwarden/connlimit"
)

// Listener wraps a TCP or TLS listener sipgo serves (transport "TCP" or
// "TLS", as sipgo names them): every accepted connection is framed into
// SIP messages (RFC 3261 section 18.3: by Content-Length, which a stream
// must carry); REGISTERs go to the workers, whose answers are written back
// on the same connection, and every other byte reaches sipgo in order.
// sipgo keeps owning the connection: it is in sipgo's pool under its
// remote address, so the proxy reaches a device registered here over it.
func (f *Front) Listener(ln net.Listener, transport string) net.Listener {
	return &listener{Listener: ln, f: f, transport: transport}
}

type listener struct {
	net.Listener
	f         *Front
	transport string
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &streamConn{Conn: c, f: l.f, transport: l.transport, src: c.RemoteAddr().String(),
		slots: newConnSlots(), active: connlimit.Of(c)}, nil
}

const minReadBuf = 4096

// streamConn frames what it reads. Only sipgo's reader goroutine calls
// Read; Write is shared by sipgo and the workers.
type streamConn struct {
	net.Conn
	f         *Front
	transport string
	src       string // remote ip:port, the request's source
	// slots counts the messages of this connection waiting for a worker
	// (maxConnQueued); nil: no bound but the queue's.
	slots *connSlots

	wmu sync.Mutex
	// broken is set once a worker's write failed: the connection is
	// closed, and answers still coming for it are dropped.
	broken atomic.Bool

	buf     []byte // read so far; unframed bytes are buf[r:w]
	r, w    int
	pending []byte // a message (or CRLFs) for sipgo, within buf
	// pass hands everything from here on to sipgo unframed: after
	// something this framer does not understand, sipgo decides.
	pass bool
	// ended: a message was answered 513 or 400 and could not be skipped,
	// or came too slowly; Read returns io.EOF from here on.
	ended bool
	// started is when the first byte of the message not yet framed came;
	// zero between messages.
	started time.Time
	// crew answers REGISTERs on this connection's reader (inline.go):
	// taken from the front's pool for a run of them, given back once
	// their answers are written.
	crew *crew
	// active is the connection limiter's connection (connlimit.Of): under
	// TLS it cannot tell a request from a CRLF keep-alive in encrypted
	// bytes, so the framer tells it of every request, and keep-alives no
	// longer keep an unauthenticated TLS connection open for ever (over
	// TCP it marks the bytes itself as well). nil: no limiter.
	active *connlimit.Conn
}

// Write is sipgo's: one whole message, never interleaved with the
// workers' answers (answer holds the same lock).
func (c *streamConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.Write(b)
}

// answer writes the workers' answers. A failed write (the peer stopped
// reading and the write deadline passed, or the connection is gone) may
// have left part of a message on the wire, so the connection is closed:
// sipgo's reader then ends it, and a peer that stops reading holds a
// worker for one write timeout, not one per batch of its REGISTERs.
//
// The write has a deadline of its own, Config.WriteTimeout: the workers
// serve every client, and a write blocks only once the socket's send
// buffer is full, which a peer that reads never lets happen.
func (c *streamConn) answer(b []byte) error {
	if c.broken.Load() {
		return errBroken
	}
	c.wmu.Lock()
	err := c.Conn.SetWriteDeadline(time.Now().Add(c.f.cfg.WriteTimeout))
	if err == nil {
		_, err = c.Conn.Write(b)
		// Back to the connection's own deadline for sipgo's writes.
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	c.wmu.Unlock()
	if err != nil {
		if !c.broken.Swap(true) {
			_ = c.Conn.Close()
		}
		return err
	}
	return nil
}

// errBroken: the answer was dropped, an earlier write to the connection
// failed.
var errBroken = errors.New("stateless: connection closed after a failed write")

// Read returns the stream minus the REGISTERs the workers took.
func (c *streamConn) Read(b []byte) (int, error) {
	for {
		if c.ended {
			c.flushInline()
			return 0, io.EOF
		}
		if len(c.pending) > 0 {
			c.flushInline() // answered before sipgo handles what follows
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		if c.r < c.w {
			if c.pass {
				c.flushInline()
				n := copy(b, c.buf[c.r:c.w])
				c.r += n
				return n, nil
			}
			if c.frame() {
				continue
			}
		} else if c.pass {
			c.flushInline()
			n, err := c.Conn.Read(b)
			if n > 0 && c.active != nil && leadingCRLF(b[:n]) < n {
				c.active.MarkActive()
			}
			return n, peerGone(err)
		}
		c.flushInline() // the read may wait
		if err := c.fill(); err != nil {
			if c.r < c.w {
				// A partial message before the error: sipgo gets it first.
				c.pass = true
				continue
			}
			return 0, peerGone(err)
		}
	}
}

// peerGone returns io.EOF for a connection the peer reset, err otherwise.
// sipgo logs every read error but io.EOF as an ERROR ("Read error"), and
// a peer that resets its connection (a phone switched off, a NAT that
// forgot the flow, a client closing with an answer unread) is routine,
// not a fault of this server: the connection ends either way.
func peerGone(err error) error {
	if errors.Is(err, syscall.ECONNRESET) {
		return io.EOF
	}
	return err
}

// frame takes one message (or a run of CRLFs) off buf[r:w]: it becomes
// pending, or goes to a worker. false: more bytes are needed.
func (c *streamConn) frame() bool {
	data := c.buf[c.r:c.w]
	// CRLF keep-alives (RFC 5626 section 3.5.1) and stray line breaks
	// between messages: sipgo answers and skips them.
	if k := leadingCRLF(data); k > 0 {
		c.pending = data[:k]
		c.r += k
		c.started = time.Time{}
		return true
	}
	if c.active != nil {
		c.active.MarkActive()
	}
	end, ok := headerEnd(data)
	if !ok {
		c.pass = true // a bare LF line end: not ours to judge
		return true
	}
	if end < 0 {
		if len(data) > c.f.cfg.MaxMessageBytes {
			// A header section over the limit: answered 513 from its lines
			// that came whole (RFC 3261 21.5.11), when they hold what a
			// response copies, and the stream ends, its rest unread (sipgo
			// refused it and closed the connection without a word).
			c.end(headSoFar(data[:c.f.cfg.MaxMessageBytes]), 513, "Message Too Large")
			return true
		}
		return false
	}
	cl, ok := contentLength(data[:end])
	if !ok {
		// RFC 3261 18.3: a stream message must carry one, whole. Without
		// one, or with one that is no length, the message has no end:
		// answered 400 from its header section, and the stream ends
		// (sipgo closed it without a word). A folded one is sipgo's.
		reason := lengthFault(data[:end])
		if reason == "" {
			c.pass = true
			return true
		}
		c.end(data[:end], 400, reason)
		return true
	}
	if end+cl > c.f.cfg.MaxMessageBytes {
		// Answered 513 from its header section, then the stream ends: its
		// next message would start after a body not read.
		c.end(data[:end], 513, "Message Too Large")
		return true
	}
	total := end + cl
	if len(data) < total {
		return false
	}
	msg := data[:total]
	c.r += total
	c.started = time.Time{} // the next message's clock starts with its first byte
	if c.f.cfg.Inline && !c.f.cfg.StatefulStream && isRegister(msg) {
		c.inline(msg)
		return true
	}
	if c.f.take(msg, job{conn: c, transport: c.transport}) {
		return true
	}
	c.pending = msg
	return true
}

// end answers the message whose header section is head code and reason
// (after the REGISTERs before it), and ends the stream: Read returns
// io.EOF from here on, and sipgo's reader closes the connection (closing
// it here made sipgo warn that its pool's cleanup failed).
func (c *streamConn) end(head []byte, code int, reason string) {
	c.flushInline()
	c.f.answerHead(head, job{conn: c, transport: c.transport}, code, reason)
	c.r, c.w = 0, 0
	c.ended = true
}

// headSoFar returns the header lines of data, the start of a header
// section cut short, that came whole, as a header section of their own:
// nil unless they hold what a response copies (RFC 3261 8.2.6.2: Via,
// From, To, Call-ID, CSeq), for an answer without them matches no request.
func headSoFar(data []byte) []byte {
	i := bytes.LastIndex(data, []byte("\r\n"))
	if i < 0 {
		return nil
	}
	head := append(bytes.Clone(data[:i+2]), "\r\n"...)
	m, ok := diagnose(head)
	if !ok || m.from == "" || m.to == "" || m.callID == "" || m.cs == "" {
		return nil
	}
	return head
}

// fill reads more into buf, compacting and growing it as needed, up to
// MaxMessageBytes plus one read (frame ends the stream once a message
// passes MaxMessageBytes, so the buffer never fills at that size; were it
// to, sipgo would get the rest unframed).
func (c *streamConn) fill() error {
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.buf) > 4*minReadBuf {
			c.buf = nil // one large message grew it: do not keep it
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, minReadBuf)
	}
	if c.w == len(c.buf) {
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		} else {
			nb := make([]byte, min(2*len(c.buf), c.f.cfg.MaxMessageBytes+minReadBuf))
			if len(nb) <= len(c.buf) {
				c.pass = true // full and still unframed: sipgo decides
				return nil
			}
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
	}
	n, err := c.Conn.Read(c.buf[c.w:])
	c.w += n
	if c.r < c.w {
		// Part of a message is here: it must be whole in time.
		now := time.Now()
		if c.started.IsZero() {
			c.started = now
		} else if c.f.cfg.MessageTimeout > 0 && now.Sub(c.started) > c.f.cfg.MessageTimeout {
			c.f.log.Debug("connection closed: message too slow", "source", c.src, "transport", c.transport,
				"bytes", c.w-c.r, "timeout_s", c.f.cfg.MessageTimeout.Seconds())
			// The stream ends: sipgo's reader closes the connection on
			// io.EOF (an error of ours, and a connection closed under it,
			// made it log an ERROR and a WARN for each trickling peer).
			c.r, c.w = 0, 0
			c.ended = true
			return io.EOF
		}
	}
	if n > 0 {
		return nil // an error comes again with the next read
	}
	return err
}

func leadingCRLF(b []byte) int {
	k := 0
	for k < len(b) && (b[k] == '\r' || b[k] == '\n') {
		k++
	}
	return k
}

// headerEnd returns the offset just past the blank line ending the
// headers, or -1 when it has not arrived yet. ok is false when a header
// line ends with a bare LF, which this framer leaves to sipgo.
func headerEnd(b []byte) (end int, ok bool) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, true
		}
		j += i
		if j == 0 || b[j-1] != '\r' {
			return 0, false
		}
		if j >= 3 && b[j-2] == '\n' && b[j-3] == '\r' {
			return j + 1, true
		}
		i = j + 1
	}
}

// contentLength finds the Content-Length (or compact l) header in the
// header block and parses it; ok is false when it is missing, repeated
// with another value, or not a plain decimal number.
func contentLength(h []byte) (n int, ok bool) {
	found := false
	for {
		v, rest, folded, more := nextLength(h)
		if !more {
			return n, found
		}
		if folded {
			return 0, false
		}
		v2, good := atoi(v)
		if !good || (found && v2 != n) {
			return 0, false
		}
		n, found, h = v2, true, rest
	}
}

// lengthFault names what is wrong with a header section's Content-Length
// when contentLength refused it: missing, repeated with another value, or
// not a number; "" when a Content-Length line is folded (sipgo reads
// folded lines: its call).
func lengthFault(h []byte) string {
	count := 0
	for {
		_, rest, folded, more := nextLength(h)
		if !more {
			break
		}
		if folded {
			return ""
		}
		count, h = count+1, rest
	}
	switch {
	case count == 0:
		return "Missing Content-Length Header"
	case count > 1:
		return "Duplicate Content-Length Header"
	}
	return "Malformed Content-Length Header"
}

// nextLength finds the next Content-Length (or compact l) line of the
// header block h: its value, trimmed, what follows the line, and whether
// the line is folded onto the next; more is false when there is none.
func nextLength(h []byte) (value, rest []byte, folded, more bool) {
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(h[:i], []byte{'\r'})
		h = h[i+1:]
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		folded = len(h) > 0 && (h[0] == ' ' || h[0] == '\t')
		return bytes.TrimSpace(line[colon+1:]), h, folded, true
	}
	return nil, nil, false, false
}

// atoi parses decimal digits; a number of more than 7 digits (leading
// zeros aside) is returned as tooLong, over any message size limit (the
// message is then answered 513, not left to sipgo unframed).
func atoi(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for len(b) > 1 && b[0] == '0' {
		b = b[1:] // leading zeros are allowed (1*DIGIT) and count for nothing
	}
	n := 0
	for i, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		if i < 7 {
			n = n*10 + int(ch-'0')
		}
	}
	if len(b) > 7 {
		return tooLong, true
	}
	return n, true
}

// tooLong stands for a Content-Length over 7 digits (atoi).
const tooLong = 1 << 30
