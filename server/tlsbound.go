package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// boundedTLS bounds the TLS handshake of each connection accepted by a
// tls.Listener as a whole. Under TLS, connlimit's idle deadline is
// renewed by every byte, so a client sending its ClientHello one byte
// every few seconds held a connection, unauthenticated, for as long as
// it liked (slowloris: about 45 hours for a 16 KiB ClientHello at one
// byte every 9.9 s, each such connection taking a slot of
// limits.max_connections). The handshake runs at the connection's first
// Read or Write, in that connection's goroutine (sipgo's), never in the
// accept loop, within timeout (limits.idle_timeout, as a SIP message over
// TCP must be whole within it); past it the connection is closed and reads
// as io.EOF.
type boundedTLS struct {
	net.Listener // a tls.Listener
	timeout      time.Duration
}

func (l boundedTLS) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*tls.Conn)
	if !ok || l.timeout <= 0 {
		return c, nil
	}
	return &boundedTLSConn{Conn: tc, timeout: l.timeout}, nil
}

type boundedTLSConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *boundedTLSConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			_ = c.Conn.Close()
			if errors.Is(err, context.DeadlineExceeded) {
				err = io.EOF // as connlimit's idle deadline reads
			}
			c.err = err
		}
	})
	return c.err
}

func (c *boundedTLSConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *boundedTLSConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
