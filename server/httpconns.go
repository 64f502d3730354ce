package server

import (
	"log/slog"
	"net"
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

// capConns returns ln holding at most max connections open at once: a
// connection accepted beyond it is closed at once, so that idle or slow
// clients cannot take every file descriptor of the process (net/http
// itself accepts without bound). Connections of the SIP listeners are
// bounded by connlimit, which also sets SIP's read deadlines and so does
// not suit net/http.
func capConns(ln net.Listener, max int, log *slog.Logger) net.Listener {
	return &cappedListener{Listener: ln, max: int64(max), log: log}
}

type cappedListener struct {
	net.Listener
	max  int64
	open atomic.Int64
	log  *slog.Logger
	// warned limits the log to one line per burst of refusals.
	warned atomic.Int64 // unix seconds of the last warning
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
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
