package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sipwarden/sipwarden/config"
)

// wsUA is a SIP client over a WebSocket (RFC 7118), as a browser speaks:
// subprotocol sip, one SIP message per text frame, Contact host *.invalid.
type wsUA struct {
	t         testing.TB
	conn      net.Conn
	rw        io.ReadWriter
	transport string // "ws" or "wss"
	local     string
	host      string // the Contact's random .invalid host
}

type wsDialOpts struct {
	protocols []string // default ["sip"]
	origin    string
	host      string // the name in the URL (Host, SNI); the node's address is dialled
}

// dialWS opens a WebSocket to a node's ws or wss listener.
func dialWS(t testing.TB, ts *testServer, transport string, o wsDialOpts) (*wsUA, error) {
	t.Helper()
	if o.protocols == nil {
		o.protocols = []string{"sip"}
	}
	d := ws.Dialer{Protocols: o.protocols, Timeout: 3 * time.Second,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}} // the node's self-signed certificate
	if o.origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": []string{o.origin}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	target := ts.Addr(transport)
	if o.host != "" {
		_, port, _ := net.SplitHostPort(target)
		addr := target
		target = net.JoinHostPort(o.host, port)
		d.NetDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, network, addr)
		}
	}
	conn, br, _, err := d.Dial(ctx, transport+"://"+target)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &wsUA{t: t, conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}, transport: transport, local: conn.LocalAddr().String(), host: randHex(6) + ".invalid"}, nil
}

func mustDialWS(t testing.TB, ts *testServer, transport string) *wsUA {
	t.Helper()
	u, err := dialWS(t, ts, transport, wsDialOpts{})
	if err != nil {
		t.Fatalf("dial %s: %v", transport, err)
	}
	return u
}

func (u *wsUA) send(msg string) error {
	_ = u.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return wsutil.WriteClientText(u.conn, []byte(msg))
}

// recv returns the next SIP message, or "" after timeout or a close.
func (u *wsUA) recv(timeout time.Duration) string {
	_ = u.conn.SetReadDeadline(time.Now().Add(timeout))
	b, _, err := wsutil.ReadServerData(u.rw)
	if err != nil {
		return ""
	}
	return string(b)
}

// closed reports whether the server closed the WebSocket within timeout
// (a close frame, EOF or a reset), skipping any messages.
func (u *wsUA) closed(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_ = u.conn.SetReadDeadline(deadline)
		_, _, err := wsutil.ReadServerData(u.rw)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
	return false
}

// exchange sends msg and returns the first final response.
func (u *wsUA) exchange(msg string, timeout time.Duration) (status, raw string) {
	if err := u.send(msg); err != nil {
		return "", ""
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		raw = u.recv(time.Until(deadline))
		if raw == "" {
			return "", ""
		}
		line, _, _ := strings.Cut(raw, "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line, raw
		}
	}
	return "", ""
}

// registerMsg is a REGISTER as JsSIP sends it: Via host *.invalid,
// Contact with transport=ws, +sip.instance and reg-id (RFC 5626).
func (u *wsUA) registerMsg(user, callID string, cseq int, auth string) string {
	var b strings.Builder
	tp := strings.ToUpper(u.transport)
	fmt.Fprintf(&b, "REGISTER sip:sipwarden.test SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK-%s\r\n", tp, u.host, randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 69\r\nFrom: <sip:%s@sipwarden.test>;tag=%s\r\nTo: <sip:%s@sipwarden.test>\r\n", user, randHex(4), user)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\n", callID, cseq)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:%s-0000-4000-8000-000000000000>\";expires=600\r\n",
		randHex(4), u.host, u.host[:8])
	b.WriteString("Expires: 600\r\nSupported: path,gruu,outbound\r\n")
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// TestWSRegisterWithToken: a browser's first REGISTER with a Bearer token
// over ws gets 200 at once, echoing its Contact with +sip.instance, reg-id
// and transport=ws (JsSIP finds itself in the 200 by them); the binding
// keeps the WebSocket flow; a fresh token on the same connection extends
// the same binding without closing it; closing the WebSocket removes it.
func TestWSRegisterWithToken(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir())) // jwt.enabled stays false
	c := ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	u := mustDialWS(t, ts, "ws")
	callID := randHex(8)
	st, raw := u.exchange(u.registerMsg("alice", callID, 1, "Bearer "+ts.mintToken(t, c.ID).Token), 3*time.Second)
	if st != "SIP/2.0 200 OK" {
		t.Fatalf("first REGISTER with a token: got %q, want 200 OK\n%s", st, raw)
	}
	// RFC 3261 18.2.1: a sent-by that is a name (JsSIP's *.invalid, no
	// rport) gets received.
	if host, _, _ := net.SplitHostPort(u.local); !strings.Contains(between(raw, "Via: ", "\r\n"), ";received="+host) {
		t.Errorf("the 200's Via lacks received=%s: %q", host, between(raw, "Via: ", "\r\n"))
	}
	contact := between(raw, "Contact: ", "\r\n")
	for _, want := range []string{"@" + u.host, "transport=ws", "reg-id=1", `+sip.instance="<urn:uuid:`} {
		if !strings.Contains(contact, want) {
			t.Errorf("200's Contact %q lacks %q", contact, want)
		}
	}
	rs := ts.registrations(t, "alice")
	if len(rs) != 1 || rs[0].Transport != "ws" || rs[0].Source != u.local {
		t.Fatalf("registrations: got %+v, want one over ws from %s", rs, u.local)
	}
	first := rs[0].ID

	// The SDK's TOKEN_EXPIRING_SOON refresh: a new token, same connection.
	time.Sleep(1100 * time.Millisecond) // a token with a later iat
	st, raw = u.exchange(u.registerMsg("alice", callID, 2, "Bearer "+ts.mintToken(t, c.ID).Token), 3*time.Second)
	if st != "SIP/2.0 200 OK" {
		t.Fatalf("re-REGISTER with a fresh token: got %q\n%s", st, raw)
	}
	rs = ts.registrations(t, "alice")
	if len(rs) != 1 || rs[0].ID != first {
		t.Fatalf("after the refresh: got %+v, want the same binding %s", rs, first)
	}
	// Still the same, open connection: an OPTIONS keepalive is answered.
	if st, _ := u.exchange(optionsMsg(u), 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("OPTIONS over the refreshed connection: got %q", st)
	}

	_ = u.conn.Close()
	waitFor(t, "the binding of the closed WebSocket to go", 5*time.Second, func() bool {
		return len(ts.registrations(t, "alice")) == 0
	})
}

func optionsMsg(u *wsUA) string {
	return fmt.Sprintf("OPTIONS sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@sipwarden.test>;tag=%s\r\nTo: <sip:sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		strings.ToUpper(u.transport), u.host, randHex(8), randHex(4), randHex(8))
}

// TestWSRegisterDigest: over ws and wss the first challenge is MD5 even
// when the server-wide list puts SHA-256 first (JsSIP reads only the
// first, and only MD5); over UDP the server-wide order stays.
func TestWSRegisterDigest(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Auth.Algorithms = []string{"SHA-256", "MD5"}
	// What config's defaults derive from that list (config tests it).
	cfg.Auth.TransportAlgorithms = map[string][]string{"ws": {"MD5", "SHA-256"}, "wss": {"MD5", "SHA-256"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	for _, tp := range []string{"ws", "wss"} {
		t.Run(tp, func(t *testing.T) {
			u := mustDialWS(t, ts, tp)
			callID := randHex(8)
			st, raw := u.exchange(u.registerMsg("alice", callID, 1, ""), 3*time.Second)
			if st != "SIP/2.0 401 Unauthorized" {
				t.Fatalf("REGISTER without credentials: got %q", st)
			}
			if ch := between(raw, "WWW-Authenticate: ", "\r\n"); !strings.Contains(ch, "algorithm=MD5") {
				t.Fatalf("first challenge over %s: got %q, want MD5", tp, ch)
			}
			if strings.Contains(raw, "Bearer") {
				t.Errorf("Bearer challenge offered with jwt.enabled false:\n%s", raw)
			}
			nonce := nonceRE.FindStringSubmatch(raw)[1]
			if st, raw := u.exchange(u.registerMsg("alice", callID, 2, digestAuth("alice", "alice-secret-pw-1", nonce)), 3*time.Second); st != "SIP/2.0 200 OK" {
				t.Fatalf("digest REGISTER over %s: got %q\n%s", tp, st, raw)
			}
		})
	}
	// UDP keeps auth.algorithms' order.
	udp := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	_, raw := udp.exchange(udp.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second)
	if ch := between(raw, "WWW-Authenticate: ", "\r\n"); !strings.Contains(ch, "algorithm=SHA-256") {
		t.Errorf("first challenge over udp: got %q, want SHA-256", ch)
	}
}

// TestWSInviteReachesBrowserFlow: a caller on UDP calls a user registered
// over a WebSocket with a *.invalid Contact; the INVITE goes down that
// WebSocket (the binding's own flow), and the answer comes back.
func TestWSInviteReachesBrowserFlow(t *testing.T) {
	for _, tp := range []string{"ws", "wss"} {
		// wss: the accepted TLS connection is reused (sipgo issue 361
		// would open a new one towards the .invalid host).
		t.Run(tp, func(t *testing.T) { testInviteReachesBrowser(t, tp) })
	}
}

func testInviteReachesBrowser(t *testing.T, tp string) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	bob := ts.createCredential(t, "bob", "bob-secret-pw-22", nil)
	alice := ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	b := mustDialWS(t, ts, tp)
	if st, raw := b.exchange(b.registerMsg("bob", randHex(8), 1, "Bearer "+ts.mintToken(t, bob.ID).Token), 3*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob's REGISTER: %q\n%s", st, raw)
	}
	a := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if err := a.send(a.inviteMsg("alice", randHex(8), 1, "Bearer "+ts.mintToken(t, alice.ID).Token)); err != nil {
		t.Fatal(err)
	}
	inv := b.recvRequest("INVITE", 5*time.Second)
	if !strings.Contains(inv, "@"+b.host) {
		t.Fatalf("bob's WebSocket got %q, want the INVITE to his .invalid Contact", statusLine(inv))
	}
	if via := between(inv, "Via: ", "\r\n"); !strings.HasPrefix(via, "SIP/2.0/"+strings.ToUpper(tp)+" ") {
		t.Errorf("top Via of the INVITE to the browser: got %q, want SIP/2.0/%s", via, strings.ToUpper(tp))
	}
	if !strings.Contains(inv, "transport="+tp+";lr") {
		t.Errorf("no Record-Route with transport=%s (RFC 5658 double record-route) in\n%s", tp, inv)
	}
	// Bob is busy: 486 back to the caller over UDP.
	if err := b.send(responseTo(inv, 486, "Busy Here")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	got := ""
	for time.Now().Before(deadline) && !strings.HasPrefix(got, "SIP/2.0 486") {
		got = statusLine(a.recv(time.Until(deadline)))
	}
	if got != "SIP/2.0 486 Busy Here" {
		t.Fatalf("caller got %q, want 486 Busy Here", got)
	}

	// A browser caller as JsSIP's authorization_jwt makes it: the token in
	// Authorization (not Proxy-Authorization) on the INVITE. It is
	// accepted without a 407, and not handed on to the callee.
	c := mustDialWS(t, ts, "ws")
	tok := ts.mintToken(t, alice.ID).Token
	msg := strings.Replace(a.inviteMsg("alice", randHex(8), 1, ""), "Content-Length", "Authorization: Bearer "+tok+"\r\nContent-Length", 1)
	msg = strings.Replace(msg, "SIP/2.0/UDP "+a.local, "SIP/2.0/WS "+c.host, 1)
	if err := c.send(msg); err != nil {
		t.Fatal(err)
	}
	inv = b.recvRequest("INVITE", 5*time.Second)
	if inv == "" {
		t.Fatal("the INVITE with Authorization: Bearer did not reach bob")
	}
	if strings.Contains(inv, tok) || strings.Contains(inv, "Bearer") {
		t.Errorf("the caller's token was forwarded to the callee:\n%s", inv)
	}
	if err := b.send(responseTo(inv, 486, "Busy Here")); err != nil {
		t.Fatal(err)
	}
	if st := finalStatus(c, 5*time.Second); st != "SIP/2.0 486 Busy Here" {
		t.Fatalf("browser caller with a token got %q, want 486", st)
	}
}

// responseTo builds a response to a raw request: its Via, From, To (with
// a tag), Call-ID and CSeq.
func responseTo(req string, code int, reason string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, line := range strings.Split(req, "\r\n")[1:] {
		if line == "" {
			break
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "via", "from", "call-id", "cseq", "record-route":
			b.WriteString(line + "\r\n")
		case "to":
			b.WriteString(line + ";tag=" + randHex(4) + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// TestWSBadInput: a handshake without the sip subprotocol, one from a
// foreign Origin, a 1 MB message and a flood of handshakes from one
// address are refused cleanly (an HTTP error or a close), a binary frame
// is read as SIP (RFC 7118 section 4.2), and the server keeps serving.
func TestWSBadInput(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	refused := func(reason string) float64 {
		return metricValue(t, ts, "sipwarden_websocket_refused_total", "reason", reason)
	}

	if _, err := dialWS(t, ts, "ws", wsDialOpts{protocols: []string{"chat"}}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("handshake without the sip subprotocol: got %v, want a 400 refusal", err)
	}
	if _, err := dialWS(t, ts, "wss", wsDialOpts{origin: "https://evil.example"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("handshake from a foreign Origin: got %v, want 403", err)
	}
	if _, err := dialWS(t, ts, "ws", wsDialOpts{origin: "http://127.0.0.1:8080"}); err != nil {
		t.Errorf("handshake from the same host: %v", err)
	}
	// Same host by a name of the server's (sip.domain, localhost, the
	// certificate's), but not by any name: a page of attacker.example
	// whose name resolves to this server (DNS rebinding) is refused.
	for _, h := range []string{"sipwarden.test", "localhost"} { // sip.domain (servertest.Realm)
		for _, tp := range []string{"ws", "wss"} {
			if _, err := dialWS(t, ts, tp, wsDialOpts{origin: "https://" + h, host: h}); err != nil {
				t.Errorf("%s handshake from a page of %s: %v", tp, h, err)
			}
		}
	}
	if _, err := dialWS(t, ts, "ws", wsDialOpts{origin: "http://attacker.example", host: "attacker.example"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("handshake from a rebound name: got %v, want 403", err)
	}

	big := mustDialWS(t, ts, "ws")
	if err := wsutil.WriteClientText(big.conn, make([]byte, 1<<20)); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("writing the 1 MB frame: %v (the server may close first)", err)
	}
	if !big.closed(5 * time.Second) {
		t.Error("a 1 MB message did not close the WebSocket")
	}

	bin := mustDialWS(t, ts, "ws")
	_ = bin.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if err := wsutil.WriteClientBinary(bin.conn, []byte(bin.registerMsg("alice", randHex(8), 1, ""))); err != nil {
		t.Fatal(err)
	}
	if st := statusLine(bin.recv(3 * time.Second)); st != "SIP/2.0 401 Unauthorized" {
		t.Errorf("REGISTER in a binary frame: got %q, want a 401 challenge", st)
	}

	// A flood of handshakes that never finish from one address: beyond
	// sip.websocket.max_pending_per_ip they are closed at accept.
	var held []net.Conn
	for range 40 {
		c, err := net.DialTimeout("tcp", ts.Addr("ws"), time.Second)
		if err != nil {
			break // refused outright is fine too
		}
		held = append(held, c)
	}
	t.Cleanup(func() {
		for _, c := range held {
			_ = c.Close()
		}
	})
	waitFor(t, "pending handshakes beyond the per-address bound refused", 5*time.Second, func() bool {
		return refused("pending") > 0
	})
	for _, c := range held {
		_ = c.Close()
	}
	if got := refused("subprotocol"); got != 1 {
		t.Errorf("refusals for the subprotocol: got %v, want 1", got)
	}
	if got := refused("origin"); got != 2 {
		t.Errorf("refusals for the Origin: got %v, want 2", got)
	}
	if got := refused("message_size"); got != 1 {
		t.Errorf("closes for the message size: got %v, want 1", got)
	}

	// Still serving, over ws and the other transports.
	waitFor(t, "a fresh WebSocket to register", 5*time.Second, func() bool {
		u, err := dialWS(t, ts, "ws", wsDialOpts{})
		if err != nil {
			return false
		}
		st, _ := u.exchange(u.registerMsg("alice", randHex(8), 1, ""), 2*time.Second)
		return st == "SIP/2.0 401 Unauthorized"
	})
	udp := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st := udp.register("alice", "alice-secret-pw-1"); st != "SIP/2.0 200 OK" {
		t.Errorf("UDP REGISTER after the bad input: got %q", st)
	}
}

// metricValue returns the value of the counter or gauge name whose
// labels have the given values (pairs: name, value), as the node's
// /metrics would show it; -1 when there is none.
func metricValue(t *testing.T, ts *testServer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := ts.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// anonInvite is JsSIP's anonymous INVITE: From sip:anonymous@anonymous.invalid
// (RFC 3323 4.1.1.3), no credentials.
func (u *wsUA) anonInvite(target string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INVITE sip:%s@sipwarden.test SIP/2.0\r\n", target)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK-%s\r\n", strings.ToUpper(u.transport), u.host, randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 69\r\nFrom: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=%s\r\nTo: <sip:%s@sipwarden.test>\r\n", randHex(4), target)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:%s@%s;transport=ws;ob>\r\nPrivacy: id\r\n", randHex(8), randHex(4), u.host)
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// TestWSAnonymousCall: a caller without any credential may call, over
// ws/wss only, the targets a connection made public; another target gets
// 403, so does the same INVITE over UDP (a challenge there: credentials
// are asked for), and beyond proxy.anonymous_calls_per_minute 403 too;
// each result is counted.
func TestWSAnonymousCall(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.AnonymousCallsPerMinute = 3
	ts := startServer(t, cfg)
	var conn struct{ ID string }
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "web", "public_targets": []string{"sales"}}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	sales := ts.createCredential(t, "sales", "sales-secret-pw-1", map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "bob", "bob-secret-pw-22", map[string]any{"connection_id": conn.ID})
	agent := mustDialWS(t, ts, "ws")
	if st, _ := agent.exchange(agent.registerMsg("sales", randHex(8), 1, "Bearer "+ts.mintToken(t, sales.ID).Token), 3*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("sales' REGISTER: %q", st)
	}

	caller := mustDialWS(t, ts, "ws")
	if err := caller.send(caller.anonInvite("sales")); err != nil {
		t.Fatal(err)
	}
	inv := agent.recvRequest("INVITE", 5*time.Second)
	if !strings.Contains(inv, "anonymous@anonymous.invalid") {
		t.Fatalf("sales got %q, want the anonymous INVITE", statusLine(inv))
	}
	if err := agent.send(responseTo(inv, 486, "Busy Here")); err != nil {
		t.Fatal(err)
	}
	if st := finalStatus(caller, 5*time.Second); st != "SIP/2.0 486 Busy Here" {
		t.Fatalf("anonymous caller to a public target: got %q, want sales' 486", st)
	}

	// bob is not public: 403, nothing reaches anybody.
	if st, _ := caller.exchange(caller.anonInvite("bob"), 3*time.Second); st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("anonymous call to bob: got %q, want 403 Forbidden", st)
	}
	// Over UDP anonymous callers are challenged like anyone.
	udp := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st, _ := udp.exchange(strings.ReplaceAll(caller.anonInvite("sales"), "SIP/2.0/WS "+caller.host, "SIP/2.0/UDP "+udp.local), 3*time.Second); st != "SIP/2.0 407 Proxy Authentication Required" {
		t.Fatalf("anonymous call over UDP: got %q, want 407", st)
	}
	// The third anonymous INVITE of this source in the minute passes the
	// limit of 3 (sales is busy: 486); the fourth is refused.
	if err := caller.send(caller.anonInvite("sales")); err != nil {
		t.Fatal(err)
	}
	if inv := agent.recvRequest("INVITE", 5*time.Second); inv != "" {
		_ = agent.send(responseTo(inv, 486, "Busy Here"))
	}
	if st := finalStatus(caller, 5*time.Second); st != "SIP/2.0 486 Busy Here" {
		t.Fatalf("third anonymous call: got %q", st)
	}
	if st, _ := caller.exchange(caller.anonInvite("sales"), 3*time.Second); st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("anonymous call over the rate limit: got %q, want 403", st)
	}
	// The proxy reports a request's event once its handler returned, just
	// after the answer left: wait for the last one.
	for result, want := range map[string]float64{"allowed": 2, "not_public": 1, "rate_limited": 1} {
		waitFor(t, fmt.Sprintf("anonymous calls %s = %v", result, want), 2*time.Second, func() bool {
			return metricValue(t, ts, "sipwarden_proxy_anonymous_calls_total", "result", result) == want
		})
	}
}

// recvRequest reads until a request of method comes (skipping the ACKs
// of earlier answers), or "" after timeout.
func (u *wsUA) recvRequest(method string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		raw := u.recv(time.Until(deadline))
		if raw == "" {
			return ""
		}
		if strings.HasPrefix(raw, method+" ") {
			return raw
		}
	}
	return ""
}

// finalStatus reads until a final response comes, answering nothing.
func finalStatus(u *wsUA, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		raw := u.recv(time.Until(deadline))
		if raw == "" {
			return ""
		}
		if st := statusLine(raw); strings.HasPrefix(st, "SIP/2.0 ") && !strings.HasPrefix(st, "SIP/2.0 1") {
			return st
		}
	}
	return ""
}

// TestWSIdleTimeouts: a WebSocket is under connlimit's idle timeouts as
// TCP is: an idle one without authentication is closed after
// limits.idle_timeout, one whose REGISTER authenticated gets
// limits.idle_timeout_authenticated (admission.Gate.Attempt).
func TestWSIdleTimeouts(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.IdleTimeout = config.Duration(time.Second)
	ts := startServer(t, cfg)
	c := ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	idle := mustDialWS(t, ts, "ws")
	authed := mustDialWS(t, ts, "ws")
	if st, _ := authed.exchange(authed.registerMsg("alice", randHex(8), 1, "Bearer "+ts.mintToken(t, c.ID).Token), 3*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER: %q", st)
	}
	if !idle.closed(5 * time.Second) {
		t.Fatal("an idle unauthenticated WebSocket was not closed")
	}
	time.Sleep(1500 * time.Millisecond) // past the short timeout
	if st, _ := authed.exchange(optionsMsg(authed), 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("the authenticated WebSocket after 1.5 s idle: got %q, want it open", st)
	}
}

// TestWSAnonymousCallToNumber: a public target may be a number that
// proxy.routes sends to a gateway; the anonymous INVITE reaches the
// gateway, another number gets 403.
func TestWSAnonymousCallToNumber(t *testing.T) {
	gw, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.Routes = []config.ProxyRoute{{Name: "pstn", Prefix: "+1", Gateway: "sip:" + gw.LocalAddr().String()}}
	ts := startServer(t, cfg)
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "web", "public_targets": []string{"+15550100"}}, nil); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	caller := mustDialWS(t, ts, "wss")
	if st, _ := caller.exchange(caller.anonInvite("+15550199"), 3*time.Second); st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("anonymous call to a number not public: got %q, want 403", st)
	}
	if err := caller.send(caller.anonInvite("+15550100")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	var inv string
	var from net.Addr
	_ = gw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.HasPrefix(inv, "INVITE ") {
		n, addr, err := gw.ReadFrom(buf)
		if err != nil {
			t.Fatalf("the gateway got no INVITE: %v", err)
		}
		inv, from = string(buf[:n]), addr
	}
	if !strings.HasPrefix(inv, "INVITE sip:+15550100@") {
		t.Fatalf("the gateway got %q", statusLine(inv))
	}
	if _, err := gw.WriteTo([]byte(responseTo(inv, 486, "Busy Here")), from); err != nil {
		t.Fatal(err)
	}
	if st := finalStatus(caller, 5*time.Second); st != "SIP/2.0 486 Busy Here" {
		t.Fatalf("anonymous caller to the gateway: got %q, want 486", st)
	}
}

// TestWSRefused: over ws and wss, as over UDP and TCP, a method with a
// lower-case letter gets 501 and a request sipgo's parser refuses gets
// 400 naming the fault (sipgo upper-cased the one, dropped the other
// without a word), and the connection stays: an OPTIONS after them is
// answered.
func TestWSRefused(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	for _, tp := range []string{"ws", "wss"} {
		t.Run(tp, func(t *testing.T) {
			u := mustDialWS(t, ts, tp)
			for _, c := range []struct{ name, msg, want string }{
				{"lower-case method", strings.ReplaceAll(optionsMsg(u), "OPTIONS", "options"), "SIP/2.0 501 Not Implemented"},
				{"lower-case method, upper-case CSeq", strings.Replace(optionsMsg(u), "OPTIONS sip:", "options sip:", 1), "SIP/2.0 501 Not Implemented"},
				{"CSeq not a number", strings.Replace(optionsMsg(u), "CSeq: 1 OPTIONS", "CSeq: one OPTIONS", 1), "SIP/2.0 400 Malformed CSeq Header"},
				{"Request-URI in brackets", strings.Replace(optionsMsg(u), "OPTIONS sip:sipwarden.test SIP/2.0", "OPTIONS <sip:sipwarden.test> SIP/2.0", 1), "SIP/2.0 400 Malformed Request-URI"},
				{"well-formed", optionsMsg(u), "SIP/2.0 200 OK"},
			} {
				if st, raw := u.exchange(c.msg, 3*time.Second); st != c.want {
					t.Errorf("%s: %q, want %q\n%s", c.name, st, c.want, raw)
				}
			}
		})
	}
}

// TestWSGarbageDropped: a WebSocket message without the end of a header
// section (RFC 7118 section 5: a message is a whole SIP message) is
// dropped and counted as unparsable, as a datagram's garbage is, and the
// connection serves the next request; sipgo logged it at ERROR ("failed
// to parse") and closed the connection, the browser's registration with
// it.
func TestWSGarbageDropped(t *testing.T) {
	ts, logs := quietServer(t)
	u := mustDialWS(t, ts, "ws")
	dropped := func() float64 { return metricValue(t, ts, "sipwarden_guard_rejected_total", "reason", "unparsable") }
	before := max(dropped(), 0)
	for _, junk := range []string{"hello there", "OPTIONS sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/WS x;branch=z9hG4bK1\r\n"} {
		if err := u.send(junk); err != nil {
			t.Fatal(err)
		}
	}
	if st, raw := u.exchange(optionsMsg(u), 3*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("OPTIONS after the garbage: %q\n%s", st, raw)
	}
	if n := dropped() - before; n != 2 {
		t.Errorf("%v messages counted as unparsable, want 2", n)
	}
	if s := logs.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("garbage logged as an error:\n%s", tail(s, 2000))
	}
}

// TestWSKeepAlivesDoNotKeepUnauthenticated: over ws and wss, ping frames
// and CRLF keep-alives do not extend an unauthenticated WebSocket's idle
// timeout (the gate's frame reader tells the limiter of data frames with
// more than line breaks: it sees masked or encrypted bytes); requests do.
// A ping every few seconds kept one open for ever.
func TestWSKeepAlivesDoNotKeepUnauthenticated(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.IdleTimeout = config.Duration(time.Second)
	ts := startServer(t, cfg)
	for _, tp := range []string{"ws", "wss"} {
		t.Run(tp, func(t *testing.T) {
			// closedBy sends every 200 ms and reports whether the server
			// closed the WebSocket within d.
			closedBy := func(u *wsUA, d time.Duration, send func() error) bool {
				for end := time.Now().Add(d); time.Now().Before(end); {
					if send() != nil {
						return true
					}
					if u.closed(200 * time.Millisecond) {
						return true
					}
				}
				return false
			}
			pinger := mustDialWS(t, ts, tp)
			ping := func() error {
				_ = pinger.conn.SetWriteDeadline(time.Now().Add(time.Second))
				return wsutil.WriteClientMessage(pinger.conn, ws.OpPing, nil)
			}
			if !closedBy(pinger, 4*time.Second, ping) {
				t.Error("an unauthenticated WebSocket sending pings was open after 4 s (idle_timeout 1s)")
			}
			crlf := mustDialWS(t, ts, tp)
			if !closedBy(crlf, 4*time.Second, func() error { return crlf.send("\r\n\r\n") }) {
				t.Error("an unauthenticated WebSocket sending CRLF keep-alives was open after 4 s")
			}
			talker := mustDialWS(t, ts, tp)
			if closedBy(talker, 3*time.Second, func() error { return talker.send(optionsMsg(talker)) }) {
				t.Error("a WebSocket sending requests was closed as idle")
			}
		})
	}
}
