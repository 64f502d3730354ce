package console_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/browsertest"
	"github.com/sipwarden/sipwarden/server/servertest"
)

var docs = flag.Bool("docs", false, "write the console's screenshots into docs/console/")

func TestMain(m *testing.M) { servertest.Main(m) }

// screenshot writes the viewport to docs/console/NAME.png with -docs, to
// a temporary directory otherwise (so that capturing is exercised).
func screenshot(t *testing.T, p *browsertest.Page, dir, name string) {
	t.Helper()
	p.Screenshot(filepath.Join(dir, name+".png"))
}

// TestConsoleInChromium drives the console of a real node in Chromium:
// sign in with the admin key, create a credential (the generated password
// shown once), see its device's REGISTER appear, lift a ban, disable the
// credential and see its registration go; nothing lands in the console as
// an error (a CSP violation would).
func TestConsoleInChromium(t *testing.T) {
	cfg := servertest.Config(t, t.TempDir())
	cfg.Guard.MaxFailures = 3
	ts := servertest.Start(t, cfg)
	shots := t.TempDir()
	if *docs {
		shots = filepath.Join("..", "docs", "console")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := browsertest.Start(t, 2*time.Minute, "--window-size=1280,800")
	p := b.Open("http://" + ts.Addr("http") + "/")
	const wait = 10 * time.Second

	// Labels and names for keyboard and screen-reader users.
	for _, tc := range []struct{ expr, want string }{
		{`[...document.querySelectorAll("input, select")].filter(i => i.labels.length === 0).map(i => i.id).join()`, ""},
		{`[...document.querySelectorAll("button")].filter(b => !b.textContent.trim()).map(b => b.id).join()`, ""},
		{`document.activeElement.id`, "login-title"},
		{`document.getElementById("nav").hidden ? "hidden" : "shown"`, "hidden"},
	} {
		if got := browsertest.MustEval[string](p, tc.expr); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.expr, got, tc.want)
		}
	}

	// A wrong key is refused, and not kept.
	p.Fill("#login-key", "swk_nope_nope")
	p.Click("#login-submit")
	p.WaitText("#status", "the API key is not valid", wait)
	if got := browsertest.MustEval[string](p, `sessionStorage.getItem("sipwarden.apiKey") || ""`); got != "" {
		t.Errorf("a refused key was kept: %q", got)
	}
	p.Fill("#login-key", servertest.APIKey)
	p.Click("#login-submit")
	p.WaitText("#figures", "Registered devices", wait)
	if got := browsertest.MustEval[string](p, `localStorage.length + ":" + sessionStorage.getItem("sipwarden.apiKey")`); got != "0:"+servertest.APIKey {
		t.Errorf("storage: got %q, want the key in sessionStorage only", got)
	}

	// Create a credential: the password is generated and shown once.
	p.Click("#nav-credentials")
	p.WaitText("#cred-table", "No credentials yet.", wait)
	p.Fill("#cred-username", "alice")
	p.Fill("#cred-tag", "desk")
	p.Click("#cred-create")
	p.WaitText("#secret-label", "Password of alice", wait)
	password, _ := p.Text("#secret-value")
	if len(password) != 24 {
		t.Fatalf("generated password %q: want 24 characters", password)
	}
	p.WaitText(`#cred-table tr[data-username="alice"]`, "active", wait)
	screenshot(t, p, shots, "credentials")
	p.Click("#secret-dismiss")
	if got, _ := p.Text("#secret-value"); got != "" {
		t.Errorf("the password is still in the page after dismissing: %q", got)
	}
	// An error names the field.
	p.Fill("#cred-username", "bad user")
	p.Click("#cred-create")
	p.WaitText("#status", "username: username may hold only", wait)

	// Its device registers; the registration appears.
	if st := ts.Register(t, "127.0.0.1", "alice", password, 600); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER with the console's password: %q", st)
	}
	p.Click("#nav-registrations")
	p.WaitText(`#reg-table tr[data-username="alice"]`, "servertest", wait)
	screenshot(t, p, shots, "registrations")
	// The live figures count it, from the API and from /metrics.
	p.Click("#nav-overview")
	p.WaitText(`[data-figure="Registered devices"] dd`, "1", wait)
	p.WaitText(`[data-figure="Registrations (total)"] dd`, "1", wait)
	screenshot(t, p, shots, "overview")

	// A source banned after wrong passwords is unbanned.
	for range 3 {
		ts.Register(t, "127.0.0.9", "alice", "wrong-password-here", 600)
	}
	p.Click("#nav-bans")
	p.WaitText("#ban-table", "127.0.0.9/32", wait)
	screenshot(t, p, shots, "bans")
	p.Click(`#ban-table tr[data-ip="127.0.0.9"] button[data-action="unban"]`)
	p.WaitText("#ban-table", "No source is banned.", wait)
	var bans []api.Ban
	if code := ts.API(t, "GET", "/v1/bans", nil, &bans); code != 200 || len(bans) != 0 {
		t.Errorf("bans after unban: %d %+v", code, bans)
	}

	// Disable the credential: its registration goes.
	p.Click("#nav-credentials")
	p.Click(`#cred-table tr[data-username="alice"] button[data-action="disable"]`)
	p.WaitText(`#cred-table tr[data-username="alice"]`, "disabled", wait)
	p.Click("#nav-registrations")
	p.WaitText("#reg-table", "No device is registered.", wait)
	var regs []api.Registration
	if code := ts.API(t, "GET", "/v1/registrations", nil, &regs); code != 200 || len(regs) != 0 {
		t.Errorf("registrations after disable: %d %+v", code, regs)
	}

	// Keyboard: the view switches and the table buttons are reachable
	// and work with Enter.
	p.Click("#nav-credentials")
	browsertest.MustEval[bool](p, `(document.querySelector('#cred-table tr[data-username="alice"] button[data-action="enable"]').focus(), true)`)
	browsertest.MustEval[bool](p, `(document.activeElement.click(), true)`)
	p.WaitText(`#cred-table tr[data-username="alice"]`, "active", wait)

	p.Click("#nav-calls")
	p.WaitText("#call-table", "No live calls.", wait)
	p.Click("#nav-connections")
	p.WaitText("#conn-table", "default", wait)
	screenshot(t, p, shots, "connections")

	// Sign out forgets the key.
	p.Click("#logout")
	p.WaitText("#status", "signed out", wait)
	if got := browsertest.MustEval[string](p, `sessionStorage.getItem("sipwarden.apiKey") || ""`); got != "" {
		t.Errorf("key kept after sign out")
	}
	for _, m := range p.Errors() {
		// The refused key's 401 and the refused username's 422, which the
		// test provoked, are logged by the browser as failed loads.
		if strings.Contains(m.Text, "Failed to load resource") && (strings.Contains(m.Text, "status of 401") || strings.Contains(m.Text, "status of 422")) {
			continue
		}
		t.Errorf("console error: %s", m)
	}
}
