//go:build interop

package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// TestSippRegisterBearer1000 registers 1,000 users with RFC 8898 Bearer
// tokens minted through the API (passed to sipp in its injection file):
// one REGISTER and one 200 per flow, every flow succeeding, and the API
// then lists one binding per user.
func TestSippRegisterBearer1000(t *testing.T) {
	requireTools(t, "sipp")
	const n = 1000
	srv := startServer(t, func(c *harness.Config) { c.JWT = true })
	users := harness.MakeUsers("bearer", n)
	if err := srv.API().CreateCredentials(testCtx(t, 3*time.Minute), users, 16); err != nil {
		t.Fatalf("create %d credentials: %v", n, err)
	}
	start := time.Now()
	tokens, err := srv.API().MintTokens(testCtx(t, 3*time.Minute), users, 16)
	if err != nil {
		t.Fatalf("mint tokens: %v", err)
	}
	t.Logf("minted %d tokens through the API in %v", n, time.Since(start).Round(time.Millisecond))
	csvPath := filepath.Join(t.TempDir(), "tokens.csv")
	if err := harness.WriteTokensCSV(csvPath, users, tokens); err != nil {
		t.Fatal(err)
	}
	localPort, err := harness.FreeSIPPort()
	if err != nil {
		t.Fatal(err)
	}
	res, err := harness.RunSipp(testCtx(t, 2*time.Minute), harness.SippRun{
		Scenario: scenario("register_bearer.xml"), Users: csvPath, Transport: "u1",
		Target: srv.SIPAddr(), Rate: 200, Calls: n, Limit: n, LocalPort: localPort,
		RecvTimeout: 10 * time.Second, Timeout: 90 * time.Second, Dir: t.TempDir(),
	})
	sippFlows(t, res, err, n)
	regs, err := srv.API().Registrations(testCtx(t, 30*time.Second), "")
	if err != nil {
		t.Fatalf("GET /v1/registrations: %v", err)
	}
	perUser := map[string]int{}
	for _, r := range regs {
		perUser[r.Username]++
		// The grant is capped at the token's exp (24 h): the asked 3600 s stand.
		if r.ExpiresIn <= 0 || r.ExpiresIn > 3600 {
			t.Errorf("registration of %s: expires_in %d", r.Username, r.ExpiresIn)
		}
	}
	if len(regs) != n || len(perUser) != n {
		t.Fatalf("API lists %d registrations of %d users, want %d of %d", len(regs), len(perUser), n, n)
	}
	// No token in the server's log.
	logText, err := os.ReadFile(srv.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		if strings.Contains(string(logText), tok) {
			t.Fatal("a token reached the server log")
		}
	}
}
