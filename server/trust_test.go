package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
)

// Issue 15: the holes found by probing the running server. Each test
// failed on the main branch before the fix it names.

// TestTokenBoundToCredential (item 1): a token is the credential's, not
// the username's. Disabling then enabling the credential, or deleting it
// and creating the username again, leaves the old token refused.
func TestTokenBoundToCredential(t *testing.T) {
	ts := startServer(t, bearerConfig(t))
	c := ts.createCredential(t, "dave", pw, nil)
	reg := func(tok string) string {
		return statusLine(rawExchange(t, "udp", ts.Addr("udp"), bearerRegister("dave", tok, "60"), 2*time.Second))
	}
	old := ts.mintToken(t, c.ID).Token
	if got := reg(old); got != "SIP/2.0 200 OK" {
		t.Fatalf("fresh token: %q", got)
	}
	for _, enabled := range []bool{false, true} {
		if code := ts.api(t, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"enabled": enabled}, nil); code != 200 {
			t.Fatalf("PATCH enabled=%v: %d", enabled, code)
		}
	}
	if got := reg(old); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("token minted before disable, used after enable: %q, want 401", got)
	}
	fresh := ts.mintToken(t, c.ID).Token
	if got := reg(fresh); got != "SIP/2.0 200 OK" {
		t.Fatalf("token minted after enable: %q", got)
	}
	if code := ts.api(t, "DELETE", "/v1/credentials/"+c.ID, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	again := ts.createCredential(t, "dave", pw, nil)
	if got := reg(fresh); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("deleted credential's token on the new dave: %q, want 401", got)
	}
	if got := reg(ts.mintToken(t, again.ID).Token); got != "SIP/2.0 200 OK" {
		t.Fatalf("the new dave's own token: %q", got)
	}
}

// answerRegister is an MD5 Authorization value for user; qop "" answers
// in the RFC 2069 style (no qop, nc, cnonce).
func answerRegister(user, nonce, uri, qop string) string {
	c := digest.Credentials{Username: user, Realm: "sipwarden.test", Nonce: nonce, URI: uri, Algorithm: "MD5"}
	if qop != "" {
		c.QOP, c.CNonce, c.NC, c.NonceCount = qop, "0a4f113b", "00000001", 1
	}
	resp := digest.Response(c, digest.MD5, "REGISTER", digest.HA1(digest.MD5, user, "sipwarden.test", pw), nil)
	v := fmt.Sprintf(`Digest username="%s", realm="sipwarden.test", nonce="%s", uri="%s", response="%s", algorithm=MD5`, user, nonce, uri, resp)
	if qop != "" {
		v += `, qop=` + qop + `, nc=00000001, cnonce="0a4f113b"`
	}
	return v
}

// TestDigestAnswersNotReplayable (item 2): an answer without the qop the
// challenge offered, an answer whose digest uri is not the Request-URI
// (REGISTER and INVITE), and an answer accepted before a restart and
// replayed after it are all refused.
func TestDigestAnswersNotReplayable(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Guard.MaxFailures = 1000 // no ban in the way
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	u := newRawUA(t, "udp", "127.0.0.61", ts.Addr("udp"))

	if st, _ := u.exchange(u.registerMsg("alice", randHex(8), 1, answerRegister("alice", u.nonce(), "sip:sipwarden.test", ""), ""), 2*time.Second); st != "SIP/2.0 400 Malformed Authorization Header" {
		t.Errorf("answer without the offered qop: %q, want 400", st)
	}
	if st, _ := u.exchange(u.registerMsg("alice", randHex(8), 1, answerRegister("alice", u.nonce(), "sip:elsewhere.test", "auth"), ""), 2*time.Second); st != "SIP/2.0 400 Digest URI Does Not Match Request-URI" {
		t.Errorf("REGISTER answer for another uri: %q, want 400", st)
	}
	// A Proxy-Authorization computed for an INVITE to bob, on an INVITE to
	// carol.
	inv := u.inviteMsg("alice", randHex(8), 1, digestAnswer("alice", pw, u.nonce(), "INVITE", "sip:bob@sipwarden.test"))
	inv = strings.Replace(inv, "INVITE sip:bob@", "INVITE sip:carol@", 1)
	if st, _ := u.exchange(inv, 2*time.Second); st != "SIP/2.0 400 Digest URI Does Not Match Request-URI" {
		t.Errorf("INVITE answer for bob replayed to carol: %q, want 400", st)
	}
	// Equivalent spellings of the Request-URI pass: the default port, host
	// case, parameters.
	for _, uri := range []string{"sip:sipwarden.test", "sip:SIPWARDEN.test:5060", "sip:sipwarden.test;transport=udp"} {
		if st, _ := u.exchange(u.registerMsg("alice", randHex(8), 1, answerRegister("alice", u.nonce(), uri, "auth"), ""), 2*time.Second); st != "SIP/2.0 200 OK" {
			t.Errorf("digest uri %q for Request-URI sip:sipwarden.test: %q, want 200", uri, st)
		}
	}

	// Accepted once, then replayed after a restart (the nonce counts are
	// in memory, the nonce key on disk).
	captured := u.registerMsg("bob", randHex(8), 1, answerRegister("bob", u.nonce(), "sip:sipwarden.test", "auth"), "")
	if st, _ := u.exchange(captured, 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob's answer: %q", st)
	}
	if st, _ := u.exchange(captured, 2*time.Second); st != "SIP/2.0 401 Unauthorized" {
		t.Errorf("the same answer again: %q, want 401 (nonce count replayed)", st)
	}
	ts.stop()
	ts = startServer(t, cfg)
	u = newRawUA(t, "udp", "127.0.0.62", ts.Addr("udp"))
	st, raw := u.exchange(captured, 2*time.Second)
	if st != "SIP/2.0 401 Unauthorized" || !strings.Contains(raw, "stale=true") {
		t.Errorf("answer replayed after a restart: %q, want 401 with stale=true", st)
	}
}
