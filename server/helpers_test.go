package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/server/servertest"
)

const testAPIKey = servertest.APIKey

// testServer is a node started in-process on loopback ports
// (servertest.Start).
type testServer struct {
	*servertest.Server
	logs *servertest.SyncBuffer
}

func testConfig(t *testing.T, dataDir string) config.Config { return servertest.Config(t, dataDir) }

func startServer(t *testing.T, cfg config.Config, opts ...server.Options) *testServer {
	t.Helper()
	s := servertest.Start(t, cfg, opts...)
	return &testServer{Server: s, logs: s.Logs}
}

func (ts *testServer) stop() { ts.Stop() }

func tail(s string, n int) string { return servertest.Tail(s, n) }

// api calls the management API and decodes the "data" member into out.
func (ts *testServer) api(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	return ts.API(t, method, path, body, out)
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
	return &phone{cli: cli, transport: transport, server: ts.Addr(transport)}
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
	return servertest.RawExchange(t, transport, addr, msg, timeout)
}

func statusLine(raw string) string { return servertest.StatusLine(raw) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	servertest.WaitFor(t, what, d, cond)
}
