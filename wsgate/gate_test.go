package wsgate_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/wsgate"
)

// A good upgrade reaches sipgo, which answers SIP over it; the request's
// Origin, path and query are found by the request's source.
func TestUpgradeReachesSipgo(t *testing.T) {
	for _, secure := range []bool{false, true} {
		for _, tc := range []struct {
			name   string
			origin string
			method string
		}{
			{"no origin", "", "OPTIONS"},
			{"same host other port", "http://127.0.0.1:8080", "REGISTER"},
			{"same host default port", "https://127.0.0.1", "OPTIONS"},
		} {
			name := tc.name
			if secure {
				name = "wss/" + name
			}
			t.Run(name, func(t *testing.T) {
				cfg := wsgate.Config{}
				if secure {
					cfg.TLS = selfSigned(t)
				}
				s := startServer(t, cfg)
				conn := s.mustDial(t, dialOpts{origin: tc.origin, path: "/ws?access_token=tok-123&x=1"})
				res, err := exchange(conn, ws.OpText, sipRequest(tc.method, 0), 5*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", tc.method, err)
				}
				if res.StatusCode != 200 {
					t.Fatalf("%s: got %d, want 200", tc.method, res.StatusCode)
				}
				for _, h := range []struct{ name, want string }{
					{"X-Origin", tc.origin}, {"X-Path", "/ws"}, {"X-Token", "tok-123"},
				} {
					if got := header(res, h.name); got != h.want {
						t.Errorf("%s: got %q, want %q", h.name, got, h.want)
					}
				}
				if got := s.gate.Open(); got != 1 {
					t.Errorf("open: got %d, want 1", got)
				}
				local := conn.LocalAddr().String()
				if _, ok := s.gate.Handshake(local); !ok {
					t.Errorf("Handshake(%s): not found", local)
				}
				_ = conn.Close()
				waitFor(t, 5*time.Second, "lookup entry removed after the client closed", func() bool {
					_, ok := s.gate.Handshake(local)
					return !ok && s.gate.Open() == 0
				})
				if n := s.refusedTotal(); n != 0 {
					t.Errorf("refused: got %d, want 0", n)
				}
			})
		}
	}
}

// Bad upgrade requests get an HTTP error naming the problem and are
// closed; sipgo never sees them, and a good client is served after them.
func TestRefusedHandshakes(t *testing.T) {
	proto := "Sec-WebSocket-Protocol: sip"
	for _, secure := range []bool{false, true} {
		for _, tc := range []struct {
			name   string
			cfg    wsgate.Config
			req    string
			status int
			text   string
			reason wsgate.Reason
			header string // a header line the answer must carry
		}{
			{"no subprotocol", wsgate.Config{}, upgradeRequest("127.0.0.1"), 400, "must include sip", wsgate.RefusedSubprotocol, ""},
			{"other subprotocol", wsgate.Config{}, upgradeRequest("127.0.0.1", "Sec-WebSocket-Protocol: chat, SIP"), 400, "must include sip", wsgate.RefusedSubprotocol, ""},
			{"foreign origin", wsgate.Config{}, upgradeRequest("127.0.0.1:5066", proto, "Origin: https://evil.example"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			{"null origin", wsgate.Config{}, upgradeRequest("127.0.0.1", proto, "Origin: null"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			{"empty origin", wsgate.Config{}, upgradeRequest("127.0.0.1", proto, "Origin:"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			{"two origins", wsgate.Config{}, upgradeRequest("127.0.0.1", proto, "Origin: http://127.0.0.1", "Origin: http://127.0.0.1"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			{"same host not in list", wsgate.Config{Origins: []string{"https://phone.example.com"}}, upgradeRequest("127.0.0.1", proto, "Origin: http://127.0.0.1"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			{"list port differs", wsgate.Config{Origins: []string{"https://phone.example.com:8443"}}, upgradeRequest("127.0.0.1", proto, "Origin: https://phone.example.com"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			// DNS rebinding: Origin and Host agree on a name that is not ours.
			{"rebound name", wsgate.Config{HostAllowed: ours}, upgradeRequest("attacker.example:5066", proto, "Origin: http://attacker.example"), 403, "origin not allowed", wsgate.RefusedOrigin, ""},
			{"plain GET", wsgate.Config{}, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426, "Upgrade: websocket required", wsgate.RefusedNotWebSocket, "Upgrade: websocket"},
			{"POST", wsgate.Config{}, strings.Replace(upgradeRequest("127.0.0.1", proto), "GET", "POST", 1), 405, "GET", wsgate.RefusedMethod, "Allow: GET"},
			{"no Connection upgrade", wsgate.Config{}, strings.Replace(upgradeRequest("127.0.0.1", proto), "Connection: Upgrade", "Connection: keep-alive", 1), 400, "Connection: Upgrade", wsgate.RefusedNotWebSocket, ""},
			{"version 8", wsgate.Config{}, strings.Replace(upgradeRequest("127.0.0.1", proto), "Version: 13", "Version: 8", 1), 426, "Version 13", wsgate.RefusedVersion, "Sec-WebSocket-Version: 13"},
			{"short key", wsgate.Config{}, strings.Replace(upgradeRequest("127.0.0.1", proto), "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1), 400, "Sec-WebSocket-Key", wsgate.RefusedMalformed, ""},
			{"HTTP/1.0", wsgate.Config{}, strings.Replace(upgradeRequest("127.0.0.1", proto), "HTTP/1.1", "HTTP/1.0", 1), 400, "HTTP/1.1", wsgate.RefusedMalformed, ""},
			{"no Host", wsgate.Config{}, strings.Replace(upgradeRequest("127.0.0.1", proto), "Host: 127.0.0.1\r\n", "", 1), 400, "Host", wsgate.RefusedMalformed, ""},
			{"garbage", wsgate.Config{}, "\x16\x03\x01 hello\r\n\r\n", 400, "malformed", wsgate.RefusedMalformed, ""},
			{"head too large", wsgate.Config{}, upgradeRequest("127.0.0.1", proto, "X-Pad: "+strings.Repeat("a", 9000)), 431, "larger than 8192 bytes", wsgate.RefusedTooLarge, ""},
			{"head too large, no end", wsgate.Config{MaxHeadBytes: 1000}, "GET /ws HTTP/1.1\r\nX-Pad: " + strings.Repeat("a", 1500), 431, "larger than 1000 bytes", wsgate.RefusedTooLarge, ""},
		} {
			name := tc.name
			if secure {
				name = "wss/" + name
			}
			t.Run(name, func(t *testing.T) {
				cfg := tc.cfg
				if secure {
					cfg.TLS = selfSigned(t)
				}
				s := startServer(t, cfg)
				res, body, closed := s.raw(t, tc.req)
				if res.StatusCode != tc.status {
					t.Fatalf("status: got %d %q, want %d", res.StatusCode, body, tc.status)
				}
				if !strings.Contains(body, tc.text) {
					t.Errorf("body: got %q, want it to contain %q", body, tc.text)
				}
				if !res.Close { // net/http moves Connection: close into Close
					t.Error("answer without Connection: close")
				}
				if tc.header != "" {
					k, v, _ := strings.Cut(tc.header, ": ")
					if got := res.Header.Get(k); got != v {
						t.Errorf("%s: got %q, want %q", k, got, v)
					}
				}
				if !closed {
					t.Error("connection still open after the refusal")
				}
				waitFor(t, 2*time.Second, "refusal counted", func() bool { return s.refused(tc.reason) == 1 })
				if n := s.refusedTotal(); n != 1 {
					t.Errorf("refusals: got %d, want 1", n)
				}
				mustAnswer(t, s.mustDial(t, dialOpts{}))
				if logs := s.logs.String(); strings.Contains(logs, "upgrade") {
					t.Errorf("sipgo saw a failed upgrade: %s", logs)
				}
			})
		}
	}
}

// The origin policy: same host by default (ports aside), a list, or any.
func TestOriginPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		origins []string
		origin  string
		ok      bool
	}{
		{"same host", nil, "http://127.0.0.1:8080", true},
		{"same host upper case scheme", nil, "HTTP://127.0.0.1", true},
		{"other host", nil, "http://localhost:8080", false},
		{"listed", []string{"https://phone.example.com"}, "https://phone.example.com", true},
		{"listed default port", []string{"https://phone.example.com:443"}, "https://phone.example.com", true},
		{"listed case", []string{"https://Phone.Example.com"}, "https://phone.example.COM", true},
		{"listed, other scheme", []string{"https://phone.example.com"}, "http://phone.example.com", false},
		{"listed, same host not listed", []string{"https://phone.example.com"}, "http://127.0.0.1", false},
		{"any", []string{"*"}, "https://anything.example", true},
		{"any, null", []string{"*"}, "null", true},
		{"our name", nil, "https://sip.example.com", true},
		{"rebound name", nil, "https://attacker.example", false},
		{"rebound name, listed", []string{"https://attacker.example"}, "https://attacker.example", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, wsgate.Config{Origins: tc.origins, HostAllowed: ours})
			opts := dialOpts{origin: tc.origin}
			if u, err := url.Parse(tc.origin); err == nil && u.Hostname() != "" {
				opts.host = u.Hostname() // the browser asked for the page's host
			}
			conn, err := s.dial(t, opts)
			if tc.ok {
				if err != nil {
					t.Fatalf("upgrade: got %v, want success", err)
				}
				if got := header(mustAnswer(t, conn), "X-Origin"); got != tc.origin {
					t.Errorf("X-Origin: got %q, want %q", got, tc.origin)
				}
				return
			}
			var se ws.StatusError
			if !errors.As(err, &se) || int(se) != 403 {
				t.Fatalf("upgrade: got %v, want status 403", err)
			}
		})
	}
}

// ours is the server's own names, for Config.HostAllowed.
func ours(name string) bool { return strings.EqualFold(name, "sip.example.com") }

func TestNewRefusesBadOrigins(t *testing.T) {
	for _, o := range []string{"phone.example.com", "https://", "https://x.example/path", "https://u@x.example", "null", "https://x.example?q=1"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g, err := wsgate.New(ln, wsgate.Config{Origins: []string{"https://ok.example", o}})
		if err == nil {
			_ = g.Close()
			t.Errorf("origin %q: got no error, want one", o)
			continue
		}
		_ = ln.Close()
		if !strings.Contains(err.Error(), "origins[1]") || !strings.Contains(err.Error(), o) {
			t.Errorf("origin %q: error %q does not name the key and the value", o, err)
		}
	}
}

// An idle connection, and one that drips bytes, do not hold up a good
// client; both are closed when the handshake deadline passes.
func TestSlowClientsDoNotBlock(t *testing.T) {
	for _, secure := range []bool{false, true} {
		for _, drip := range []bool{false, true} {
			name := fmt.Sprintf("tls=%v/drip=%v", secure, drip)
			t.Run(name, func(t *testing.T) {
				const timeout = time.Second
				cfg := wsgate.Config{HandshakeTimeout: timeout}
				if secure {
					cfg.TLS = selfSigned(t)
				}
				s := startServer(t, cfg)
				start := time.Now()
				var slow net.Conn
				if secure && drip {
					// The TLS handshake completes; the request then drips.
					slow = s.rawConn(t)
				} else {
					c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					slow = c
				}
				stopDrip := make(chan struct{})
				defer close(stopDrip)
				if drip {
					go func() {
						req := upgradeRequest("127.0.0.1", "Sec-WebSocket-Protocol: sip")
						for i := 0; i < len(req) && i < 100; i++ {
							select {
							case <-stopDrip:
								return
							case <-time.After(50 * time.Millisecond):
							}
							if _, err := slow.Write([]byte{req[i]}); err != nil {
								return
							}
						}
					}()
				}
				waitFor(t, 2*time.Second, "slow connection pending", func() bool { return s.gate.Pending() == 1 })

				mustAnswer(t, s.mustDial(t, dialOpts{}))
				if served := time.Since(start); served > timeout/2 {
					t.Fatalf("good client served after %v, want well before the slow one's deadline (%v)", served, timeout)
				}
				if closed, _ := closedWithin(slow, 10*time.Millisecond); closed {
					t.Fatal("slow connection closed before its deadline")
				}
				closed, _ := closedWithin(slow, 3*timeout)
				if !closed {
					t.Fatalf("slow connection still open %v after accept", time.Since(start))
				}
				if took := time.Since(start); took < timeout-100*time.Millisecond || took > timeout+time.Second {
					t.Errorf("slow connection closed after %v, want about %v", took, timeout)
				}
				waitFor(t, 2*time.Second, "timeout counted", func() bool { return s.refused(wsgate.RefusedTimeout) == 1 })
				// The count and the pending gauge are two updates: under
				// load the second may come a moment after the first.
				waitFor(t, 2*time.Second, "no connection pending", func() bool { return s.gate.Pending() == 0 })
			})
		}
	}
}

// Under a listener whose connections set their own read deadline before
// every read (connlimit's, 10 s), the handshake deadline still holds.
func TestDeadlineUnderConnlimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := connlimit.New(connlimit.Config{IdleTimeout: 10 * time.Second})
	gate, err := wsgate.New(lim.Listen(ln, "ws"), wsgate.Config{HandshakeTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		for range 40 { // 4 s of one byte every 100 ms, each read resetting connlimit's deadline
			if _, err := c.Write([]byte("G")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	closed, took := closedWithin(c, 3*time.Second)
	if !closed || took > 1500*time.Millisecond {
		t.Fatalf("closed=%v after %v, want closed after about 500ms", closed, took)
	}
	waitFor(t, 2*time.Second, "connlimit released the connection", func() bool { return lim.Open() == 0 })
}

// Many idle connections from one source hold at most MaxPendingPerIP
// handshake slots (MaxPending over all sources); the rest are closed at
// accept, and a client from another address is still served.
func TestPendingBounds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         wsgate.Config
		wantPending int
	}{
		{"per source default", wsgate.Config{HandshakeTimeout: 20 * time.Second}, 16},
		{"total", wsgate.Config{HandshakeTimeout: 20 * time.Second, MaxPending: 20, MaxPendingPerIP: 1000}, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const flood = 200
			s := startServer(t, tc.cfg)
			conns := make([]net.Conn, 0, flood)
			defer func() {
				for _, c := range conns {
					_ = c.Close()
				}
			}()
			for range flood {
				c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			refusedWant := flood - tc.wantPending
			waitFor(t, 5*time.Second, "flood refused", func() bool {
				return s.refusedTotal() == refusedWant
			})
			if got := s.gate.Pending(); got != tc.wantPending {
				t.Errorf("pending: got %d, want %d", got, tc.wantPending)
			}
			var reason wsgate.Reason = wsgate.RefusedPendingPerIP
			if tc.cfg.MaxPending > 0 {
				reason = wsgate.RefusedPending
			}
			if got := s.refused(reason); got != refusedWant {
				t.Errorf("refused %q: got %d, want %d", reason, got, refusedWant)
			}
			closed := 0
			for _, c := range conns {
				if ok, _ := closedWithin(c, 20*time.Millisecond); ok {
					closed++
				}
			}
			if closed != refusedWant {
				t.Errorf("closed by the server: got %d, want %d", closed, refusedWant)
			}
			if tc.cfg.MaxPending == 0 {
				mustAnswer(t, s.mustDial(t, dialOpts{from: "127.0.0.2"}))
			}
			// Freed slots are usable again.
			for _, c := range conns {
				_ = c.Close()
			}
			waitFor(t, 5*time.Second, "slots freed", func() bool { return s.gate.Pending() == 0 })
			mustAnswer(t, s.mustDial(t, dialOpts{}))
		})
	}
}

// A request head of up to MaxHeadBytes passes.
func TestHeadAtLimit(t *testing.T) {
	s := startServer(t, wsgate.Config{})
	base := len(upgradeRequest("127.0.0.1", "Sec-WebSocket-Protocol: sip", "X-Pad: "))
	req := upgradeRequest("127.0.0.1", "Sec-WebSocket-Protocol: sip", "X-Pad: "+strings.Repeat("a", 8192-base))
	if len(req) != 8192 {
		t.Fatalf("request is %d bytes, want 8192", len(req))
	}
	res, _, _ := s.raw(t, req)
	if res.StatusCode != 101 {
		t.Fatalf("status: got %d, want 101", res.StatusCode)
	}
}

// Frames sent right behind the request, before the 101 arrives, are not
// lost.
func TestFramesBehindTheRequest(t *testing.T) {
	for _, limit := range []int{0, -1} {
		t.Run(fmt.Sprintf("MaxMessageBytes=%d", limit), func(t *testing.T) {
			s := startServer(t, wsgate.Config{MaxMessageBytes: limit})
			c := s.rawConn(t)
			var frame strings.Builder
			if err := wsutil.WriteClientText(&frame, sipRequest("OPTIONS", 0)); err != nil {
				t.Fatal(err)
			}
			req := upgradeRequest("127.0.0.1", "Sec-WebSocket-Protocol: sip") + frame.String()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != 101 {
				t.Fatalf("upgrade: got %v %v, want 101", res, err)
			}
			data, _, err := wsutil.ReadServerData(struct {
				io.Reader
				io.Writer
			}{br, c})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "SIP/2.0 200") {
				t.Fatalf("got %q, want a 200", data)
			}
		})
	}
}

// Close ends Accept (sipgo's serve returns net.ErrClosed: checked by
// startServer's cleanup) and closes handshakes in progress.
func TestCloseEndsPending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate, err := wsgate.New(ln, wsgate.Config{HandshakeTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 2*time.Second, "pending", func() bool { return gate.Pending() == 1 })
	accepted := make(chan error, 1)
	go func() {
		_, err := gate.Accept()
		accepted <- err
	}()
	_ = gate.Close()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept: got %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	if closed, _ := closedWithin(c, 2*time.Second); !closed {
		t.Error("pending connection still open after Close")
	}
}

// A wss listener negotiates http/1.1 even when the configuration it was
// given offers h2 (as one shared with an HTTPS server may), and leaves
// that configuration alone.
func TestWSSNegotiatesHTTP11(t *testing.T) {
	conf := selfSigned(t)
	conf.NextProtos = []string{"h2", "http/1.1"}
	s := startServer(t, wsgate.Config{TLS: conf})
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("ALPN: got %q, want http/1.1", got)
	}
	if len(conf.NextProtos) != 2 {
		t.Errorf("caller's NextProtos changed to %q", conf.NextProtos)
	}
}

// OnClosed is called once per connection handed to sipgo, with its
// handshake, when the client goes away; never for refused handshakes.
func TestOnClosed(t *testing.T) {
	var (
		mu     sync.Mutex
		closed []wsgate.Handshake
	)
	s := startServer(t, wsgate.Config{OnClosed: func(hs wsgate.Handshake) {
		mu.Lock()
		closed = append(closed, hs)
		mu.Unlock()
	}})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(closed) }
	if _, err := s.dial(t, dialOpts{protocols: []string{"chat"}}); err == nil {
		t.Fatal("a handshake without the sip subprotocol passed")
	}
	conn := s.mustDial(t, dialOpts{})
	mustAnswer(t, conn)
	local := conn.LocalAddr().String()
	if n := count(); n != 0 {
		t.Fatalf("OnClosed calls while open: got %d, want 0", n)
	}
	_ = conn.Close()
	waitFor(t, 5*time.Second, "OnClosed", func() bool { return count() == 1 })
	time.Sleep(100 * time.Millisecond) // a second call would come now
	mu.Lock()
	defer mu.Unlock()
	if len(closed) != 1 || closed[0].Remote != local {
		t.Fatalf("OnClosed: got %+v, want one call for %s", closed, local)
	}
}
