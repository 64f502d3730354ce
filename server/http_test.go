package server_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
)

// httpConn is a raw keep-alive HTTP/1.1 connection to the API listener.
type httpConn struct {
	net.Conn
	br *bufio.Reader
}

func dialHTTP(t *testing.T, addr string) *httpConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &httpConn{Conn: c, br: bufio.NewReader(c)}
}

// get sends GET path and returns the status, or the error.
func (c *httpConn) get(path string) (int, error) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: sipwarden.test\r\n\r\n"); err != nil {
		return 0, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// closedWithin reports whether the server closes c within d (reading EOF
// or a reset), rather than leaving it open.
func (c *httpConn) closedWithin(d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.ReadByte()
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestHTTPConnectionsBounded: the HTTP listener closes a keep-alive
// connection idle for limits.http_idle_timeout (they used to be held
// forever, one file descriptor each), and closes at once a connection
// past limits.http_max_connections.
func TestHTTPConnectionsBounded(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.HTTPIdleTimeout = config.Duration(300 * time.Millisecond)
	cfg.Limits.HTTPMaxConnections = 3
	ts := startServer(t, cfg)
	addr := ts.Addr("http")

	t.Run("idle", func(t *testing.T) {
		c := dialHTTP(t, addr)
		if code, err := c.get("/healthz"); err != nil || code != 200 {
			t.Fatalf("GET /healthz: %d %v", code, err)
		}
		start := time.Now()
		if !c.closedWithin(3 * time.Second) {
			t.Fatalf("an idle keep-alive connection was still open after 3 s (http_idle_timeout 300ms)")
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("closed after %v, before the idle timeout of 300ms", d)
		}
	})

	t.Run("cap", func(t *testing.T) {
		cfg := testConfig(t, t.TempDir())
		cfg.Limits.HTTPIdleTimeout = config.Duration(time.Minute)
		cfg.Limits.HTTPMaxConnections = 3
		ts := startServer(t, cfg)
		addr := ts.Addr("http")
		// The oldest: a request whose header is still arriving. Then two
		// keep-alive connections, served once and idle since.
		partial := dialHTTP(t, addr)
		if _, err := io.WriteString(partial, "GET /healthz HTTP/1.1\r\nHost: sipwarden.test\r\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		var idle []*httpConn
		for range 2 {
			c := dialHTTP(t, addr)
			if code, err := c.get("/healthz"); err != nil || code != 200 {
				t.Fatalf("GET /healthz: %d %v", code, err)
			}
			idle = append(idle, c)
			time.Sleep(20 * time.Millisecond)
		}
		// A new connection closes the one idle longest instead of being
		// refused: 1,024 idle keep-alive connections from anyone used to
		// lock the operator out of the API until they went. The request
		// in progress is not cut.
		c := dialHTTP(t, addr)
		if code, err := c.get("/healthz"); err != nil || code != 200 {
			t.Fatalf("a 4th connection over http_max_connections 3: %d %v, want served", code, err)
		}
		if !idle[0].closedWithin(2 * time.Second) {
			t.Fatal("the connection idle longest was not closed for the new one")
		}
		if code, err := idle[1].get("/healthz"); err != nil || code != 200 {
			t.Fatalf("a connection idle for less long: %d %v, want still served", code, err)
		}
		_ = partial.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(partial, "\r\n"); err != nil {
			t.Fatalf("the request in progress was cut: %v", err)
		}
		if res, err := http.ReadResponse(partial.br, nil); err != nil || res.StatusCode != 200 {
			t.Fatalf("the request in progress: %v %v, want 200", res, err)
		}
		if code, err := c.get("/healthz"); err != nil || code != 200 {
			t.Fatalf("the new connection, again: %d %v", code, err)
		}
	})
}
