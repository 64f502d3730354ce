package server

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Deadlines of the HTTP listeners' requests (limits.http_idle_timeout is
// the one between requests). A minute to send a request, body included,
// and a minute to read its answer are plenty for the API's bodies (1 MiB
// by default); slower clients only hold connections.
const (
	httpReadTimeout  = time.Minute
	httpWriteTimeout = time.Minute
)

// capConns returns ln holding at most max connections open at once, so
// that idle or slow clients cannot take every file descriptor of the
// process (net/http itself accepts without bound). A connection accepted
// beyond it closes the one idle longest (a keep-alive connection between
// requests, or one that has sent nothing yet), or is closed at once when
// every one is busy with a request (its header arriving, or handled): 1,024 idle keep-alive connections
// from anyone used to lock the operator out of the API until they went
// (a probe). The server's ConnState must be the listener's connState.
// Connections of the SIP listeners are bounded by connlimit, which also
// sets SIP's read deadlines and so does not suit net/http.
func capConns(ln net.Listener, max int, log *slog.Logger) *cappedListener {
	return &cappedListener{Listener: ln, max: int64(max), log: log, idle: map[*cappedConn]time.Time{}}
}

type cappedListener struct {
	net.Listener
	max  int64
	open atomic.Int64
	log  *slog.Logger
	// warned limits the log to one line per burst of refusals.
	warned atomic.Int64 // unix seconds of the last warning

	mu   sync.Mutex
	idle map[*cappedConn]time.Time // connections without a request in progress, since when
}

// connState is the http.Server's ConnState: it keeps the set of idle
// connections, the ones a connection over the cap may close.
func (l *cappedListener) connState(c net.Conn, st http.ConnState) {
	cc, ok := c.(*cappedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		cc.reading.Store(false)
		l.idle[cc] = time.Now()
	default:
		delete(l.idle, cc)
	}
}

// evictIdle closes the connection idle longest and reports whether there
// was one.
func (l *cappedListener) evictIdle() bool {
	l.mu.Lock()
	var victim *cappedConn
	var since time.Time
	for c, t := range l.idle {
		if c.reading.Load() {
			continue // a request's header is arriving: in progress
		}
		if victim == nil || t.Before(since) {
			victim, since = c, t
		}
	}
	delete(l.idle, victim)
	l.mu.Unlock()
	if victim == nil {
		return false
	}
	_ = victim.Close()
	return true
}

// Accept returns the next connection under the cap, closing the ones
// over it.
func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			if l.evictIdle() {
				if l.open.Add(1) <= l.max {
					return &cappedConn{Conn: c, l: l}, nil
				}
				l.open.Add(-1) // another took the slot meanwhile
			}
			_ = c.Close() // refused: nothing to tell a client that is gone
			if now := time.Now().Unix(); l.warned.Swap(now) != now {
				l.log.Warn("http connection refused: limits.http_max_connections reached",
					"addr", l.Addr().String(), "max", l.max, "source", c.RemoteAddr().String())
			}
			continue
		}
		return &cappedConn{Conn: c, l: l}, nil
	}
}

// cappedConn gives its slot back once, when closed.
type cappedConn struct {
	net.Conn
	l    *cappedListener
	once sync.Once
	// reading: bytes of a request came since the connection was last
	// idle (net/http reports a request active only once its header is
	// whole).
	reading atomic.Bool
}

func (c *cappedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.reading.Store(true)
	}
	return n, err
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
	})
	return err
}
