package connlimit_test

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/connlimit"
)

// serve accepts on a wrapped loopback listener and echoes, until the test
// ends; it returns the listener's address.
func serve(t *testing.T, l *connlimit.Limiter) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Listen(raw, "tcp")
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return raw.Addr().String()
}

// dial connects from the loopback address from (127.0.0.0/8 is all ours
// on Linux).
func dial(t *testing.T, from, to string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// alive reports whether the server still echoes on c.
func alive(c net.Conn) bool {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return false
	}
	b := make([]byte, 1)
	_, err := c.Read(b)
	return err == nil
}

func waitOpen(t *testing.T, l *connlimit.Limiter, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for l.Open() != want {
		if time.Now().After(deadline) {
			t.Fatalf("open connections: got %d, want %d", l.Open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPerIPAndTotal(t *testing.T) {
	l := connlimit.New(connlimit.Config{MaxConns: 5, MaxPerIP: 2,
		Exempt: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.9") }})
	addr := serve(t, l)
	a1, a2 := dial(t, "127.0.0.2", addr), dial(t, "127.0.0.2", addr)
	a3 := dial(t, "127.0.0.2", addr) // over the per-address limit: closed
	if !alive(a1) || !alive(a2) {
		t.Fatal("the first two connections do not work")
	}
	if alive(a3) {
		t.Fatal("third connection from one address works, want it closed")
	}
	// Another address has its own allowance; an exempt one has none.
	b1 := dial(t, "127.0.0.3", addr)
	x1, x2 := dial(t, "127.0.0.9", addr), dial(t, "127.0.0.9", addr)
	for _, c := range []net.Conn{b1, x1, x2} {
		if !alive(c) {
			t.Fatal("a connection within the limits does not work")
		}
	}
	waitOpen(t, l, 5)
	// The total is full.
	if c := dial(t, "127.0.0.4", addr); alive(c) {
		t.Fatal("connection over the total works")
	}
	// Closing one frees a place; the listener kept serving.
	a1.Close()
	waitOpen(t, l, 4)
	if c := dial(t, "127.0.0.2", addr); !alive(c) {
		t.Fatal("no connection after one was closed")
	}
	if l.Refused() < 2 {
		t.Errorf("Refused: got %d, want at least 2", l.Refused())
	}
}

func TestRefuseAndCloseFrom(t *testing.T) {
	banned := netip.MustParseAddr("127.0.0.5")
	l := connlimit.New(connlimit.Config{Refuse: func(a netip.Addr) bool { return a == banned }})
	addr := serve(t, l)
	if c := dial(t, "127.0.0.5", addr); alive(c) {
		t.Fatal("banned address connected")
	}
	c1, c2 := dial(t, "127.0.0.6", addr), dial(t, "127.0.0.6", addr)
	other := dial(t, "127.0.0.7", addr)
	if !alive(c1) || !alive(c2) || !alive(other) {
		t.Fatal("connections do not work")
	}
	if n := l.CloseFrom(netip.MustParseAddr("127.0.0.6")); n != 2 {
		t.Fatalf("CloseFrom: got %d, want 2", n)
	}
	if alive(c1) || alive(c2) {
		t.Fatal("connections survived CloseFrom")
	}
	if !alive(other) {
		t.Fatal("CloseFrom closed another address's connection")
	}
}

func TestIdleTimeouts(t *testing.T) {
	l := connlimit.New(connlimit.Config{IdleTimeout: 300 * time.Millisecond, AuthenticatedIdleTimeout: 5 * time.Second})
	addr := serve(t, l)
	idle := dial(t, "127.0.0.2", addr)
	authed := dial(t, "127.0.0.2", addr)
	if !alive(idle) || !alive(authed) {
		t.Fatal("connections do not work")
	}
	if !l.Authenticated("tcp", authed.LocalAddr().String()) {
		t.Fatal("Authenticated found no connection")
	}
	if l.Authenticated("tls", authed.LocalAddr().String()) {
		t.Fatal("Authenticated matched another transport")
	}
	// The authenticated one waits in a read armed with the short
	// deadline: Authenticated extends it at once, with no exchange (a
	// browser sends nothing after its REGISTER).
	time.Sleep(800 * time.Millisecond)
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle unauthenticated connection: read got %v, want EOF (closed by the server)", err)
	}
	if !alive(authed) {
		t.Fatal("authenticated connection closed after a short idle time")
	}
	waitOpen(t, l, 1)
}

// A write deadline the caller sets is kept by Write (instead of
// WriteTimeout from now) until it is reset with the zero time.
func TestOwnWriteDeadline(t *testing.T) {
	l := connlimit.New(connlimit.Config{WriteTimeout: 5 * time.Second})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Listen(raw, "tcp")
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	_ = dial(t, "127.0.0.1", raw.Addr().String()) // never reads
	c, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	start := time.Now()
	for range 4096 { // 256 MB at most: far past any socket buffer
		if _, err = c.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("write to a peer that does not read: %v after %v; want the 200 ms deadline exceeded", err, time.Since(start))
	}
}

// addrConn is one end of a pipe that says it comes from remote.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// fakeListener hands out pipe ends from the given remote addresses.
type fakeListener struct {
	conns chan net.Conn
}

func (f *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-f.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv6loopback} }

// TestPerIPCountsIPv6Per64 (issue 15 item 9): an IPv6 host owns a whole
// /64 and can pick a new address for every connection; the per-address
// limit counts the /64. Loopback has a single IPv6 address, so the
// addresses are given by a listener of pipes.
func TestPerIPCountsIPv6Per64(t *testing.T) {
	l := connlimit.New(connlimit.Config{MaxConns: 100, MaxPerIP: 2})
	fl := &fakeListener{conns: make(chan net.Conn, 8)}
	ln := l.Listen(fl, "tcp")
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var peers []net.Conn
	offer := func(remote string) {
		a, b := net.Pipe()
		peers = append(peers, b)
		fl.conns <- addrConn{Conn: a, remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote))}
	}
	t.Cleanup(func() {
		close(fl.conns)
		for _, p := range peers {
			_ = p.Close()
		}
	})
	for _, r := range []string{"[2001:db8:1:2::1]:5060", "[2001:db8:1:2::2]:5060", "[2001:db8:1:2:ffff::3]:5060", "[2001:db8:1:3::1]:5060"} {
		offer(r)
	}
	got := map[string]bool{}
	timeout := time.After(3 * time.Second)
	for len(got) < 3 {
		select {
		case c := <-accepted:
			got[c.RemoteAddr().String()] = true
		case <-timeout:
			t.Fatalf("accepted %v, want three", got)
		}
	}
	select {
	case c := <-accepted:
		t.Fatalf("also accepted %s: a third connection from 2001:db8:1:2::/64", c.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}
	if got["[2001:db8:1:2:ffff::3]:5060"] || !got["[2001:db8:1:3::1]:5060"] {
		t.Fatalf("accepted %v: want the first two of 2001:db8:1:2::/64 and the one of another /64", got)
	}
}

// TestKeepAlivesDoNotKeepUnauthenticated: CRLF keep-alives do not extend
// an unauthenticated connection's idle timeout (it runs from its last
// request bytes): a CRLF every few seconds kept one open for ever, and ten
// addresses' 1,000 each filled max_connections.
func TestKeepAlivesDoNotKeepUnauthenticated(t *testing.T) {
	l := connlimit.New(connlimit.Config{IdleTimeout: 400 * time.Millisecond, AuthenticatedIdleTimeout: 5 * time.Second})
	addr := serve(t, l)
	c := dial(t, "127.0.0.3", addr)
	start := time.Now()
	buf := make([]byte, 64)
	for time.Since(start) < 3*time.Second {
		if _, err := c.Write([]byte("\r\n")); err != nil {
			break // closed
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); errors.Is(err, io.EOF) {
			break
		}
	}
	if took := time.Since(start); took >= 3*time.Second {
		t.Fatalf("a connection sending only keep-alives was open after %v, want closed after 400ms", took)
	}
	// Request bytes do keep it: alive answers with one.
	d := dial(t, "127.0.0.3", addr)
	for range 8 {
		time.Sleep(100 * time.Millisecond)
		if !alive(d) {
			t.Fatal("a connection carrying data was closed as idle")
		}
	}
}
