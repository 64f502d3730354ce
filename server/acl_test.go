package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/server/servertest"
)

// TestConnectionAllowList: a credential of a connection with
// allowed_cidrs registers only from those addresses; from elsewhere it
// gets 403, counted as a failure (outcome acl) that bans like any other.
func TestConnectionAllowList(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Guard.MaxFailures = 3
	ts := startServer(t, cfg)
	var conn struct {
		ID           string   `json:"id"`
		AllowedCIDRs []string `json:"allowed_cidrs"`
	}
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "pbx", "allowed_cidrs": []string{"127.0.0.20", "127.0.1.0/24"}}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	if fmt.Sprint(conn.AllowedCIDRs) != "[127.0.0.20/32 127.0.1.0/24]" {
		t.Fatalf("allowed_cidrs: got %v", conn.AllowedCIDRs)
	}
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "bad", "allowed_cidrs": []string{"127.0.0.300"}}, nil); code != 422 {
		t.Fatalf("invalid CIDR: got %d, want 422", code)
	}
	ts.createCredential(t, "pbx1", pw, map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "roamer", pw, nil)
	udp, tcp := ts.Addr("udp"), ts.Addr("tcp")

	for _, c := range []struct{ tp, from, user, want string }{
		{"udp", "127.0.0.20", "pbx1", "SIP/2.0 200 OK"},
		{"tcp", "127.0.1.77", "pbx1", "SIP/2.0 200 OK"},
		{"udp", "127.0.0.21", "roamer", "SIP/2.0 200 OK"}, // the default connection has no list
		{"udp", "127.0.0.21", "pbx1", "SIP/2.0 403 Forbidden"},
		{"tcp", "127.0.0.21", "pbx1", "SIP/2.0 403 Forbidden"},
	} {
		server := udp
		if c.tp == "tcp" {
			server = tcp
		}
		if st := newRawUA(t, c.tp, c.from, server).register(c.user, pw); st != c.want {
			t.Errorf("%s from %s over %s: got %q, want %q", c.user, c.from, c.tp, st, c.want)
		}
	}
	if rs := ts.registrations(t, "pbx1"); len(rs) != 1 || !strings.HasPrefix(rs[0].Source, "127.0.1.77:") {
		t.Fatalf("pbx1 bindings: got %+v, want only the one from 127.0.1.77", rs)
	}
	// The third refusal bans 127.0.0.21, with the reason.
	if st := newRawUA(t, "udp", "127.0.0.21", udp).register("pbx1", pw); st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("third: got %q", st)
	}
	bs := ts.bans(t)
	if len(bs) != 1 || bs[0].IP != "127.0.0.21" || !strings.Contains(bs[0].Reason, "(last: acl)") {
		t.Fatalf("bans: got %+v, want 127.0.0.21 banned for acl", bs)
	}
	// Clearing the list lets pbx1 in from anywhere (once unbanned).
	if code := ts.api(t, "DELETE", "/v1/bans/127.0.0.21", nil, nil); code != 204 {
		t.Fatalf("lift: %d", code)
	}
	if code := ts.api(t, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"allowed_cidrs": nil}, nil); code != 200 {
		t.Fatalf("clear allowed_cidrs: %d", code)
	}
	if st := newRawUA(t, "udp", "127.0.0.21", udp).register("pbx1", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("after clearing the list: got %q, want 200", st)
	}
}

// TestLogsHoldNoSecrets runs a full scenario at debug level (sipgo's own
// log included) and greps the log for every password, HA1, Authorization
// value and API key used: none may appear.
func TestLogsHoldNoSecrets(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.Level = "debug"
	cfg.Guard.MaxFailures = 5
	logs := &servertest.SyncBuffer{}
	servertest.SwapSIPGoLog(t, server.NewLogger(cfg.Log, logs).Handler()) // behind SetSIPGlobals' redaction
	ts := startServer(t, cfg)

	passwords := []string{pw, "second-password-42", "changed-password-99", "wrong-password-x1"}
	ts.createCredential(t, "alice", passwords[0], nil)
	ts.createCredential(t, "bob", passwords[1], map[string]any{"algorithms": []string{"SHA-256"}})
	var c credential
	ts.api(t, "GET", "/v1/credentials?username=alice", nil, nil)
	for _, tp := range []string{"udp", "tcp", "tls"} {
		p := newPhone(t, ts, tp)
		wantStatus(t, p.register(t, regOpts{user: "alice", pass: passwords[0]}), 200)
		wantStatus(t, p.register(t, regOpts{user: "bob", pass: passwords[1]}), 200)
		wantStatus(t, p.register(t, regOpts{user: "alice", pass: passwords[3]}), 403)
	}
	// A password change, then the new one.
	c = ts.credentialByName(t, "alice")
	if code := ts.api(t, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": passwords[2]}, nil); code != 200 {
		t.Fatalf("change password: %d", code)
	}
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "alice", pass: passwords[2]}), 200)
	// Raw answers from several sources, a ban, a refused API key.
	att := newRawUA(t, "udp", "127.0.0.30", ts.Addr("udp"))
	var auths []string
	nonce := att.nonce()
	for i := range 6 {
		user := []string{"alice", "bob", "carol"}[i%3]
		a := digestAuth(user, passwords[3], nonce)
		auths = append(auths, a)
		att.exchange(att.registerMsg(user, randHex(8), i+2, a, ""), time.Second)
	}
	if len(ts.bans(t)) != 1 {
		t.Fatalf("no ban in the scenario: %+v", ts.bans(t))
	}
	const wrongKey = "swk_0195deadbeef_notarealsecretnotarealsecret0000"
	ts.apiWithKey(t, wrongKey, "GET", "/v1/credentials")
	ts.stop()

	secrets := map[string]string{"api key": testAPIKey, "wrong api key": wrongKey}
	for i, p := range passwords {
		secrets[fmt.Sprintf("password %d", i)] = p
		for _, u := range []string{"alice", "bob"} {
			for _, alg := range []digest.Algorithm{digest.MD5, digest.SHA256, digest.SHA512_256} {
				secrets[fmt.Sprintf("HA1 %s %s %d", u, alg, i)] = digest.HA1(alg, u, "sipwarden.test", p)
			}
		}
	}
	for i, a := range auths {
		secrets[fmt.Sprintf("authorization %d", i)] = a
		_, resp, _ := strings.Cut(a, `response="`)
		resp, _, _ = strings.Cut(resp, `"`)
		secrets[fmt.Sprintf("digest response %d", i)] = resp
	}
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Fatal("sipgo's own debug log is empty: the scenario does not check it")
	}
	all := logs.String() + ts.logs.String()
	if !strings.Contains(all, "REGISTER") || !strings.Contains(all, "level=DEBUG") || !strings.Contains(all, "source banned") {
		t.Fatalf("the scenario logged too little to be checked:\n%s", tail(all, 2000))
	}
	for what, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the log holds the %s", what)
		}
	}
	for _, marker := range []string{"Digest username", "Authorization:", "password\":"} {
		if strings.Contains(all, marker) {
			t.Errorf("the log holds %q", marker)
		}
	}
}

func (ts *testServer) credentialByName(t *testing.T, user string) credential {
	t.Helper()
	var cs []credential
	if code := ts.api(t, "GET", "/v1/credentials?username="+user, nil, &cs); code != 200 || len(cs) != 1 {
		t.Fatalf("credential %s: status %d, %d found", user, code, len(cs))
	}
	return cs[0]
}

// apiWithKey calls the API with another key and returns the status.
func (ts *testServer) apiWithKey(t *testing.T, key, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+ts.Addr("http")+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestNarrowedAllowListEndsRegistrations: a connection's allowed_cidrs
// narrowed by the API removes its credentials' registrations from the
// addresses no longer listed, at once; the others stay. They stayed, and
// got calls, until the device's next refresh (up to an hour).
func TestNarrowedAllowListEndsRegistrations(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Registrar.MaxContacts = 2
	ts := startServer(t, cfg)
	var conn struct{ ID string }
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "pbx", "allowed_cidrs": []string{"127.0.0.0/8"}}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	ts.createCredential(t, "gina", pw, map[string]any{"connection_id": conn.ID})
	for _, from := range []string{"127.0.0.48", "127.0.0.49"} {
		if st := newRawUA(t, "udp", from, ts.Addr("udp")).register("gina", pw); st != "SIP/2.0 200 OK" {
			t.Fatalf("REGISTER from %s: %q", from, st)
		}
	}
	if code := ts.api(t, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"allowed_cidrs": []string{"127.0.0.49"}}, nil); code != 200 {
		t.Fatalf("narrow allowed_cidrs: %d", code)
	}
	rs := ts.registrations(t, "gina")
	if len(rs) != 1 || !strings.HasPrefix(rs[0].Source, "127.0.0.49:") {
		t.Fatalf("after narrowing: %+v, want only the binding from 127.0.0.49", rs)
	}
}
