// Package connlimit bounds the TCP and TLS connections a SIP server
// accepts: in total and per source address, with a read deadline that is
// short for connections that never authenticated and long for those that
// carry a registration.
//
// sipgo v1.7.2 accepts in a loop that returns on the first Accept error
// (and so stops the listener), reads each connection with no deadline
// unless TransportTCP.ReadTimeout is set (one value for every connection),
// and closes a connection only when the peer does. So the limits live in a
// net.Listener wrapper handed to ServeTCP/ServeTLS (wrapping the TCP
// listener under tls.NewListener, so that the TLS handshake is bounded
// too): Accept closes refused connections itself and retries temporary
// errors, and each accepted net.Conn sets its own read deadline before
// every Read. A deadline that passes reads as io.EOF, which sipgo treats
// as a normal close.
package connlimit

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Limiter. The zero value of each field means its
// default.
type Config struct {
	// MaxConns open at once over every listener of the Limiter. Default 10000.
	MaxConns int
	// MaxPerIP open at once from one source address. Default 1000.
	MaxPerIP int
	// Exempt, when set, reports addresses not limited per address (they
	// count towards MaxConns).
	Exempt func(netip.Addr) bool
	// Refuse, when set, reports addresses whose connections are closed as
	// soon as they are accepted (banned sources).
	Refuse func(netip.Addr) bool
	// IdleTimeout closes a connection that has not been marked
	// authenticated after this long without receiving data. Default 10s.
	IdleTimeout time.Duration
	// AuthenticatedIdleTimeout applies after Authenticated. Default 2h5m.
	AuthenticatedIdleTimeout time.Duration
	// WriteTimeout bounds each write, so that a peer that stops reading
	// cannot hold a goroutine forever. Default 10s.
	WriteTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Limiter counts connections over one or more listeners.
type Limiter struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
	perTp map[string]int
	conns map[connKey]*Conn

	refused   atomic.Int64
	onRefused func(reason Reason)
}

// Reason says why a connection was refused at accept.
type Reason string

// Refusal reasons.
const (
	RefusedBanned = Reason("banned")
	RefusedTotal  = Reason("too many connections")
	RefusedPerIP  = Reason("too many connections from the address")
)

// OnRefused registers f to be called for every connection refused at
// accept (metrics). Call it before serving.
func (l *Limiter) OnRefused(f func(reason Reason)) { l.onRefused = f }

// OpenBy returns the number of open connections of a transport.
func (l *Limiter) OpenBy(transport string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perTp[transport]
}

type connKey struct {
	transport string
	remote    string
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 10000
	}
	if cfg.MaxPerIP <= 0 {
		cfg.MaxPerIP = 1000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.AuthenticatedIdleTimeout <= 0 {
		cfg.AuthenticatedIdleTimeout = 2*time.Hour + 5*time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{cfg: cfg, log: log, perIP: map[netip.Addr]int{}, perTp: map[string]int{}, conns: map[connKey]*Conn{}}
}

// Listen wraps ln, whose connections carry transport ("tcp", "tls": the
// name Authenticated is called with).
func (l *Limiter) Listen(ln net.Listener, transport string) net.Listener {
	return &listener{Listener: ln, l: l, transport: transport}
}

// Open returns the number of open connections.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Refused returns how many connections were closed at accept.
func (l *Limiter) Refused() int64 { return l.refused.Load() }

// Authenticated gives the connection of transport from remote (ip:port,
// as sipgo reports a request's source) the long idle timeout, from now
// on (the read in progress too). It reports whether there is such a
// connection.
func (l *Limiter) Authenticated(transport, remote string) bool {
	l.mu.Lock()
	c := l.conns[connKey{transport, remote}]
	l.mu.Unlock()
	if c == nil {
		return false
	}
	c.authed.Store(true)
	// The read in progress was armed with the short timeout: a client that
	// sends nothing after its REGISTER (a browser: no keep-alives over
	// WebSocket) would lose its connection to it.
	_ = c.Conn.SetReadDeadline(time.Now().Add(l.cfg.AuthenticatedIdleTimeout))
	return true
}

// CloseFrom closes every connection from addr and returns how many.
func (l *Limiter) CloseFrom(addr netip.Addr) int {
	addr = addr.Unmap()
	var cs []*Conn
	l.mu.Lock()
	for _, c := range l.conns {
		if c.ip == addr {
			cs = append(cs, c)
		}
	}
	l.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	return len(cs)
}

// source is what the per-address limit counts: an IPv4 address, or the
// /64 of an IPv6 one (one host holds a whole /64 and can pick any address
// in it, as the guard's bans assume too).
func source(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// admit counts a new connection, or reports why it is refused.
func (l *Limiter) admit(c *Conn) (reason Reason) {
	if l.cfg.Refuse != nil && l.cfg.Refuse(c.ip) {
		return RefusedBanned
	}
	exempt := l.cfg.Exempt != nil && l.cfg.Exempt(c.ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.cfg.MaxConns:
		return RefusedTotal
	case !exempt && l.perIP[source(c.ip)] >= l.cfg.MaxPerIP:
		return RefusedPerIP
	}
	l.total++
	l.perIP[source(c.ip)]++
	l.perTp[c.key.transport]++
	l.conns[c.key] = c
	return ""
}

func (l *Limiter) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.perTp[c.key.transport] - 1; n > 0 {
		l.perTp[c.key.transport] = n
	} else {
		delete(l.perTp, c.key.transport)
	}
	if n := l.perIP[source(c.ip)] - 1; n > 0 {
		l.perIP[source(c.ip)] = n
	} else {
		delete(l.perIP, source(c.ip))
	}
	if l.conns[c.key] == c {
		delete(l.conns, c.key)
	}
}

type listener struct {
	net.Listener
	l         *Limiter
	transport string
}

// Accept returns the next admitted connection. Refused connections are
// closed here; temporary errors (such as too many open files) are retried
// with a backoff up to 1s, since sipgo stops serving on any error.
func (ln *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := ln.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			ln.l.log.Warn("accept failed; retrying", "transport", ln.transport, "error", err, "retry_s", delay.Seconds())
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := &Conn{Conn: nc, l: ln.l, key: connKey{ln.transport, nc.RemoteAddr().String()}}
		c.active.Store(time.Now().UnixNano())
		if ap, err := netip.ParseAddrPort(c.key.remote); err == nil {
			c.ip = ap.Addr().Unmap().WithZone("")
		}
		if reason := ln.l.admit(c); reason != "" {
			ln.l.refused.Add(1)
			ln.l.log.Debug("connection refused", "transport", ln.transport, "source", c.key.remote, "reason", string(reason))
			if ln.l.onRefused != nil {
				ln.l.onRefused(reason)
			}
			_ = nc.Close()
			continue
		}
		return c, nil
	}
}

// Conn is an admitted connection.
type Conn struct {
	net.Conn
	l      *Limiter
	key    connKey
	ip     netip.Addr
	authed atomic.Bool
	once   sync.Once
	// ownDeadline: a caller set a write deadline of its own (see
	// SetWriteDeadline); Write keeps it instead of WriteTimeout.
	ownDeadline atomic.Bool
	// active is when the connection last carried something other than
	// keep-alives (unix nanoseconds): an unauthenticated connection's
	// idle timeout runs from it.
	active atomic.Int64
}

// MarkActive records that the connection carried a request, not a
// keep-alive: its unauthenticated idle timeout runs from now. The reader
// of a TLS or WebSocket connection's plaintext calls it (the stateless
// front's framer, the WebSocket gate's frame reader); Read marks a SIP
// TCP connection itself.
func (c *Conn) MarkActive() { c.active.Store(time.Now().UnixNano()) }

// Of returns the limiter's connection c is, or is over (a TLS connection
// made on one: NetConn), for its reader to call MarkActive; nil when c is
// neither.
func Of(c net.Conn) *Conn {
	if lc, ok := c.(*Conn); ok {
		return lc
	}
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		lc, _ := tc.NetConn().(*Conn)
		return lc
	}
	return nil
}

// keepAliveOnly reports whether b is CRs and LFs only: a keep-alive
// (RFC 5626 3.5.1), not a request.
func keepAliveOnly(b []byte) bool {
	for _, x := range b {
		if x != '\r' && x != '\n' {
			return false
		}
	}
	return true
}

// Read reads with the connection's idle deadline; a deadline that passes
// reads as io.EOF.
func (c *Conn) Read(b []byte) (int, error) {
	authed := c.authed.Load()
	idle := c.l.cfg.IdleTimeout
	// Unauthenticated: from the last request's bytes, not the last read:
	// a CRLF every few seconds kept such a connection open for ever, and
	// ten addresses' 1,000 each filled limits.max_connections (a probe).
	deadline := time.Unix(0, c.active.Load()).Add(idle)
	if authed {
		idle = c.l.cfg.AuthenticatedIdleTimeout
		deadline = time.Now().Add(idle)
	}
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	if !authed && c.authed.Load() {
		// Authenticated ran meanwhile and its long deadline may have been
		// overwritten by the short one just set.
		idle = c.l.cfg.AuthenticatedIdleTimeout
		if err := c.Conn.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(b)
	// Over TLS and WebSocket the bytes are encrypted or framed and masked:
	// a keep-alive cannot be told from a request here, and the reader of
	// the plaintext marks requests (MarkActive).
	if n > 0 && c.key.transport == "tcp" && !keepAliveOnly(b[:n]) {
		c.active.Store(time.Now().UnixNano())
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.l.log.Debug("idle connection closed", "transport", c.key.transport, "source", c.key.remote,
			"authenticated", c.authed.Load(), "idle_s", idle.Seconds())
		_ = c.Close()
		return n, io.EOF
	}
	return n, err
}

// Write writes with the write deadline: WriteTimeout from now, or the one
// the caller set with SetWriteDeadline.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.ownDeadline.Load() {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.cfg.WriteTimeout)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// SetWriteDeadline sets a deadline that Write keeps until it is reset
// with the zero time (then each write gets WriteTimeout again): a caller
// that must not wait as long, such as the stateless REGISTER workers that
// every client shares, sets a shorter one around its writes. Through TLS
// too: tls.Conn passes its deadlines down.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.ownDeadline.Store(!t.IsZero())
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines; the write one as SetWriteDeadline does.
func (c *Conn) SetDeadline(t time.Time) error {
	c.ownDeadline.Store(!t.IsZero())
	return c.Conn.SetDeadline(t)
}

// Close closes the connection and releases its place once.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}
