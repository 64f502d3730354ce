package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
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
	if code := Run(append([]string{"token", "create", "--credential", c.ID}, common...), strings.NewReader(""), &out, &errb); code != 0 {
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
	if code := Run(append([]string{"token", "revoke", "--credential", c.ID}, common...), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, errb.String())
	}
	if got := servertest.StatusLine(servertest.RawExchange(t, "udp", ts.Addr("udp"), bearerRegister("alice", tok, "60"), 2*time.Second)); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("REGISTER with a revoked token: %q", got)
	}
	if code := Run(append([]string{"token", "create"}, common...), strings.NewReader(""), &out, &errb); code == 0 {
		t.Fatal("token create without --credential succeeded")
	}
}

func bearerRegister(user, tok, expires string) string {
	return "REGISTER sip:sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-b" + strconv.FormatInt(time.Now().UnixNano(), 36) + ";rport\n" +
		"Max-Forwards: 70\nTo: <sip:" + user + "@sipwarden.test>\nFrom: <sip:" + user + "@sipwarden.test>;tag=b1\n" +
		"Call-ID: bearer-" + user + strconv.FormatInt(time.Now().UnixNano(), 36) + "\nCSeq: 1 REGISTER\nContact: <sip:" + user + "@LOCAL>\nExpires: " + expires + "\n" +
		"Authorization: Bearer " + tok + "\nContent-Length: 0\n\n"
}

// TestTokenCLIOnDefaults is issue 13's acceptance: on the embedded
// defaults (jwt.enabled false; only the ports, the data dir and the admin
// key moved so that the test runs beside others), a token minted by
// `sipwarden token create` registers over UDP at once: 200, no 401 first.
// Without a token the challenge is Digest only: jwt.enabled advertises.
func TestTokenCLIOnDefaults(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JWT.Enabled {
		t.Fatal("jwt.enabled is on by default; this test wants the default off")
	}
	cfg.DataDir = t.TempDir()
	cfg.SIP.Listen = config.Listen{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", TLS: "-", WS: "-", WSS: "-"}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.APIKey = servertest.APIKey
	ts := servertest.Start(t, cfg)
	var c struct{ ID string }
	if code := ts.API(t, "POST", "/v1/credentials", map[string]any{"username": "alice", "password": "alice-secret-pw-1"}, &c); code != 201 {
		t.Fatalf("create credential: %d", code)
	}
	t.Setenv("SIPWARDEN_API_KEY", "")
	var out, errb strings.Builder
	common := []string{"--api", "http://" + ts.Addr("http"), "--api-key", servertest.APIKey}
	if code := Run(append([]string{"token", "create", "--credential", c.ID}, common...), strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	domain := "sipwarden.test"
	reg := func(auth string) string {
		r := bearerRegister("alice", "x", "60")
		r = strings.ReplaceAll(r, "@"+domain, "@127.0.0.1")
		r = strings.Replace(r, "REGISTER sip:"+domain, "REGISTER sip:127.0.0.1", 1) // the Request-URI names the domain too (RFC 3261 10.3 step 1)
		return strings.Replace(r, "Authorization: Bearer x\n", auth, 1)
	}
	res := servertest.RawExchange(t, "udp", ts.Addr("udp"), reg("Authorization: Bearer "+tok+"\n"), 2*time.Second)
	if got := servertest.StatusLine(res); got != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER with the CLI's token on defaults: got %q, want 200 OK", got)
	}
	res = servertest.RawExchange(t, "udp", ts.Addr("udp"), reg(""), 2*time.Second)
	if got := servertest.StatusLine(res); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("REGISTER without credentials: got %q, want 401", got)
	}
	if strings.Contains(res, "Bearer") {
		t.Errorf("the challenge offers Bearer although jwt.enabled is false:\n%s", res)
	}
	// A token that does not verify is refused as before (a Digest
	// challenge: RFC 6750 3.1 invalid_token), never accepted.
	res = servertest.RawExchange(t, "udp", ts.Addr("udp"), reg("Authorization: Bearer "+tok[:len(tok)-4]+"AAAA\n"), 2*time.Second)
	if got := servertest.StatusLine(res); got != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("REGISTER with a forged token: got %q, want 401", got)
	}
}
