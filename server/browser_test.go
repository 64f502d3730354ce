package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/browsertest"
)

// Real Chromium (browsertest) on the node's own /phone page (JsSIP over
// its ws and wss listeners): everything a browser user does, end to end.

// phonePage opens the node's /phone in b, pointed at its listener of
// transport ("ws" or "wss"), with domain sipwarden.test.
func phonePage(t *testing.T, b *browsertest.Browser, ts *testServer, transport string) *browsertest.Page {
	t.Helper()
	p := b.Open("http://" + ts.Addr("http") + "/phone")
	p.WaitText("#log", "ready (JsSIP 3.13.", 15*time.Second)
	p.Fill("#server", transport+"://"+ts.Addr(transport))
	p.Fill("#domain", "sipwarden.test")
	return p
}

// sipResponses is how many responses with code the node sent to method.
func sipResponses(t *testing.T, ts *testServer, method, code string) float64 {
	t.Helper()
	return max(metricValue(t, ts, "sipwarden_sip_responses_total", "method", method, "code", code), 0)
}

// TestBrowserPhone: bob registers with a JWT (200, no 401), alice with
// digest over ws and carol over wss (both after a 401); alice calls bob
// through sipwarden, bob answers, both reach "confirmed", GET /v1/calls
// lists the call, alice hangs up; bob's token is refreshed on the same
// WebSocket; when bob's WebSocket closes (without un-REGISTER) his
// binding goes; closing carol's page removes hers.
func TestBrowserPhone(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	bobCred := ts.createCredential(t, "bob", "bob-secret-pw-22", nil)
	ts.createCredential(t, "carol", "carol-secret-pw-3", nil)
	b := browsertest.Start(t, 3*time.Minute, "--ignore-certificate-errors") // the node's self-signed wss certificate

	// bob: a token, over ws: the first REGISTER gets 200.
	bob := phonePage(t, b, ts, "ws")
	bob.Fill("#user", "bob")
	bob.Fill("#token", ts.mintToken(t, bobCred.ID).Token)
	bob.Click("#register")
	bob.WaitText("#log", "registered (200 OK)", 15*time.Second)
	if n := sipResponses(t, ts, "REGISTER", "401"); n != 0 {
		t.Fatalf("401s before bob's 200: got %v, want 0 (a token registers at once)", n)
	}
	rs := ts.registrations(t, "bob")
	if len(rs) != 1 || rs[0].Transport != "ws" || !strings.Contains(rs[0].Contact, ".invalid") {
		t.Fatalf("bob's bindings: got %+v, want one over ws with a .invalid Contact", rs)
	}
	bobSource := rs[0].Source

	// alice: digest over ws; carol: digest over wss.
	alice := phonePage(t, b, ts, "ws")
	alice.Fill("#user", "alice")
	alice.Fill("#password", "alice-secret-pw-1")
	alice.Click("#register")
	alice.WaitText("#log", "registered (200 OK)", 15*time.Second)
	carol := phonePage(t, b, ts, "wss")
	carol.Fill("#user", "carol")
	carol.Fill("#password", "carol-secret-pw-3")
	carol.Click("#register")
	carol.WaitText("#log", "registered (200 OK)", 15*time.Second)
	if n := sipResponses(t, ts, "REGISTER", "401"); n < 2 {
		t.Errorf("401s for the digest registrations: got %v, want at least 2", n)
	}
	if rs := ts.registrations(t, "carol"); len(rs) != 1 || rs[0].Transport != "wss" {
		t.Errorf("carol's bindings: got %+v, want one over wss", rs)
	}

	// alice calls bob; bob answers; both confirmed.
	alice.Fill("#target", "bob")
	alice.Click("#call")
	bob.WaitText("#call-status", "incoming", 15*time.Second)
	bob.Click("#answer")
	bob.WaitText("#call-status", "confirmed", 15*time.Second)
	alice.WaitText("#call-status", "confirmed", 15*time.Second)
	var calls []struct{ Caller, Callee string }
	if code := ts.api(t, "GET", "/v1/calls", nil, &calls); code != 200 {
		t.Fatalf("GET /v1/calls: %d", code)
	}
	if len(calls) != 1 || !strings.Contains(calls[0].Caller, "alice@") || !strings.Contains(calls[0].Callee, "bob@") {
		t.Fatalf("GET /v1/calls during the call: got %+v, want alice -> bob", calls)
	}
	alice.Click("#hangup")
	alice.WaitText("#call-status", "ended", 10*time.Second)
	bob.WaitText("#call-status", "ended", 10*time.Second)
	waitFor(t, "the call to leave GET /v1/calls", 5*time.Second, func() bool {
		var cs []struct{ Caller string }
		ts.api(t, "GET", "/v1/calls", nil, &cs)
		return len(cs) == 0
	})

	// bob's SDK refreshes its token on the same WebSocket.
	time.Sleep(1100 * time.Millisecond) // a later iat
	regs := sipResponses(t, ts, "REGISTER", "200")
	fresh := ts.mintToken(t, bobCred.ID).Token
	browsertest.MustEval[bool](bob, `(() => { const u = sipwardenPhone.ua; u.set("authorization_jwt", "Bearer `+fresh+`"); u.register(); return true; })()`)
	waitFor(t, "bob's refresh REGISTER to be answered", 10*time.Second, func() bool {
		return sipResponses(t, ts, "REGISTER", "200") > regs
	})
	if rs := ts.registrations(t, "bob"); len(rs) != 1 || rs[0].Source != bobSource {
		t.Fatalf("after the refresh: got %+v, want bob's one binding from %s (the same WebSocket)", rs, bobSource)
	}
	if strings.Count(mustText(t, bob, "#log"), "disconnected") != 0 {
		t.Errorf("bob's WebSocket dropped during the refresh: %q", mustText(t, bob, "#log"))
	}

	// bob's WebSocket closes and JsSIP does not come back (recovery put
	// off): no un-REGISTER is sent, the node removes the binding itself.
	regs = sipResponses(t, ts, "REGISTER", "200")
	browsertest.MustEval[bool](bob, `(() => { const tr = sipwardenPhone.ua._transport;
		tr.recovery_options = {min_interval: 3600, max_interval: 3600}; tr.socket._ws.close(); return true; })()`)
	waitFor(t, "bob's binding to go with his WebSocket", 10*time.Second, func() bool {
		return len(ts.registrations(t, "bob")) == 0
	})
	if n := sipResponses(t, ts, "REGISTER", "200"); n != regs {
		t.Errorf("REGISTERs answered while bob's WebSocket closed: got %v more, want 0 (no un-REGISTER)", n-regs)
	}

	// Closing carol's page removes her binding.
	carol.Close()
	waitFor(t, "carol's binding to go with her page", 10*time.Second, func() bool {
		return len(ts.registrations(t, "carol")) == 0
	})
	if rs := ts.registrations(t, "alice"); len(rs) != 1 {
		t.Errorf("alice's bindings: got %d, want 1 (her page is open)", len(rs))
	}
}

func mustText(t *testing.T, p *browsertest.Page, sel string) string {
	t.Helper()
	s, ok := p.Text(sel)
	if !ok {
		t.Fatalf("no element %s", sel)
	}
	return s
}

// TestBrowserAnonymousCall: a page without any credential calls a
// connection's public target (sales, registered in another page) over
// wss: sales answers and both confirm; calling bob, who is not public,
// gets 403 Forbidden.
func TestBrowserAnonymousCall(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	var conn struct{ ID string }
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "web", "public_targets": []string{"sales"}}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	ts.createCredential(t, "sales", "sales-secret-pw-1", map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "bob", "bob-secret-pw-22", map[string]any{"connection_id": conn.ID})
	b := browsertest.Start(t, 3*time.Minute, "--ignore-certificate-errors")

	agent := phonePage(t, b, ts, "ws")
	agent.Fill("#user", "sales")
	agent.Fill("#password", "sales-secret-pw-1")
	agent.Click("#register")
	agent.WaitText("#log", "registered (200 OK)", 15*time.Second)

	visitor := phonePage(t, b, ts, "wss")
	visitor.Fill("#target", "bob")
	visitor.Click("#call")
	visitor.WaitText("#log", "(403 Forbidden)", 15*time.Second)
	visitor.WaitText("#call-status", "failed", 5*time.Second)

	visitor.Fill("#target", "sales")
	visitor.Click("#call")
	agent.WaitText("#call-status", "incoming", 15*time.Second)
	agent.WaitText("#log", "incoming call from sip:anonymous@anonymous.invalid", time.Second)
	agent.Click("#answer")
	agent.WaitText("#call-status", "confirmed", 15*time.Second)
	visitor.WaitText("#call-status", "confirmed", 15*time.Second)
	visitor.Click("#hangup")
	agent.WaitText("#call-status", "ended", 10*time.Second)
	for result, want := range map[string]float64{"allowed": 1, "not_public": 1} {
		if got := metricValue(t, ts, "sipwarden_proxy_anonymous_calls_total", "result", result); got != want {
			t.Errorf("anonymous calls %s: got %v, want %v", result, got, want)
		}
	}
}

// TestBrowserPhonePasswordWithTokensOffered: with jwt.enabled the 401 also
// offers Bearer, and JsSIP keeps only the last challenge it reads (its
// parser sets the header, each one replacing the one before): with the
// Bearer challenge last, /phone could not log in with a password. Over
// WebSocket the first Digest challenge comes again after it.
func TestBrowserPhonePasswordWithTokensOffered(t *testing.T) {
	ts := startServer(t, bearerConfig(t))
	ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	b := browsertest.Start(t, 2*time.Minute)
	alice := phonePage(t, b, ts, "ws")
	alice.Fill("#user", "alice")
	alice.Fill("#password", "alice-secret-pw-1")
	alice.Click("#register")
	alice.WaitText("#log", "registered (200 OK)", 15*time.Second)
	if rs := ts.registrations(t, "alice"); len(rs) != 1 || rs[0].Transport != "ws" {
		t.Errorf("alice's bindings: got %+v, want one over ws", rs)
	}
}
