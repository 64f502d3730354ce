package web_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/browsertest"
	"github.com/sipwarden/sipwarden/web"
	"github.com/sipwarden/sipwarden/wsgate"
)

// sipServer is a stand-in SIP server for the page, behind a
// wsgate.Listener: REGISTER with Bearer tok-good, or with digest
// (alice/secret, realm test, MD5, first answer 401), gets 200 with the
// Contact echoed; other credentials get 403. INVITE gets 486.
type sipServer struct {
	url  string // ws:// or wss:// URL
	gate *wsgate.Listener

	mu        sync.Mutex
	registers []*sip.Request
	invites   []*sip.Request
	refused   []wsgate.Reason
}

func (s *sipServer) seen() (registers, invites []*sip.Request, refused []wsgate.Reason) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*sip.Request(nil), s.registers...), append([]*sip.Request(nil), s.invites...),
		append([]wsgate.Reason(nil), s.refused...)
}

func startSIP(t *testing.T, cfg wsgate.Config) *sipServer {
	t.Helper()
	s := &sipServer{}
	cfg.OnRefused = func(r wsgate.Reason) {
		s.mu.Lock()
		s.refused = append(s.refused, r)
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
	s.gate = gate
	s.url = "ws://" + ln.Addr().String()
	if cfg.TLS != nil {
		s.url = "wss://" + ln.Addr().String()
	}
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		s.registers = append(s.registers, req)
		s.mu.Unlock()
		var res *sip.Response
		auth := ""
		if h := req.GetHeader("Authorization"); h != nil {
			auth = h.Value()
		}
		switch {
		case auth == "":
			res = sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="test", nonce="n0nce", algorithm=MD5, qop="auth"`))
		case auth == "Bearer tok-good" || digestOK(auth, "REGISTER", "alice", "test", "secret"):
			res = sip.NewResponseFromRequest(req, 200, "OK", nil)
			if c := req.Contact(); c != nil {
				res.AppendHeader(sip.NewHeader("Contact", c.Value()))
			}
		default:
			res = sip.NewResponseFromRequest(req, 403, "Forbidden", nil)
		}
		_ = tx.Respond(res)
	})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		s.invites = append(s.invites, req)
		s.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
		select {
		case <-tx.Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
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
		if err := <-served; !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
		_ = ua.Close()
	})
	return s
}

// digestOK checks an Authorization: Digest header (RFC 2617, MD5,
// qop=auth) for user, realm and password.
func digestOK(header, method, user, realm, password string) bool {
	rest, ok := strings.CutPrefix(header, "Digest ")
	if !ok {
		return false
	}
	p := map[string]string{}
	for _, kv := range splitParams(rest) {
		k, v, _ := strings.Cut(kv, "=")
		p[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + realm + ":" + password)
	ha2 := h(method + ":" + p["uri"])
	want := h(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	return p["username"] == user && p["realm"] == realm && p["qop"] == "auth" && p["response"] == want
}

// splitParams splits on the commas outside quotes.
func splitParams(s string) []string {
	var out []string
	quoted, start := false, 0
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func header(r *sip.Request, name string) string {
	if h := r.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// openPhone opens the page in a new browser and points it at s.
func openPhone(t *testing.T, s *sipServer, flags ...string) *browsertest.Page {
	t.Helper()
	// The page may connect to its host on the server's ports only (CSP):
	// this server's listener is both.
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	web := servePhoneWith(t, web.Ports{WS: port, WSS: port})
	b := browsertest.Start(t, 2*time.Minute, flags...)
	p := b.Open(web.URL + "/phone/")
	p.WaitText("#log", "ready (JsSIP", 10*time.Second)
	p.Fill("#server", s.url)
	return p
}

func noErrors(t *testing.T, p *browsertest.Page) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // late console messages
	if errs := p.Errors(); len(errs) != 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// A token registers at once: the first REGISTER carries Authorization:
// Bearer and gets 200, with no 401 round trip; unregister sends Expires 0.
func TestPhoneRegistersWithToken(t *testing.T) {
	s := startSIP(t, wsgate.Config{})
	p := openPhone(t, s)
	p.Fill("#user", "alice")
	p.Fill("#password", "ignored when a token is set")
	p.Fill("#token", "tok-good")
	p.Click("#register")
	p.WaitText("#log", "registered (200 OK)", 15*time.Second)
	p.WaitText("#reg-status", "registered", time.Second)

	regs, _, refused := s.seen()
	if len(regs) != 1 {
		t.Fatalf("REGISTERs: got %d, want 1 (no 401 round trip)", len(regs))
	}
	if got := header(regs[0], "Authorization"); got != "Bearer tok-good" {
		t.Errorf("Authorization: got %q, want Bearer tok-good", got)
	}
	if got := regs[0].Transport(); got != "WS" {
		t.Errorf("transport: got %q, want WS", got)
	}
	if len(refused) != 0 {
		t.Errorf("gate refusals: %v", refused)
	}
	// The browser's handshake, found by the REGISTER's source.
	hs, ok := s.gate.Handshake(regs[0].Source())
	if !ok {
		t.Fatalf("no handshake for %s", regs[0].Source())
	}
	if want := strings.TrimSuffix(servePhoneOrigin(p), "/"); hs.Origin != want {
		t.Errorf("Origin: got %q, want %q", hs.Origin, want)
	}

	p.Click("#unregister")
	p.WaitText("#log", "unregistered", 10*time.Second)
	regs, _, _ = s.seen()
	if len(regs) != 2 || !strings.Contains(regs[1].String(), "expires=0") {
		t.Errorf("un-REGISTER: got %d REGISTERs, the last %q, want one with expires=0", len(regs), regs[len(regs)-1].String())
	}
	noErrors(t, p)
}

func servePhoneOrigin(p *browsertest.Page) string {
	return browsertest.MustEval[string](p, `location.origin`)
}

// A password registers through the digest challenge (401, then 200), over
// ws and over wss.
func TestPhoneRegistersWithPassword(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("wss=%v", secure), func(t *testing.T) {
			cfg := wsgate.Config{}
			var flags []string
			if secure {
				cfg.TLS = selfSigned(t)
				flags = []string{"--ignore-certificate-errors"}
			}
			s := startSIP(t, cfg)
			p := openPhone(t, s, flags...)
			p.Fill("#user", "alice")
			p.Fill("#password", "secret")
			p.Click("#register")
			p.WaitText("#log", "registered (200 OK)", 15*time.Second)
			regs, _, _ := s.seen()
			if len(regs) != 2 || header(regs[0], "Authorization") != "" || !strings.HasPrefix(header(regs[1], "Authorization"), "Digest ") {
				t.Errorf("REGISTERs: got %d, want one without and one with a digest Authorization", len(regs))
			}
			want := "WS"
			if secure {
				want = "WSS"
			}
			if got := regs[0].Transport(); got != want {
				t.Errorf("transport: got %q, want %q", got, want)
			}
			noErrors(t, p)
		})
	}
}

// Refused credentials show the status and the cause.
func TestPhoneRegistrationRefused(t *testing.T) {
	for _, tc := range []struct{ field, value string }{{"#token", "tok-bad"}, {"#password", "wrong"}} {
		t.Run(tc.field, func(t *testing.T) {
			s := startSIP(t, wsgate.Config{})
			p := openPhone(t, s)
			p.Fill("#user", "alice")
			p.Fill(tc.field, tc.value)
			p.Click("#register")
			p.WaitText("#log", "registrationFailed: Rejected (403 Forbidden)", 15*time.Second)
			p.WaitText("#reg-status", "failed", time.Second)
			if text, _ := p.Text("#log"); strings.Contains(text, tc.value) {
				t.Errorf("the log shows the secret: %q", text)
			}
			noErrors(t, p)
		})
	}
}

// A call without registering (an anonymous caller): getUserMedia with the
// fake device, an audio-only offer, and the 486 shown with its cause.
func TestPhoneAnonymousCallBusy(t *testing.T) {
	s := startSIP(t, wsgate.Config{})
	p := openPhone(t, s)
	p.Fill("#target", "bob")
	p.Click("#call")
	p.WaitText("#log", "calling sip:bob@127.0.0.1", 15*time.Second)
	p.WaitText("#log", "failed: Busy (486 Busy Here)", 15*time.Second)
	p.WaitText("#call-status", "failed", time.Second)
	regs, invites, _ := s.seen()
	if len(regs) != 0 {
		t.Errorf("REGISTERs: got %d, want 0", len(regs))
	}
	if len(invites) != 1 {
		t.Fatalf("INVITEs: got %d, want 1", len(invites))
	}
	inv := invites[0]
	if from := header(inv, "From"); !strings.Contains(from, "anonymous@anonymous.invalid") {
		t.Errorf("From: got %q, want anonymous", from)
	}
	body := string(inv.Body())
	if !strings.Contains(body, "m=audio") || strings.Contains(body, "m=video") {
		t.Errorf("SDP: want audio only, got %q", body)
	}
	if !strings.Contains(body, "a=candidate") {
		t.Errorf("SDP: no ICE candidate in %q", body)
	}
	if !p.Enabled("#call") {
		t.Error("call button disabled after the failed call")
	}
	noErrors(t, p)
}

// A page from an origin the gate does not allow cannot connect: the
// handshake gets 403 and the page logs the disconnection.
func TestPhoneForeignOriginRefused(t *testing.T) {
	s := startSIP(t, wsgate.Config{Origins: []string{"https://phone.example.com"}})
	p := openPhone(t, s)
	p.Fill("#user", "alice")
	p.Fill("#token", "tok-good")
	p.Click("#register")
	p.WaitText("#log", "disconnected", 15*time.Second)
	regs, _, refused := s.seen()
	if len(regs) != 0 {
		t.Errorf("REGISTERs: got %d, want 0", len(regs))
	}
	if len(refused) == 0 || refused[0] != wsgate.RefusedOrigin {
		t.Errorf("gate refusals: got %v, want %q", refused, wsgate.RefusedOrigin)
	}
	// The browser reports the refused handshake on its console on its own
	// time, which may come after the page logged the disconnection (a CI
	// run failed reading the console once, right after it).
	sawStatus := false
	for deadline := time.Now().Add(5 * time.Second); !sawStatus && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range p.Errors() {
			if strings.Contains(m.Text, "403") {
				sawStatus = true
			}
		}
	}
	if !sawStatus {
		t.Errorf("console: got %v, want the browser's report of the 403", p.Errors())
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
