// Package wsgate stands in front of the listener that sipgo's ServeWS and
// ServeWSS accept from, so that only complete, acceptable WebSocket
// upgrade requests reach sipgo.
//
// sipgo v1.7.4 upgrades each accepted connection in a goroutine of its
// own with a 10 s deadline, but it checks nothing an operator cares
// about (Origin, the sip subprotocol of RFC 7118, the size of the
// request) and keeps the request to itself: Origin, path and query (some
// SDKs put an access_token there) are lost. A Listener reads the request
// head itself, in one goroutine per connection bounded by a deadline
// (after the TLS handshake for wss, which happens in that goroutine too),
// answers bad requests with an HTTP error and closes them, and hands the
// good ones to Accept as a *Conn that replays the head to sipgo's
// upgrader. What the request carried is kept on the Conn and can be
// looked up by remote address (Listener.Handshake), which is what a SIP
// handler has (sip.Request.Source).
//
// After the upgrade the Conn reads the frame headers on their way to
// sipgo: a message larger than Config.MaxMessageBytes closes the
// connection with status 1009 (sipgo would cut a message longer than its
// 32768-byte read buffer and parse the rest as garbage), and binary
// messages reach sipgo as text ones (RFC 7118 section 4.2: both kinds
// must be accepted; sipgo v1.7.4 drops binary frames without a word).
package wsgate

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Config configures a Listener. The zero value of each field means its
// default.
type Config struct {
	// HandshakeTimeout bounds, from accept, the TLS handshake (when TLS is
	// set) and the reading of the upgrade request head. Default 5s.
	HandshakeTimeout time.Duration
	// MaxHeadBytes is the largest request head (request line and header
	// fields, with the blank line) accepted, in bytes. Default 8192.
	MaxHeadBytes int
	// MaxPending is how many handshakes may be in progress at once over
	// the listener; more are closed at accept. Default 1024.
	MaxPending int
	// MaxPendingPerIP is the same bound for one source: an IPv4 address or
	// an IPv6 /64. Default 16.
	MaxPendingPerIP int
	// Origins lists the origins allowed to connect, each as browsers send
	// it ("https://phone.example.com", "http://127.0.0.1:8080"), or "*" for
	// any. Empty: same host, that is the Origin's host equals the Host
	// header's host, ports aside (the page and the WebSocket served by one
	// machine on different ports). A request without Origin (not a
	// browser) is always allowed.
	Origins []string
	// HostAllowed, when set, narrows the same-host default (Origins
	// empty): the Host header must then name an IP address or a name
	// HostAllowed accepts (the server's own names). Without it a page of
	// attacker.example, whose name the attacker makes resolve to this
	// server (DNS rebinding), sends Origin http://attacker.example and
	// Host attacker.example, which the same-host rule alone accepts.
	HostAllowed func(name string) bool
	// MaxMessageBytes is the largest WebSocket message (the payloads of
	// its frames together), in bytes; a larger one closes the connection
	// with status 1009. Default 32768: sipgo v1.7.4 reads a message into a
	// buffer of sip.TransportBufferReadSize (32768) bytes and silently cuts
	// what is longer. Negative: no limit and no frame reading at all (the
	// bytes after the upgrade pass untouched, binary frames included).
	MaxMessageBytes int
	// MessageTimeout bounds how long a frame may take to arrive, from its
	// first byte to its last, and a message in several frames from the
	// first byte of its first frame to the last of its last: past it the
	// connection ends with ErrMessageTooSlow, as a TCP connection does
	// when a SIP message is not whole within limits.idle_timeout. The
	// check runs when a read returns, so a client trickling one byte at a
	// time is closed at its first byte past the bound. Zero: no bound
	// (only the idle deadline of the connection below, which each byte
	// renews). Ignored when MaxMessageBytes is negative.
	MessageTimeout time.Duration
	// TLS, when set, makes this a wss listener: the wrapped listener must
	// be a plain TCP one, and the TLS handshake happens in the
	// connection's own goroutine within HandshakeTimeout. Serve the
	// Listener with sipgo's ServeWSS, which does no TLS of its own. The
	// Listener uses a copy offering only ALPN http/1.1 (a WebSocket over
	// HTTP/2 would not reach sipgo's upgrader).
	TLS *tls.Config
	// OnRefused, when set, is called once for every connection closed
	// before it reached sipgo, and for every one closed for a too large
	// message (metrics). It must not block.
	OnRefused func(Reason)
	// OnClosed, when set, is called once when a connection handed to
	// Accept is closed (by sipgo, when the peer went away or a read
	// failed), with what its upgrade request carried: the server removes
	// the bindings that came over it. It must not block.
	OnClosed func(Handshake)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Listener is a net.Listener whose Accept returns only connections that
// sent an acceptable upgrade request, as *Conn.
type Listener struct {
	ln        net.Listener
	cfg       Config
	log       *slog.Logger
	origins   map[string]bool // normalized; nil: same host
	anyOrigin bool

	ready     chan *Conn
	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // why the accept loop ended

	mu      sync.Mutex
	pending map[net.Conn]netip.Prefix
	perIP   map[netip.Prefix]int
	conns   map[string]*Conn // open connections handed to Accept, by remote address
}

var _ net.Listener = (*Listener)(nil)

// New wraps ln and starts accepting from it. ln is a plain TCP listener
// (possibly wrapped, as by connlimit) also for wss: see Config.TLS. New
// fails only on a malformed Config.Origins entry.
func New(ln net.Listener, cfg Config) (*Listener, error) {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.MaxHeadBytes <= 0 {
		cfg.MaxHeadBytes = 8192
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	if cfg.MaxPendingPerIP <= 0 {
		cfg.MaxPendingPerIP = 16
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 32768
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.NextProtos = []string{"http/1.1"}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		ln:      ln,
		cfg:     cfg,
		log:     log,
		ready:   make(chan *Conn),
		done:    make(chan struct{}),
		pending: map[net.Conn]netip.Prefix{},
		perIP:   map[netip.Prefix]int{},
		conns:   map[string]*Conn{},
	}
	for i, o := range cfg.Origins {
		if o == "*" {
			l.anyOrigin = true
			continue
		}
		n, ok := normalizeOrigin(o)
		if !ok {
			return nil, fmt.Errorf("wsgate: origins[%d] %q: want scheme://host[:port] with scheme http or https, or *", i, o)
		}
		if l.origins == nil {
			l.origins = map[string]bool{}
		}
		l.origins[n] = true
	}
	go l.acceptLoop()
	return l, nil
}

// Accept returns the next connection whose upgrade request passed, as a
// *Conn. After Close it returns an error wrapping net.ErrClosed (sipgo
// stops serving quietly on that one).
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		return nil, l.err
	}
}

// Close closes the wrapped listener and every connection still in its
// handshake. Connections already returned by Accept stay open.
func (l *Listener) Close() error {
	err := l.ln.Close()
	l.stop(fmt.Errorf("wsgate: listener closed: %w", net.ErrClosed))
	l.mu.Lock()
	pending := make([]net.Conn, 0, len(l.pending))
	for c := range l.pending {
		pending = append(pending, c)
	}
	l.mu.Unlock()
	for _, c := range pending {
		_ = c.Close()
	}
	return err
}

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Handshake returns what the upgrade request of the open connection from
// remote (ip:port, as sipgo reports a request's Source) carried.
func (l *Listener) Handshake(remote string) (Handshake, bool) {
	l.mu.Lock()
	c := l.conns[remote]
	l.mu.Unlock()
	if c == nil {
		return Handshake{}, false
	}
	return c.hs, true
}

// Pending returns the number of handshakes in progress.
func (l *Listener) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// Open returns the number of connections handed to Accept and not yet
// closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func (l *Listener) stop(err error) {
	l.closeOnce.Do(func() {
		l.errMu.Lock()
		l.err = err
		l.errMu.Unlock()
		close(l.done)
	})
}

// acceptLoop accepts from the wrapped listener and starts a handshake
// goroutine per connection, within the pending bounds. Temporary errors
// (such as too many open files) are retried with a backoff up to 1s.
func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.stop(err)
				return
			}
			select {
			case <-l.done:
				return
			default:
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", "error", err, "retry_s", delay.Seconds())
			time.Sleep(delay)
			continue
		}
		delay = 0
		src := sourceOf(nc.RemoteAddr())
		if reason := l.admit(nc, src); reason != "" {
			l.refused(nc, reason)
			_ = nc.Close()
			continue
		}
		go l.handshake(nc)
	}
}

// admit counts a new handshake, or says why it is refused.
func (l *Listener) admit(nc net.Conn, src netip.Prefix) Reason {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case len(l.pending) >= l.cfg.MaxPending:
		return RefusedPending
	case l.perIP[src] >= l.cfg.MaxPendingPerIP:
		return RefusedPendingPerIP
	}
	l.pending[nc] = src
	l.perIP[src]++
	return ""
}

// release ends the count of a handshake admitted with nc.
func (l *Listener) release(nc net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	src, ok := l.pending[nc]
	if !ok {
		return
	}
	delete(l.pending, nc)
	if n := l.perIP[src] - 1; n > 0 {
		l.perIP[src] = n
	} else {
		delete(l.perIP, src)
	}
}

func (l *Listener) refused(nc net.Conn, reason Reason) {
	l.log.Debug("websocket connection refused", "source", nc.RemoteAddr().String(), "reason", string(reason))
	if l.cfg.OnRefused != nil {
		l.cfg.OnRefused(reason)
	}
}

// forget removes c from the lookup table if it is still there.
func (l *Listener) forget(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[c.hs.Remote] == c {
		delete(l.conns, c.hs.Remote)
	}
}

// sourceOf returns the address a source is counted by: the IPv4 address,
// or the /64 of an IPv6 one.
func sourceOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}
