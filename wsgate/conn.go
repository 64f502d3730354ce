package wsgate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/sipwarden/sipwarden/connlimit"
)

// Conn is a connection whose upgrade request passed. Its first reads
// return the request head (for sipgo's upgrader), the later ones the
// WebSocket frames, checked as Config.MaxMessageBytes says. Reads are
// meant for one goroutine at a time, as sipgo does them.
type Conn struct {
	net.Conn // the TCP or TLS connection
	l        *Listener
	hs       Handshake

	rmu    sync.Mutex
	head   []byte    // request head not yet read
	after  io.Reader // what comes after the head
	closed sync.Once
}

var _ net.Conn = (*Conn)(nil)

func newConn(l *Listener, nc net.Conn, hs Handshake, head, extra []byte) *Conn {
	c := &Conn{Conn: nc, l: l, hs: hs, head: head}
	var src io.Reader = nc
	if len(extra) > 0 {
		src = io.MultiReader(bytes.NewReader(extra), nc)
	}
	if l.cfg.MaxMessageBytes < 0 {
		c.after = src
	} else {
		c.after = &frameReader{src: bufio.NewReader(src), max: int64(l.cfg.MaxMessageBytes), tooLarge: c.tooLarge, closing: c.echoClose,
			timeout: l.cfg.MessageTimeout, tooSlow: c.tooSlow, active: connlimit.Of(nc)}
	}
	return c
}

// Handshake returns what the upgrade request carried.
func (c *Conn) Handshake() Handshake { return c.hs }

// Read reads the request head first, then the frames.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	n, err := c.after.Read(p)
	if errors.Is(err, syscall.ECONNRESET) {
		// A peer that resets its connection (a browser tab killed, a NAT
		// that forgot the flow) is routine; sipgo logs every read error
		// but io.EOF as an ERROR ("Got TCP error").
		err = io.EOF
	}
	return n, err
}

// Close closes the connection and removes it from the Listener's
// lookup table.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() {
		c.l.forget(c)
		if c.l.cfg.OnClosed != nil {
			c.l.cfg.OnClosed(c.hs)
		}
	})
	return err
}

// tooLarge ends the connection's WebSocket for a message over the
// limit, the way RFC 6455 section 7 closes one: a close frame with status
// 1009 (message too big), the write side shut, and what the client still
// sends read and dropped until it closes (at most 4 MiB or 1 s), so that
// the close frame is not lost to a reset. The TCP connection itself is
// closed by sipgo when Read returns ErrMessageTooLarge (closing it here
// too makes sipgo log a warning). The close frame may land between two
// writes of a frame sipgo is sending at that moment: the client then sees
// a broken frame instead of the close, and the connection ends either way.
func (c *Conn) tooLarge() {
	c.l.log.Debug("websocket connection closed", "handshake", c.hs, "reason", string(ClosedTooLarge))
	if c.l.cfg.OnRefused != nil {
		c.l.cfg.OnRefused(ClosedTooLarge)
	}
	frame := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusMessageTooBig, "message too big"))
	b, err := ws.CompileFrame(frame)
	if err != nil {
		return
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Conn.Write(b); err != nil {
		return
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c.Conn, 4<<20)
}

// echoClose answers a client's Close frame with one of ours, echoing its
// status code, as RFC 6455 section 5.5.1 requires of an endpoint that
// did not send one first: sipgo v1.7.4 closes the TCP connection without
// it, and a browser then reports an abnormal closure (1006) for its own
// clean close. Like tooLarge's, the frame may land between two writes of
// a frame sipgo is sending at that moment.
func (c *Conn) echoClose(payload []byte) {
	body := ws.NewCloseFrameBody(closeReply(payload), "")
	b, err := ws.CompileFrame(ws.NewCloseFrame(body))
	if err != nil {
		return
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Conn.Write(b)
	_ = c.Conn.SetWriteDeadline(time.Time{})
}

// closeReply is the status code answering a client's Close frame whose
// payload (unmasked) is payload: its own code echoed when it is one an
// endpoint may send (RFC 6455 7.4: 1000 to 1003, 1007 to 1014, 3000 to
// 4999), 1000 for an empty body, 1002 (protocol error) for a body of one
// byte or a code no endpoint may send (1005, 1006, 1015, under 1000), and
// 1007 for a reason that is not UTF-8 (section 5.5.1).
func closeReply(payload []byte) ws.StatusCode {
	switch {
	case len(payload) == 0:
		return ws.StatusNormalClosure
	case len(payload) == 1:
		return ws.StatusProtocolError
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(payload))
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
	default:
		return ws.StatusProtocolError
	}
	if !utf8.Valid(payload[2:]) {
		return ws.StatusInvalidFramePayloadData
	}
	return code
}

// tooSlow ends the connection of a client whose frame or message was not
// whole in time (Config.MessageTimeout). sipgo closes it when Read
// returns ErrMessageTooSlow.
func (c *Conn) tooSlow() {
	c.l.log.Debug("websocket connection closed", "handshake", c.hs, "reason", "message not whole in time")
}

// frameReader passes a stream of client frames through, header by
// header: it counts the payload of each message (control frames aside),
// ends the stream with ErrMessageTooLarge when a message passes max, and
// rewrites the opcode of binary messages to text (sipgo v1.7.4 discards
// binary ones; RFC 7118 section 4.2 requires both to be accepted).
type frameReader struct {
	src      *bufio.Reader
	max      int64
	tooLarge func()
	// closing is told of the client's Close frame, its payload unmasked,
	// before the frame goes on to sipgo (which closes the connection).
	closing func(payload []byte)

	hdr    [ws.MaxHeaderSize]byte
	out    []byte // the encoded header not yet read
	remain int64  // payload bytes of the current frame not yet read
	msg    int64  // payload bytes of the current message so far
	err    error  // sticky: after a failed read the stream is out of step

	// timeout bounds the arrival of a frame, or of a message in several
	// frames (Config.MessageTimeout); 0: none. since is when the first
	// byte of the frame or message being timed arrived; timing is set
	// from then until it is whole. inData: a data message's final frame
	// is still to come.
	timeout time.Duration
	tooSlow func()
	since   time.Time
	timing  bool
	ends    bool // the current frame, once read, ends what is timed
	inData  bool

	// active is the connection limiter's connection (connlimit.Of), told
	// when a data frame carries more than line breaks: it sees masked or
	// encrypted bytes, and pings and CRLF keep-alives no longer keep an
	// unauthenticated connection open. nil: none to tell.
	active  *connlimit.Conn
	control bool // the current frame is a control frame
	// The current frame's mask (a client's frames are masked, RFC 6455
	// 5.3) and how much of its payload was read: what passes through is
	// masked, and is unmasked to be looked at.
	masked bool
	mask   [4]byte
	off    int64
}

// lineBreaksOnly reports whether b, the payload bytes of the current
// frame from offset off, holds CRs and LFs only once unmasked.
func (f *frameReader) lineBreaksOnly(b []byte, off int64) bool {
	for i, x := range b {
		if f.masked {
			x ^= f.mask[(off+int64(i))&3]
		}
		if x != '\r' && x != '\n' {
			return false
		}
	}
	return true
}

// late reports whether the frame or message being timed is past its
// bound, and if so makes the stream fail with ErrMessageTooSlow.
func (f *frameReader) late() bool {
	if !f.timing || f.timeout <= 0 || time.Since(f.since) <= f.timeout {
		return false
	}
	f.err = ErrMessageTooSlow
	if f.tooSlow != nil {
		f.tooSlow()
	}
	return true
}

// frameRead is called when the current frame's payload has been read
// whole: what was timed ends with it when it ends a message or is a
// control frame outside one.
func (f *frameReader) frameRead() {
	if f.ends {
		f.timing, f.ends = false, false
	}
}

func (f *frameReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(f.out) > 0 {
		n := copy(p, f.out)
		f.out = f.out[n:]
		return n, nil
	}
	if f.err != nil {
		return 0, f.err
	}
	if f.late() {
		return 0, f.err
	}
	if f.remain > 0 {
		if int64(len(p)) > f.remain {
			p = p[:f.remain]
		}
		n, err := f.src.Read(p)
		f.remain -= int64(n)
		if n > 0 && !f.control && f.active != nil && !f.lineBreaksOnly(p[:n], f.off) {
			f.active.MarkActive()
		}
		f.off += int64(n)
		if err != nil {
			f.err = err
		} else if f.remain == 0 {
			f.frameRead()
		}
		return n, err
	}
	if !f.timing && f.timeout > 0 {
		// The clock starts with the frame's first byte, not when the
		// client went quiet after the previous one.
		if _, err := f.src.Peek(1); err != nil {
			f.err = err
			return 0, err
		}
		f.since, f.timing = time.Now(), true
	}
	h, err := ws.ReadHeader(f.src)
	if err != nil {
		f.err = err
		return 0, err
	}
	if f.late() { // the header itself was trickled
		return 0, f.err
	}
	f.control, f.masked, f.mask, f.off = h.OpCode.IsControl(), h.Masked, h.Mask, 0
	if h.OpCode.IsControl() {
		f.ends = !f.inData
	} else {
		f.inData = !h.Fin
		f.ends = h.Fin
	}
	if h.Length == 0 {
		f.frameRead()
	}
	if !h.OpCode.IsControl() {
		f.msg += h.Length
		if f.msg > f.max {
			f.err = ErrMessageTooLarge
			f.tooLarge()
			return 0, f.err
		}
		if h.OpCode == ws.OpBinary {
			h.OpCode = ws.OpText
		}
		if h.Fin {
			f.msg = 0
		}
	}
	w := bytes.NewBuffer(f.hdr[:0])
	if err := ws.WriteHeader(w, h); err != nil {
		f.err = err
		return 0, err
	}
	f.out = w.Bytes()
	f.remain = h.Length
	if h.OpCode == ws.OpClose && f.closing != nil && h.Length <= 125 {
		// Read whole (a control frame's payload is at most 125 bytes),
		// answered, then passed on as it came.
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(f.src, payload); err != nil {
			f.err = err
			return 0, err
		}
		f.out = append(f.out, payload...)
		f.remain = 0
		f.frameRead()
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		f.closing(payload)
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}
