package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/token"
)

type mintedToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func bearerConfig(t *testing.T) config.Config {
	cfg := testConfig(t, t.TempDir())
	cfg.JWT.Enabled = true
	cfg.Log.SIPTrace = true // the trace must redact the tokens too
	return cfg
}

func (ts *testServer) mintToken(t *testing.T, credID string) mintedToken {
	t.Helper()
	var tok mintedToken
	if code := ts.api(t, "POST", "/v1/credentials/"+credID+"/token", nil, &tok); code != 201 {
		t.Fatalf("mint token: %d", code)
	}
	return tok
}

func bearerRegister(user, tok, expires string) string {
	return "REGISTER sip:sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-b" + strconv.FormatInt(time.Now().UnixNano(), 36) + ";rport\n" +
		"Max-Forwards: 70\nTo: <sip:" + user + "@sipwarden.test>\nFrom: <sip:" + user + "@sipwarden.test>;tag=b1\n" +
		"Call-ID: bearer-" + user + strconv.FormatInt(time.Now().UnixNano(), 36) + "\nCSeq: 1 REGISTER\nContact: <sip:" + user + "@LOCAL>\nExpires: " + expires + "\n" +
		"Authorization: Bearer " + tok + "\nContent-Length: 0\n\n"
}

func TestBearerRegister(t *testing.T) {
	cfg := bearerConfig(t)
	cfg.JWT.TTL = config.Duration(10 * time.Minute)
	ts := startServer(t, cfg)
	c := ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	tok := ts.mintToken(t, c.ID)
	if d := time.Until(tok.ExpiresAt); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("token expires in %v, want the configured 10 min", d)
	}
	// One REGISTER, no 401 first; the grant is capped at the token's exp.
	res := rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", tok.Token, "3600"), 2*time.Second)
	if got := statusLine(res); got != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER with a Bearer token: %q", got)
	}
	exp, err := strconv.Atoi(between(res, ";expires=", "\r\n"))
	if err != nil || exp > 600 || exp < 500 {
		t.Fatalf("granted expires=%d (%v), want capped at the token's 600 s", exp, err)
	}
	// The token is for alice only.
	bob := ts.createCredential(t, "bob", "bob-secret-pw-22", nil)
	_ = bob
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("bob", tok.Token, "60"), 2*time.Second)); got != "SIP/2.0 403 Not Allowed To Register This AOR" {
		t.Fatalf("alice's token for bob's AOR: %q", got)
	}
	// revoke_tokens: the token stops working at once.
	if code := ts.api(t, "POST", "/v1/credentials/"+c.ID+"/actions/revoke_tokens", nil, nil); code != 200 {
		t.Fatalf("revoke_tokens: %d", code)
	}
	res = rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", tok.Token, "60"), 2*time.Second)
	if statusLine(res) != "SIP/2.0 401 Unauthorized" || !strings.Contains(res, `error="invalid_token"`) || !strings.Contains(res, "WWW-Authenticate: Digest") {
		t.Fatalf("revoked token: %q", res)
	}
	// A token minted after the revocation works.
	fresh := ts.mintToken(t, c.ID)
	if got := statusLine(rawExchange(t, "tcp", ts.Addr("tcp"), bearerRegister("alice", fresh.Token, "60"), 2*time.Second)); got != "SIP/2.0 200 OK" {
		t.Fatalf("fresh token after revoke_tokens: %q", got)
	}
	// And a second revocation, however soon, revokes it (within one
	// second it used to compute the cut the fresh token carried).
	if code := ts.api(t, "POST", "/v1/credentials/"+c.ID+"/actions/revoke_tokens", nil, nil); code != 200 {
		t.Fatalf("second revoke_tokens: %d", code)
	}
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", fresh.Token, "60"), 2*time.Second)); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("token minted between two revocations: %q, want 401", got)
	}
	for _, secret := range []string{tok.Token, fresh.Token, "alice-secret-pw-1"} {
		if strings.Contains(ts.logs.String(), secret) {
			t.Fatalf("a secret reached the log: %.20s...", secret)
		}
	}
}

func TestExpiredBearerToken(t *testing.T) {
	cfg := bearerConfig(t)
	ts := startServer(t, cfg)
	cred := ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, "jwt-ed25519.key"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	key, err := token.Ed25519Key(seed)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	expired, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": "sipwarden", "aud": "sip", "sub": "alice", "iat": old.Unix(), "exp": old.Add(time.Hour).Unix(),
	}).SignedString(key.Sign)
	if err != nil {
		t.Fatal(err)
	}
	res := rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", expired, "60"), 2*time.Second)
	if statusLine(res) != "SIP/2.0 401 Unauthorized" || !strings.Contains(res, `WWW-Authenticate: Bearer realm="sipwarden.test", scope="sip", error="invalid_token"`) {
		t.Fatalf("expired token: %q", res)
	}
	// Expired 10 s ago, within jwt.leeway: it authenticates, but leaves no
	// time to bind. Refused as an expired token, and logged as one (it
	// was logged outcome=ok).
	recent, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": "sipwarden", "aud": "sip", "sub": "alice", "cid": cred.ID, "iat": time.Now().Unix(), "exp": time.Now().Add(-10 * time.Second).Unix(), // iat: not before the credential (revoked)
	}).SignedString(key.Sign)
	if err != nil {
		t.Fatal(err)
	}
	res = rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", recent, "60"), 2*time.Second)
	if statusLine(res) != "SIP/2.0 401 Unauthorized" || !strings.Contains(res, `error="invalid_token"`) {
		t.Fatalf("token expired within the leeway: %q", res)
	}
	waitFor(t, "the refusal logged", time.Second, func() bool { return strings.Count(ts.logs.String(), "outcome=invalid_token") >= 2 })
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(line, "status=401") && strings.Contains(line, "outcome=ok") {
			t.Errorf("a 401 logged as ok: %s", line)
		}
		// A refused token is a failed attempt, at info as a wrong
		// password's 403 (it was at debug, as a challenge).
		if strings.Contains(line, "msg=REGISTER") && strings.Contains(line, "outcome=invalid_token") && !strings.Contains(line, "level=INFO") {
			t.Errorf("a refused token logged below info: %s", line)
		}
	}
	// A first REGISTER without credentials is offered both schemes, Digest first.
	plain := strings.Replace(bearerRegister("alice", "x", "60"), "Authorization: Bearer x\n", "", 1)
	res = rawExchange(t, "udp", ts.Addr("udp"), plain, 2*time.Second)
	d, b := strings.Index(res, "WWW-Authenticate: Digest"), strings.Index(res, "WWW-Authenticate: Bearer")
	if d < 0 || b < 0 || d > b || strings.Contains(res, "invalid_token") {
		t.Fatalf("first challenge: %q", res)
	}
}

func TestBearerInvite(t *testing.T) {
	ts := startServer(t, bearerConfig(t))
	creds := callSetup(t, ts)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	tok := ts.mintToken(t, creds.alice.ID)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host, portStr, _ := strings.Cut(alice.ph.server, ":")
	port, _ := strconv.Atoi(portStr)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "sipwarden.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	sess, err := alice.uac.Invite(ctx, sip.Uri{Scheme: "sip", User: "bob", Host: host, Port: port}, []byte(testSDP), from,
		sip.NewHeader("Content-Type", "application/sdp"), sip.NewHeader("Proxy-Authorization", "Bearer "+tok.Token))
	if err != nil {
		t.Fatal(err)
	}
	var statuses []int
	err = sess.WaitAnswer(ctx, sipgoAnswer(&statuses))
	if err != nil {
		t.Fatalf("INVITE with a Bearer token: %v (statuses %v)", err, statuses)
	}
	if containsAll(statuses, 407) {
		t.Errorf("challenged despite the token: %v", statuses)
	}
	inv := recv(t, bob.invites, "INVITE at bob")
	if inv.GetHeader("Proxy-Authorization") != nil {
		t.Error("the token was forwarded to the callee")
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")
	if strings.Contains(ts.logs.String(), tok.Token) {
		t.Fatal("the token reached the log")
	}
}

func TestTokenAPI(t *testing.T) {
	ts := startServer(t, bearerConfig(t))
	c := ts.createCredential(t, "alice", "alice-secret-pw-1", map[string]any{"enabled": false})
	req, _ := http.NewRequest("POST", "http://"+ts.Addr("http")+"/v1/credentials/"+c.ID+"/token", nil)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 409 {
		t.Fatalf("token for a disabled credential: %d, want 409", res.StatusCode)
	}
	if code := ts.api(t, "POST", "/v1/credentials/nope/token", nil, nil); code != 404 {
		t.Fatalf("token for an unknown credential: %d", code)
	}
	// The JWKS is public (no API key) and holds the Ed25519 key.
	jr, err := http.Get("http://" + ts.Addr("http") + "/v1/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Body.Close()
	var set struct{ Keys []map[string]string }
	if err := json.NewDecoder(jr.Body).Decode(&set); err != nil || jr.StatusCode != 200 || len(set.Keys) != 1 || set.Keys[0]["crv"] != "Ed25519" {
		t.Fatalf("GET /v1/jwks: %d %v %+v", jr.StatusCode, err, set)
	}
	if _, ok := set.Keys[0]["d"]; ok {
		t.Fatal("the private key is published")
	}
}

func sipgoAnswer(statuses *[]int) sipgo.AnswerOptions {
	return sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		*statuses = append(*statuses, res.StatusCode)
		return nil
	}}
}

// TestRevocationEndsTokenRegistrations: revoking a credential's tokens
// (revoke_tokens, or a new password) removes the registrations made with
// them at once; one made with the password stays. A device registered
// with a revoked token kept receiving calls until its refresh, up to an
// hour.
func TestRevocationEndsTokenRegistrations(t *testing.T) {
	cfg := bearerConfig(t)
	cfg.Registrar.MaxContacts = 2
	ts := startServer(t, cfg)
	c := ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
	withPassword := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st := withPassword.register("alice", "alice-secret-pw-1"); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER with the password: %q", st)
	}
	for _, revoke := range []func(){
		func() {
			if code := ts.api(t, "POST", "/v1/credentials/"+c.ID+"/actions/revoke_tokens", nil, nil); code != 200 {
				t.Fatalf("revoke_tokens: %d", code)
			}
		},
		func() {
			if code := ts.api(t, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": "alice-secret-pw-2"}, nil); code != 200 {
				t.Fatalf("new password: %d", code)
			}
		},
	} {
		tok := ts.mintToken(t, c.ID)
		if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", tok.Token, "600"), 2*time.Second)); got != "SIP/2.0 200 OK" {
			t.Fatalf("REGISTER with a token: %q", got)
		}
		if rs := ts.registrations(t, "alice"); len(rs) != 2 {
			t.Fatalf("before the revocation: %d bindings, want 2", len(rs))
		}
		revoke()
		rs := ts.registrations(t, "alice")
		if len(rs) != 1 || rs[0].Source != withPassword.local {
			t.Fatalf("after the revocation: %+v, want only the binding made with the password (from %s)", rs, withPassword.local)
		}
	}
}
