package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/server/servertest"
)

// TestTokenCLI mints a token with `sipwarden token create` against a
// running server and registers with it.
func TestTokenCLI(t *testing.T) {
	cfg := servertest.Config(t, t.TempDir())
	cfg.JWT.Enabled = true
	ts := servertest.Start(t, cfg)
	var c struct{ ID string }
	if code := ts.API(t, "POST", "/v1/credentials", map[string]any{"username": "alice", "password": "alice-secret-pw-1"}, &c); code != 201 {
		t.Fatalf("create credential: %d", code)
	}
	t.Setenv("SIPWARDEN_API_KEY", "")
	var out, errb strings.Builder
	common := []string{"--api", "http://" + ts.Addr("http"), "--api-key", servertest.APIKey}
	if code := run(append([]string{"token", "create", "--credential", c.ID}, common...), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("stdout %q is not a JWT", tok)
	}
	if got := servertest.StatusLine(servertest.RawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", tok, "60"), 2*time.Second)); got != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER with the CLI's token: %q", got)
	}
	out.Reset()
	if code := run(append([]string{"token", "revoke", "--credential", c.ID}, common...), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, errb.String())
	}
	if got := servertest.StatusLine(servertest.RawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", tok, "60"), 2*time.Second)); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("REGISTER with a revoked token: %q", got)
	}
	if code := run(append([]string{"token", "create"}, common...), strings.NewReader(""), &out, &errb); code == 0 {
		t.Fatal("token create without --credential succeeded")
	}
}

func bearerRegister(user, tok, expires string) string {
	return "REGISTER sip:sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-b" + strconv.FormatInt(time.Now().UnixNano(), 36) + ";rport\n" +
		"Max-Forwards: 70\nTo: <sip:" + user + "@sipwarden.test>\nFrom: <sip:" + user + "@sipwarden.test>;tag=b1\n" +
		"Call-ID: bearer-" + user + strconv.FormatInt(time.Now().UnixNano(), 36) + "\nCSeq: 1 REGISTER\nContact: <sip:" + user + "@LOCAL>\nExpires: " + expires + "\n" +
		"Authorization: Bearer " + tok + "\nContent-Length: 0\n\n"
}
