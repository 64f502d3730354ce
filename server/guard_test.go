package server_test

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/store"
)

// rawUA is a SIP client on a raw socket bound to a chosen loopback
// address (127.0.0.0/8 is all local on Linux), so that tests can speak
// from several source addresses.
type rawUA struct {
	t         testing.TB
	conn      net.Conn
	transport string
	local     string
	rd        *bufio.Reader
}

func newRawUA(t testing.TB, transport, from, server string) *rawUA {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	switch transport {
	case "udp":
		d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(from)}
	default:
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial(transport, server)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", transport, from, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawUA{t: t, conn: c, transport: transport, local: c.LocalAddr().String(), rd: bufio.NewReaderSize(c, 65536)}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// registerMsg builds a REGISTER for user; auth is an Authorization value
// or "".
func (u *rawUA) registerMsg(user, callID string, cseq int, auth, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:sipwarden.test SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n", strings.ToUpper(u.transport), u.local, randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@sipwarden.test>;tag=%s\r\nTo: <sip:%s@sipwarden.test>\r\n", user, randHex(4), user)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\nContact: <sip:%s@%s;transport=%s>\r\nExpires: 600\r\n", callID, cseq, user, u.local, u.transport)
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString(extra)
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

func (u *rawUA) send(msg string) error {
	_ = u.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := io.WriteString(u.conn, msg)
	return err
}

// recv returns the next message, or "" after timeout.
func (u *rawUA) recv(timeout time.Duration) string {
	_ = u.conn.SetReadDeadline(time.Now().Add(timeout))
	if u.transport == "udp" {
		buf := make([]byte, 65536)
		n, err := u.conn.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	var sb strings.Builder
	for {
		line, err := u.rd.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return ""
		}
		if line == "\r\n" {
			return sb.String() // our answers carry no body
		}
	}
}

// exchange sends msg and returns the status line of the answer ("" for
// none within timeout), skipping provisional answers.
func (u *rawUA) exchange(msg string, timeout time.Duration) (status, raw string) {
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

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// digestAuth is the Authorization value answering nonce for user.
func digestAuth(user, pass, nonce string) string { return digestAuthNC(user, pass, nonce, 1) }

// digestAuthNC is digestAuth with nonce count nc.
func digestAuthNC(user, pass, nonce string, nc int) string {
	ncs := fmt.Sprintf("%08x", nc)
	c := digest.Credentials{Username: user, Realm: "sipwarden.test", Nonce: nonce, URI: "sip:sipwarden.test",
		Algorithm: "MD5", QOP: "auth", CNonce: randHex(4), NC: ncs, NonceCount: uint32(nc)}
	resp := digest.Response(c, digest.MD5, "REGISTER", digest.HA1(digest.MD5, user, "sipwarden.test", pass), nil)
	return fmt.Sprintf(`Digest username="%s", realm="sipwarden.test", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s"`,
		user, nonce, c.URI, resp, ncs, c.CNonce)
}

// register runs a digest REGISTER flow (challenge, answer) and returns
// the final status line ("" when an answer did not come).
func (u *rawUA) register(user, pass string) string {
	callID := randHex(8)
	st, raw := u.exchange(u.registerMsg(user, callID, 1, "", ""), 2*time.Second)
	if !strings.HasPrefix(st, "SIP/2.0 401") {
		return st
	}
	m := nonceRE.FindStringSubmatch(raw)
	if m == nil {
		return "no nonce in " + st
	}
	st, _ = u.exchange(u.registerMsg(user, callID, 2, digestAuth(user, pass, m[1]), ""), 2*time.Second)
	return st
}

// nonce gets a fresh nonce from a challenge.
func (u *rawUA) nonce() string {
	st, raw := u.exchange(u.registerMsg("nobody", randHex(8), 1, "", ""), 2*time.Second)
	m := nonceRE.FindStringSubmatch(raw)
	if m == nil {
		u.t.Fatalf("no challenge: got %q", st)
	}
	return m[1]
}

// createUsers puts n credentials user0000.. straight into the store.
func createUsers(t *testing.T, db *store.DB, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			user := fmt.Sprintf("%s%04d", prefix, i)
			ha1 := map[string]string{}
			for _, a := range []digest.Algorithm{digest.MD5, digest.SHA256, digest.SHA512_256} {
				ha1[a.String()] = digest.HA1(a, user, "sipwarden.test", pw)
			}
			if _, err := db.CreateCredential(store.Credential{Username: user, ConnectionID: store.DefaultConnectionID,
				Enabled: true, Realm: "sipwarden.test", HA1: ha1}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create credential: %v", err)
	}
}

type banView struct {
	IP       string `json:"ip"`
	Prefix   string `json:"prefix"`
	Reason   string `json:"reason"`
	Failures int    `json:"failures"`
}

func (ts *testServer) bans(t *testing.T) []banView {
	t.Helper()
	var bs []banView
	if code := ts.api(t, "GET", "/v1/bans", nil, &bs); code != 200 {
		t.Fatalf("GET /v1/bans: %d", code)
	}
	return bs
}

// TestBruteForceBanned: one source sends 10,000 wrong-password REGISTERs
// and is banned after guard.max_failures; meanwhile a legitimate client on
// another address registers throughout, 1,000 users behind one address
// register with correct passwords and are never banned, and a username
// under attack is slowed only for its attackers.
func TestBruteForceBanned(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.Level = "info"
	const maxFailures = 20
	cfg.Guard.MaxFailures = maxFailures
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	createUsers(t, ts.Store(), "nat", 1000)
	udp := ts.Addr("udp")

	// The legitimate client registers alice from 127.0.0.3 every 20 ms
	// until the end.
	stop := make(chan struct{})
	var stopOnce sync.Once
	var legitOK, legitBad atomic.Int64
	var legitFirstBad atomic.Value
	var wg sync.WaitGroup
	finish := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer finish() // also when the test fails half way
	wg.Add(1)
	go func() {
		defer wg.Done()
		ua := newRawUA(t, "udp", "127.0.0.3", udp)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if st := ua.register("alice", pw); st == "SIP/2.0 200 OK" {
				legitOK.Add(1)
			} else {
				legitBad.Add(1)
				legitFirstBad.CompareAndSwap(nil, st)
			}
		}
	}()

	// 1,000 users behind one address (127.0.0.4), 50 at a time.
	var natOK atomic.Int64
	var natBad atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		var nw sync.WaitGroup
		for w := range 50 {
			nw.Add(1)
			go func() {
				defer nw.Done()
				ua := newRawUA(t, "udp", "127.0.0.4", udp)
				for i := w; i < 1000; i += 50 {
					if st := ua.register(fmt.Sprintf("nat%04d", i), pw); st == "SIP/2.0 200 OK" {
						natOK.Add(1)
					} else {
						natBad.CompareAndSwap(nil, fmt.Sprintf("nat%04d: %q", i, st))
					}
				}
			}()
		}
		nw.Wait()
	}()

	// Another source guesses alice's password: after
	// guard.user_max_failures (5) it is slowed for alice, not banned, and
	// alice's own phone is not affected.
	guesser := newRawUA(t, "udp", "127.0.0.5", udp)
	for i := range 5 {
		if st := guesser.register("alice", fmt.Sprintf("guess-%d-password", i)); st != "SIP/2.0 403 Forbidden" {
			t.Fatalf("guess %d: got %q, want 403 Forbidden", i, st)
		}
	}
	if st := guesser.register("alice", "guess-5-password"); st != "SIP/2.0 403 Too Many Failed Attempts" {
		t.Fatalf("guess 6: got %q, want 403 Too Many Failed Attempts", st)
	}
	if st := guesser.register("nat0001", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("the guesser with another username: got %q, want 200 (only alice is slowed)", st)
	}

	// The attacker: 127.0.0.2, wrong passwords for many usernames.
	att := newRawUA(t, "udp", "127.0.0.2", udp)
	nonce := att.nonce()
	for i := range maxFailures - 1 {
		user := fmt.Sprintf("victim%d", i)
		st, _ := att.exchange(att.registerMsg(user, randHex(8), 2, digestAuth(user, "wrong-password-x", nonce), ""), 2*time.Second)
		if st != "SIP/2.0 403 Forbidden" {
			t.Fatalf("failure %d: got %q, want 403 Forbidden", i+1, st)
		}
	}
	if bs := ts.bans(t); len(bs) != 0 {
		t.Fatalf("banned after %d failures: %+v", maxFailures-1, bs)
	}
	st, _ := att.exchange(att.registerMsg("victim-last", randHex(8), 2, digestAuth("victim-last", "wrong-password-x", nonce), ""), 2*time.Second)
	if st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("failure %d: got %q", maxFailures, st)
	}
	bs := ts.bans(t)
	if len(bs) != 1 || bs[0].IP != "127.0.0.2" || bs[0].Failures != maxFailures || !strings.Contains(bs[0].Reason, "unknown_user") {
		t.Fatalf("after %d failures: bans %+v, want 127.0.0.2 with %d failures", maxFailures, bs, maxFailures)
	}
	// The rest of the 10,000, as fast as the socket takes them; answers
	// are counted by a reader.
	var answers atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for att.recv(time.Second) != "" {
			answers.Add(1)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	sent := maxFailures
	for ; sent < 10000 && time.Now().Before(deadline); sent++ {
		user := "alice"
		if sent%2 == 1 {
			user = "victim" + strconv.Itoa(sent)
		}
		if err := att.send(att.registerMsg(user, randHex(8), 2, digestAuth(user, "wrong-password-x", nonce), "")); err != nil {
			t.Fatalf("send %d: %v", sent, err)
		}
		if sent%200 == 0 {
			time.Sleep(2 * time.Millisecond) // let the kernel buffers drain
		}
	}
	<-readerDone
	if sent != 10000 {
		t.Fatalf("sent %d of 10000 within the time limit", sent)
	}
	t.Logf("attacker: %d REGISTERs sent, %d answered (403 from the ban)", sent, answers.Load())
	// Still banned, with the failures it was banned for: the flood was
	// refused before authentication.
	bs = ts.bans(t)
	if len(bs) != 1 || bs[0].IP != "127.0.0.2" || bs[0].Failures != maxFailures {
		t.Fatalf("after the flood: bans %+v", bs)
	}
	// Even the right password is refused from the banned address.
	if st := newRawUA(t, "udp", "127.0.0.2", udp).register("alice", pw); st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("banned source with the right password: got %q, want 403 Forbidden", st)
	}

	finish()
	if v := natBad.Load(); v != nil || natOK.Load() != 1000 {
		t.Fatalf("users behind one address: %d of 1000 registered; first failure %v", natOK.Load(), v)
	}
	if legitBad.Load() != 0 || legitOK.Load() < 10 {
		t.Fatalf("legitimate client: %d registered, %d refused (first: %v)", legitOK.Load(), legitBad.Load(), legitFirstBad.Load())
	}
	for _, b := range ts.bans(t) {
		if b.IP != "127.0.0.2" {
			t.Errorf("unexpected ban: %+v", b)
		}
	}
	t.Logf("legitimate client registered %d times during the attack", legitOK.Load())
	got := ts.scrapeSettled(t)
	wantSamples(t, got, map[string]float64{
		`sipwarden_guard_bans_issued_total`: 1,
		`sipwarden_guard_bans_active`:       1,
	})
	if r := got[`sipwarden_guard_rejected_total{reason="banned"}`]; r < 1 {
		t.Errorf("rejected{banned} = %v, want the flood counted", r)
	}
}

// TestBanDropClosesConnections: with ban_action drop a banned source gets
// no answer, its TCP connection is closed, and new ones are refused.
func TestBanDropClosesConnections(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Guard.MaxFailures = 3
	cfg.Guard.BanAction = "drop"
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	tcp := newRawUA(t, "tcp", "127.0.0.6", ts.Addr("tcp"))
	nonce := tcp.nonce()
	for i := range 3 {
		user := fmt.Sprintf("v%d", i)
		st, _ := tcp.exchange(tcp.registerMsg(user, randHex(8), 2, digestAuth(user, "wrong-password-x", nonce), ""), 2*time.Second)
		if i < 2 && st != "SIP/2.0 403 Forbidden" {
			t.Fatalf("failure %d: got %q", i+1, st)
		}
	}
	// The third failure banned it: the connection is closed.
	if raw := tcp.recv(2 * time.Second); raw != "" {
		t.Fatalf("banned connection got %q, want it closed", raw)
	}
	if st := newRawUA(t, "udp", "127.0.0.6", ts.Addr("udp")).register("alice", pw); st != "" {
		t.Fatalf("banned source over UDP: got %q, want no answer", st)
	}
	c, err := net.DialTimeout("tcp", ts.Addr("tcp"), time.Second)
	if err == nil { // from 127.0.0.1: not banned
		c.Close()
	}
	again := newRawUA(t, "tcp", "127.0.0.6", ts.Addr("tcp"))
	if st, _ := again.exchange(again.registerMsg("alice", "x", 1, "", ""), time.Second); st != "" {
		t.Fatalf("new connection from the banned source answered %q", st)
	}
	if st := newRawUA(t, "udp", "127.0.0.7", ts.Addr("udp")).register("alice", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("another source: got %q, want 200", st)
	}
}

// TestUserAgentDenied: scanners' requests are dropped unanswered.
func TestUserAgentDenied(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ua := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	for _, agent := range []string{"friendly-scanner", "SIPVicious 0.3", "sipcli/v1.8"} {
		st, _ := ua.exchange(ua.registerMsg("alice", randHex(8), 1, "", "User-Agent: "+agent+"\r\n"), 500*time.Millisecond)
		if st != "" {
			t.Errorf("User-Agent %q: got %q, want no answer", agent, st)
		}
	}
	st, _ := ua.exchange(ua.registerMsg("alice", randHex(8), 1, "", "User-Agent: Zoiper rv2.10\r\n"), 2*time.Second)
	if !strings.HasPrefix(st, "SIP/2.0 401") {
		t.Fatalf("a phone's User-Agent: got %q, want 401", st)
	}
}

// TestIdleTCPConnectionsClosed: a connection that never authenticates is
// closed after limits.idle_timeout; one that registered is kept.
func TestIdleTCPConnectionsClosed(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.IdleTimeout = config.Duration(time.Second)
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	idle := newRawUA(t, "tcp", "127.0.0.8", ts.Addr("tcp"))
	challenged := newRawUA(t, "tcp", "127.0.0.8", ts.Addr("tcp"))
	if st, _ := challenged.exchange(challenged.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 401") {
		t.Fatalf("challenge: got %q", st)
	}
	registered := newRawUA(t, "tcp", "127.0.0.8", ts.Addr("tcp"))
	if st := registered.register("alice", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("register: got %q", st)
	}
	// The registered one reads once more to arm its long deadline.
	if err := registered.send("\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if pong := registered.recv(2 * time.Second); pong != "\r\n" {
		t.Fatalf("keep-alive: got %q, want a CRLF pong", pong)
	}
	time.Sleep(2500 * time.Millisecond)
	for name, ua := range map[string]*rawUA{"idle": idle, "challenged": challenged} {
		_ = ua.conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := ua.conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s connection: read got %v, want EOF (closed by the server)", name, err)
		}
	}
	if st := registered.register("alice", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("registered connection after the short timeout: got %q, want it kept and 200", st)
	}
}

// TestConnectionsPerIPLimited: over limits.max_connections_per_ip a new
// connection is closed at once; other addresses still connect.
func TestConnectionsPerIPLimited(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.MaxConnectionsPerIP = 3
	ts := startServer(t, cfg)
	for range 3 {
		ua := newRawUA(t, "tcp", "127.0.0.9", ts.Addr("tcp"))
		if st, _ := ua.exchange(ua.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 401") {
			t.Fatalf("connection within the limit: got %q", st)
		}
	}
	over := newRawUA(t, "tcp", "127.0.0.9", ts.Addr("tcp"))
	if st, _ := over.exchange(over.registerMsg("alice", randHex(8), 1, "", ""), time.Second); st != "" {
		t.Fatalf("4th connection from one address: got %q, want it closed", st)
	}
	other := newRawUA(t, "tcp", "127.0.0.10", ts.Addr("tcp"))
	if st, _ := other.exchange(other.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 401") {
		t.Fatalf("another address: got %q", st)
	}
	got := ts.scrapeSettled(t)
	wantSamples(t, got, map[string]float64{
		`sipwarden_guard_rejected_total{reason="connections_per_ip"}`: 1,
		`sipwarden_sip_connections_open{transport="tcp"}`:             4, // three from the first address, one from the other
	})
}

// TestInFlightBound: over limits.max_in_flight REGISTERs get 503 with
// Retry-After, and are served again once below it. Two REGISTERs held by
// a rule inside the limit fill it; an OPTIONS held there takes no slot
// (a forwarded request waits for its answer, up to 32 s: the proxy's own
// caps bound those).
func TestInFlightBound(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.MaxInFlight = 2
	held, release := make(chan struct{}, 2), make(chan struct{})
	hold := func(next admission.Handler) admission.Handler {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			if h := req.GetHeader("X-Hold"); h != nil {
				held <- struct{}{}
				<-release
			}
			next(req, tx)
		}
	}
	ts := startServer(t, cfg, server.Options{Middleware: []admission.Middleware{hold}})
	options := "OPTIONS sip:" + ts.Addr("udp") + " SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-hold;rport\n" +
		"To: <sip:" + ts.Addr("udp") + ">\nFrom: <sip:probe@sipwarden.test>;tag=h\nCall-ID: hold-options\n" +
		"CSeq: 1 OPTIONS\nMax-Forwards: 70\nX-Hold: 1\nContent-Length: 0\n\n"
	go rawExchange(t, "udp", ts.Addr("udp"), options, 5*time.Second)
	for range 2 {
		// Over TCP: a connection's reader answers its REGISTERs itself,
		// so each held one holds its own connection only.
		u := newRawUA(t, "tcp", "127.0.0.1", ts.Addr("tcp"))
		go u.exchange(u.registerMsg("bob", randHex(8), 1, "", "X-Hold: 1\r\n"), 5*time.Second)
	}
	for range 3 {
		select {
		case <-held:
		case <-time.After(5 * time.Second):
			t.Fatal("the held requests did not arrive")
		}
	}
	ua := newRawUA(t, "udp", "127.0.0.11", ts.Addr("udp"))
	st, raw := ua.exchange(ua.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second)
	if st != "SIP/2.0 503 Service Unavailable" || !strings.Contains(raw, "Retry-After: 5") {
		t.Fatalf("over the bound: got %q, want 503 with Retry-After: 5\n%s", st, raw)
	}
	close(release)
	waitFor(t, "the held requests to finish", 5*time.Second, func() bool {
		return scrape(t, ts.metricsURL())["sipwarden_sip_transactions_inflight"] == 0
	})
	if st, _ := ua.exchange(ua.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 401") {
		t.Fatalf("below the bound: got %q, want 401", st)
	}
}

// TestTLSMinimumVersion: TLS 1.1 is refused, 1.2 accepted.
func TestTLSMinimumVersion(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	for _, c := range []struct {
		max uint16
		ok  bool
	}{{tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", ts.Addr("tls"),
			&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: c.max})
		if (err == nil) != c.ok || (err != nil && !strings.Contains(err.Error(), "protocol version")) {
			t.Errorf("TLS max version %x: handshake error %v, want ok=%v", c.max, err, c.ok)
		}
		if err == nil {
			conn.Close()
		}
	}
}

// TestAPIKeyBlockFollowsConfig: the API key guard applies
// limits.api_key_failures and api_key_block only; the SIP guard's
// slow-guessing tier (50 failures: blocked for an hour) used to apply too,
// whatever they said.
func TestAPIKeyBlockFollowsConfig(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.APIKeyFailures = 100
	cfg.Limits.APIKeyBlock = config.Duration(time.Second)
	ts := startServer(t, cfg)
	for i := range 99 {
		if code, body := ts.APIRaw(t, "swk_nope_wrong", "GET", "/v1/credentials", nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d of 99 (limit 100): got %d %s, want 401", i+1, code, body)
		}
	}
	code, _ := ts.APIRaw(t, "swk_nope_wrong", "GET", "/v1/credentials", nil) // the 100th blocks
	if code != http.StatusUnauthorized {
		t.Fatalf("wrong key 100: got %d, want 401", code)
	}
	req, err := http.NewRequest("GET", "http://"+ts.Addr("http")+"/v1/credentials", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer swk_nope_wrong")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("after 100 wrong keys: got %d Retry-After %q, want 429 and the configured 1 s", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Blocked, the right key is refused too; the block ends after 1 s.
	if code, _ := ts.APIRaw(t, testAPIKey, "GET", "/v1/credentials", nil); code != http.StatusTooManyRequests {
		t.Fatalf("the right key from the blocked address: got %d, want 429", code)
	}
	waitFor(t, "the 1 s block to end", 5*time.Second, func() bool {
		code, _ := ts.APIRaw(t, testAPIKey, "GET", "/v1/credentials", nil)
		return code == http.StatusOK
	})
}

// TestAPIKeyBlockExempt: an address in guard.exempt_cidrs is never
// blocked for wrong API keys: the operator's way not to be locked out.
func TestAPIKeyBlockExempt(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.APIKeyFailures = 3
	cfg.Guard.ExemptCIDRs = []string{"127.0.0.1/32"}
	ts := startServer(t, cfg)
	for i := range 10 {
		if code, _ := ts.APIRaw(t, "swk_nope_wrong", "GET", "/v1/credentials", nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d from an exempt address: got %d, want 401", i+1, code)
		}
	}
	if code, _ := ts.APIRaw(t, testAPIKey, "GET", "/v1/credentials", nil); code != http.StatusOK {
		t.Fatalf("the right key from an exempt address: got %d, want 200", code)
	}
}
