package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/config"
)

const testAPIKey = "test-admin-key-0123456789"

// testServer is a sipwarden started in-process on loopback ports.
type testServer struct {
	*server
	cfg    config.Config
	cancel context.CancelFunc
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testConfig(t *testing.T, dataDir string) config.Config {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = dataDir
	cfg.Log.Level = "debug"
	cfg.SIP.Realm = "sipwarden.test"
	cfg.SIP.Domain = "sipwarden.test"
	cfg.SIP.Listen = config.Listen{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", TLS: "127.0.0.1:0"}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.APIKey = testAPIKey
	cfg.Registrar.BindingFlushInterval = config.Duration(20 * time.Millisecond)
	return cfg
}

func startServer(t *testing.T, cfg config.Config) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := start(ctx, cfg, newLogger(cfg.Log, logs))
	if err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	ts := &testServer{server: s, cfg: cfg, cancel: cancel, logs: logs}
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", tail(logs.String(), 4000))
		}
	})
	return ts
}

func (ts *testServer) stop() {
	if ts.server != nil {
		ts.cancel()
		ts.server.close()
		ts.server = nil
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// api calls the management API and decodes the "data" member into out.
func (ts *testServer) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+ts.addrs["http"]+path, rd)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		var env struct{ Data json.RawMessage }
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
		if err := json.Unmarshal(env.Data, out); err != nil {
			t.Fatalf("%s %s: decode data %q: %v", method, path, env.Data, err)
		}
	}
	return res.StatusCode
}

type credential struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Enabled  bool   `json:"enabled"`
}

func (ts *testServer) createCredential(t *testing.T, user, pass string, extra map[string]any) credential {
	t.Helper()
	body := map[string]any{"username": user, "password": pass}
	for k, v := range extra {
		body[k] = v
	}
	var c credential
	if code := ts.api(t, "POST", "/v1/credentials", body, &c); code != 201 {
		t.Fatalf("create credential %s: status %d", user, code)
	}
	return c
}

type registration struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Contact   string `json:"contact"`
	Source    string `json:"source"`
	Transport string `json:"transport"`
	ExpiresIn int    `json:"expires_in"`
}

func (ts *testServer) registrations(t *testing.T, user string) []registration {
	t.Helper()
	var rs []registration
	if code := ts.api(t, "GET", "/v1/registrations?username="+user, nil, &rs); code != 200 {
		t.Fatalf("list registrations: status %d", code)
	}
	return rs
}

// phone is a SIP client on its own user agent (sipgo's client digest is an
// implementation independent of ours).
type phone struct {
	cli       *sipgo.Client
	transport string
	server    string // host:port of the server for that transport
}

func newPhone(t *testing.T, ts *testServer, transport string) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone"),
		sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	return &phone{cli: cli, transport: transport, server: ts.addrs[transport]}
}

type regOpts struct {
	user, pass  string // pass "" sends no credentials
	toUser      string // default user
	domain      string // default sipwarden.test
	contactUser string // default user
	callID      string // default random
	cseq        uint32 // default 1
	expires     string // Expires header; "" omits
	contact     string // raw Contact value overriding the default
	instance    string
}

func (p *phone) register(t *testing.T, o regOpts) *sip.Response {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(p.server)
	port, _ := strconv.Atoi(portStr)
	if o.toUser == "" {
		o.toUser = o.user
	}
	if o.domain == "" {
		o.domain = "sipwarden.test"
	}
	if o.contactUser == "" {
		o.contactUser = o.user
	}
	if o.cseq == 0 {
		o.cseq = 1
	}
	ruri := sip.Uri{Scheme: "sip", Host: host, Port: port}
	if p.transport != "udp" {
		ruri.UriParams = sip.NewParams()
		ruri.UriParams.Add("transport", p.transport)
	}
	req := sip.NewRequest(sip.REGISTER, ruri)
	req.SetTransport(strings.ToUpper(p.transport))
	req.AppendHeader(sip.NewHeader("To", fmt.Sprintf("<sip:%s@%s>", o.toUser, o.domain)))
	req.AppendHeader(sip.NewHeader("From", fmt.Sprintf("<sip:%s@%s>;tag=%d", o.user, o.domain, time.Now().UnixNano())))
	if o.callID != "" {
		req.AppendHeader(sip.NewHeader("Call-ID", o.callID))
	}
	req.AppendHeader(sip.NewHeader("CSeq", fmt.Sprintf("%d REGISTER", o.cseq)))
	contact := o.contact
	if contact == "" {
		contact = fmt.Sprintf("<sip:%s@127.0.0.1:5999;transport=%s>", o.contactUser, p.transport)
		if o.instance != "" {
			contact += `;+sip.instance="<urn:uuid:` + o.instance + `>"`
		}
	}
	req.AppendHeader(sip.NewHeader("Contact", contact))
	if o.expires != "" {
		req.AppendHeader(sip.NewHeader("Expires", o.expires))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatalf("REGISTER over %s: %v", p.transport, err)
	}
	if res.StatusCode != 401 || o.pass == "" {
		return res
	}
	res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: o.user, Password: o.pass})
	if err != nil {
		t.Fatalf("REGISTER with digest over %s: %v", p.transport, err)
	}
	return res
}

func wantStatus(t *testing.T, res *sip.Response, code int) {
	t.Helper()
	if res.StatusCode != code {
		t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, code)
	}
}

// rawExchange sends one raw message and returns the first response (or ""
// when none came within the timeout).
func rawExchange(t *testing.T, transport, addr, msg string, timeout time.Duration) string {
	t.Helper()
	network := transport
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", transport, addr, err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg = strings.ReplaceAll(msg, "LOCAL", local)
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if transport == "udp" {
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	rd := bufio.NewReader(c)
	var sb strings.Builder
	for {
		line, err := rd.ReadString('\n')
		sb.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	return sb.String()
}

func statusLine(raw string) string {
	line, _, _ := strings.Cut(raw, "\r\n")
	return line
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = slog.LevelDebug
