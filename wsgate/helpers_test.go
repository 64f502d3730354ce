package wsgate_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sipwarden/sipwarden/wsgate"
)

// server is a sipgo server serving WS or WSS through a wsgate.Listener.
type server struct {
	gate *wsgate.Listener
	addr string
	tls  bool
	logs *syncBuffer // sipgo's transport log

	mu      sync.Mutex
	reasons map[wsgate.Reason]int
}

func (s *server) refused(r wsgate.Reason) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reasons[r]
}

func (s *server) refusedTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.reasons {
		n += v
	}
	return n
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startServer serves SIP over WS (or WSS when cfg.TLS is set) on
// 127.0.0.1 through a wsgate.Listener built from cfg. The server answers
// OPTIONS and REGISTER with 200, and puts what the gate's lookup by the
// request's source returns into X-Origin, X-Path and X-Token.
func startServer(t *testing.T, cfg wsgate.Config) *server {
	t.Helper()
	s := &server{logs: &syncBuffer{}, reasons: map[wsgate.Reason]int{}, tls: cfg.TLS != nil}
	cfg.OnRefused = func(r wsgate.Reason) {
		s.mu.Lock()
		s.reasons[r]++
		s.mu.Unlock()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate, err := wsgate.New(ln, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.gate, s.addr = gate, ln.Addr().String()

	sipLog := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		t.Fatal(err)
	}
	answer := func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if hs, ok := gate.Handshake(req.Source()); ok {
			res.AppendHeader(sip.NewHeader("X-Origin", hs.Origin))
			res.AppendHeader(sip.NewHeader("X-Path", hs.Path))
			res.AppendHeader(sip.NewHeader("X-Token", hs.Query.Get("access_token")))
		}
		_ = tx.Respond(res)
	}
	srv.OnOptions(answer)
	srv.OnRegister(answer)

	served := make(chan error, 1)
	go func() {
		if cfg.TLS != nil {
			served <- srv.ServeWSS(gate)
		} else {
			served <- srv.ServeWS(gate)
		}
	}()
	t.Cleanup(func() {
		_ = gate.Close()
		select {
		case err := <-served:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("serve returned %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("serve did not return within 5s of Close")
		}
		_ = ua.Close()
	})
	return s
}

// dialOpts says how a test client performs the upgrade.
type dialOpts struct {
	from      string // local IP; default 127.0.0.1
	origin    string // no Origin header when empty
	host      string // the Host header's name; default the address dialled
	path      string // default /ws
	protocols []string
}

// dial upgrades a connection to s as a gobwas/ws client.
func (s *server) dial(t *testing.T, o dialOpts) (net.Conn, error) {
	t.Helper()
	if o.path == "" {
		o.path = "/ws"
	}
	if o.protocols == nil {
		o.protocols = []string{"sip"}
	}
	if o.from == "" {
		o.from = "127.0.0.1"
	}
	d := ws.Dialer{
		Timeout:   5 * time.Second,
		Protocols: o.protocols,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(o.from)}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	if o.origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {o.origin}})
	}
	scheme := "ws://"
	if s.tls {
		scheme = "wss://"
		d.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	target := s.addr
	if o.host != "" {
		_, port, _ := net.SplitHostPort(s.addr)
		target = net.JoinHostPort(o.host, port) // NetDial still dials s.addr
		d.NetDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(o.from)}}
			return nd.DialContext(ctx, network, s.addr)
		}
	}
	conn, br, _, err := d.Dial(ctx, scheme+target+o.path)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	if br != nil {
		conn = &bufConn{Conn: conn, r: br}
	}
	return conn, nil
}

func (s *server) mustDial(t *testing.T, o dialOpts) net.Conn {
	t.Helper()
	c, err := s.dial(t, o)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	return c
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

var seq struct {
	sync.Mutex
	n int
}

// sipRequest returns a request of method over WS with a header field
// X-Pad of pad bytes.
func sipRequest(method string, pad int) []byte {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:127.0.0.1 SIP/2.0\r\n", method)
	fmt.Fprintf(&b, "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-%d-%d\r\n", n, time.Now().UnixNano())
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:alice@127.0.0.1>;tag=t%d\r\n", n)
	b.WriteString("To: <sip:alice@127.0.0.1>\r\n")
	fmt.Fprintf(&b, "Call-ID: call-%d-%d\r\n", n, time.Now().UnixNano())
	fmt.Fprintf(&b, "CSeq: 1 %s\r\n", method)
	b.WriteString("Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\n")
	if pad > 0 {
		b.WriteString("X-Pad: " + strings.Repeat("p", pad) + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// exchange sends msg as one frame of op and returns the SIP response.
func exchange(conn net.Conn, op ws.OpCode, msg []byte, wait time.Duration) (*sip.Response, error) {
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	defer conn.SetDeadline(time.Time{})
	if err := wsutil.WriteClientMessage(conn, op, msg); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	data, _, err := wsutil.ReadServerData(conn)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	m, err := sip.ParseMessage(data)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", data, err)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		return nil, fmt.Errorf("got a request, want a response: %q", data)
	}
	return res, nil
}

// mustAnswer checks that s answers an OPTIONS on conn with 200.
func mustAnswer(t *testing.T, conn net.Conn) *sip.Response {
	t.Helper()
	res, err := exchange(conn, ws.OpText, sipRequest("OPTIONS", 0), 5*time.Second)
	if err != nil {
		t.Fatalf("OPTIONS: %v", err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("OPTIONS: got %d, want 200", res.StatusCode)
	}
	return res
}

func header(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// upgradeRequest is a valid upgrade request to host, with extra header
// lines.
func upgradeRequest(host string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET /ws HTTP/1.1\r\n")
	b.WriteString("Host: " + host + "\r\n")
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// rawConn dials s over TCP (TLS when s is wss) from 127.0.0.1.
func (s *server) rawConn(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if s.tls {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		_ = tc.SetDeadline(time.Time{})
		return tc
	}
	return c
}

// raw sends req over a new connection and returns the HTTP response and
// whether the server closed the connection after it.
func (s *server) raw(t *testing.T, req string) (*http.Response, string, bool) {
	t.Helper()
	c := s.rawConn(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var body []byte
	if res.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(res.Body)
	}
	_ = res.Body.Close()
	closed := false
	if res.StatusCode != http.StatusSwitchingProtocols {
		_, err := br.ReadByte()
		closed = errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
		_ = c.Close() // lets the server's drain end at once
	}
	return res, string(body), closed
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// waitFor polls cond every 10ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closedWithin reports whether the peer closes c within d (a read that
// returns EOF or a reset), and how long it took.
func closedWithin(c net.Conn, d time.Duration) (bool, time.Duration) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, time.Since(start)
		}
		return true, time.Since(start)
	}
}

// selfSigned returns a TLS config with a fresh certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
