package console_test

import (
	"flag"
	"fmt"
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

// screenshotDir is where screenshots go: docs/console with -docs, a
// temporary directory otherwise.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if !*docs {
		return t.TempDir()
	}
	dir := filepath.Join("..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitTrue waits up to timeout for the JavaScript expression expr to be
// true, polling every 50 ms; on timeout the test fails with what.
func waitTrue(t *testing.T, p *browsertest.Page, expr, what string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !browsertest.MustEval[bool](p, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s (%s)", timeout, what, expr)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	shots := screenshotDir(t)
	b := browsertest.Start(t, 2*time.Minute, "--window-size=1280,800")
	p := b.Open("http://" + ts.Addr("http") + "/")
	const wait = 10 * time.Second

	// Labels and names for keyboard and screen-reader users.
	for _, tc := range []struct{ expr, want string }{
		{`[...document.querySelectorAll("input, select")].filter(i => i.labels.length === 0).map(i => i.id).join()`, ""},
		{`[...document.querySelectorAll("button")].filter(b => !b.textContent.trim()).map(b => b.id).join()`, ""},
		{`document.activeElement.id`, "login-title"},
		// Signed out, no section can be opened: it was hidden in name only
		// (nav's display: flex beat the hidden attribute), and each click
		// sent "Bearer null", counted as a failed key until the operator's
		// own address was blocked.
		{`getComputedStyle(document.getElementById("nav")).display`, "none"},
		{`[...document.querySelectorAll("button, a")].filter(e => e.offsetParent !== null && !e.closest("#view-login")).map(e => e.id || e.textContent).join()`, ""},
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
	// With the username left empty the server generates it too.
	p.Click("#cred-create")
	p.WaitText("#secret-label", "Password of gencred", wait)
	if generated, _ := p.Text("#secret-value"); len(generated) != 24 || generated == password {
		t.Errorf("second generated password %q: want 24 characters, not the first's", generated)
	}
	p.Click("#secret-dismiss")
	// An error names the field.
	p.Fill("#cred-username", "bad user")
	p.Click("#cred-create")
	p.WaitText("#status", "username: username may hold only", wait)
	// An action that works next replaces the error: minting a token left
	// it up beside the token, as if the mint had failed.
	p.Click(`#cred-table tr[data-username="alice"] button[data-action="token"]`)
	p.WaitText("#secret-label", "Token for alice", wait)
	if got := browsertest.MustEval[string](p, `document.getElementById("status").className + "|" + document.getElementById("status").textContent`); got != "|token minted for alice" {
		t.Errorf("status after minting a token: got %q, want %q", got, "|token minted for alice")
	}
	p.Click("#secret-dismiss")

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

// TestConsoleNumbersAndConnections drives the connection and number
// forms of a real node in Chromium: an ip connection with its policies
// (refused without addresses, naming the field), its webhook secret shown
// once, its policies edited; a number assigned to a credential through
// the page, listed by username, refused when invalid (the API's field
// error), deleted after a confirmation; more numbers than a page.
func TestConsoleNumbersAndConnections(t *testing.T) {
	ts := servertest.Start(t, servertest.Config(t, t.TempDir()))
	shots := screenshotDir(t)
	var alice api.Credential
	if code := ts.API(t, "POST", "/v1/credentials", map[string]any{"username": "alice", "password": "correct-horse-battery"}, &alice); code != 201 {
		t.Fatalf("create alice: %d", code)
	}
	// Names need not be unique: the pickers tell two of one name apart.
	var twins [2]api.Connection
	for i := range twins {
		if code := ts.API(t, "POST", "/v1/connections", map[string]any{"name": "twin"}, &twins[i]); code != 201 {
			t.Fatalf("create twin: %d", code)
		}
	}
	// A credential of the second twin, shown in the credentials table.
	if code := ts.API(t, "POST", "/v1/credentials", map[string]any{"username": "bob", "password": "correct-horse-battery", "connection_id": twins[1].ID}, nil); code != 201 {
		t.Fatalf("create bob: %d", code)
	}
	b := browsertest.Start(t, 2*time.Minute, "--window-size=1280,800")
	p := b.Open("http://" + ts.Addr("http") + "/")
	const wait = 10 * time.Second
	p.Fill("#login-key", servertest.APIKey)
	p.Click("#login-submit")
	p.WaitText("#figures", "Registered devices", wait)

	// An ip connection needs its addresses: the API's error names the field.
	p.Click("#nav-connections")
	p.WaitText(`#conn-table tr[data-id="default"]`, "credential", wait)
	p.Fill("#conn-name", "no-addresses")
	p.Fill("#conn-kind", "ip")
	p.Click("#conn-create")
	p.WaitText("#status", "allowed_cidrs: an ip connection is authenticated by its addresses", wait)
	if got := browsertest.MustEval[string](p, `document.getElementById("status").className`); got != "error" {
		t.Errorf("status class after a refusal: got %q, want %q", got, "error")
	}

	// With them, and with policies and a webhook: created, the webhook's
	// secret shown once.
	p.Fill("#conn-name", "carrier")
	p.Fill("#conn-kind", "ip")
	p.Fill("#conn-cidrs", "192.0.2.0/24, 198.51.100.7")
	p.Click("#conn-policies summary")
	p.Fill("#conn-caller-id", "connection_numbers")
	p.Fill("#conn-sip-uri", "disabled")
	p.Fill("#conn-max-calls", "30")
	p.Fill("#conn-pbx-uri", "sip:192.0.2.10")
	p.Fill("#conn-webhook-url", "http://127.0.0.1:9/hooks")
	p.Click("#conn-create")
	p.WaitText("#secret-label", "Webhook signing secret of connection carrier", wait)
	if secret, _ := p.Text("#secret-value"); !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("webhook secret shown: got %q, want whsec_...", secret)
	}
	carrierRow := `#conn-table tr[data-name="carrier"]`
	p.WaitText(carrierRow, "30 calls", wait)
	cells := browsertest.MustEval[[]string](p, `[...document.querySelectorAll('`+carrierRow+` td')].map(td => td.textContent)`)
	want := []string{"carrier", "", "ip", "yes", "192.0.2.0/24, 198.51.100.7/32", "connection_numbers", "disabled", "30 calls"}
	if len(cells) != len(want)+1 {
		t.Fatalf("carrier row: got %q, want %d cells", cells, len(want)+1)
	}
	for i, w := range want {
		if w != "" && cells[i] != w {
			t.Errorf("carrier row, cell %d: got %q, want %q", i, cells[i], w)
		}
	}
	carrierID := cells[1]
	var carrier api.Connection
	if code := ts.API(t, "GET", "/v1/connections/"+carrierID, nil, &carrier); code != 200 {
		t.Fatalf("GET the carrier %q: %d", carrierID, code)
	}
	if carrier.Kind != "ip" || carrier.CallerIDPolicy != "connection_numbers" || carrier.SIPURICallingPreference != "disabled" ||
		carrier.MaxCalls != 30 || carrier.PBXURI != "sip:192.0.2.10" || carrier.WebhookEventURL != "http://127.0.0.1:9/hooks" {
		t.Errorf("carrier in the API: %+v", carrier)
	}
	p.Click("#secret-dismiss")
	if got, _ := p.Text("#secret-value"); got != "" {
		t.Errorf("the webhook secret is still in the page after dismissing: %q", got)
	}
	if browsertest.MustEval[bool](p, `document.getElementById("conn-policies").open`) {
		t.Errorf("the policies stayed open after the connection was created")
	}
	browsertest.MustEval[bool](p, `(document.getElementById("conn-table").scrollIntoView(), true)`)
	screenshot(t, p, shots, "connections")

	// Edit its policies: a bad PBX URI is refused naming the field; then
	// saved, and the form goes.
	p.Click(carrierRow + ` button[data-action="edit"]`)
	waitTrue(t, p, `!document.getElementById("conn-edit").hidden && document.activeElement.id === "conn-edit-caller-id"`,
		"the edit form shown, its first field focused", wait)
	p.WaitText("#conn-edit-legend", "Edit connection carrier", wait)
	if got := browsertest.MustEval[string](p, `document.getElementById("conn-edit-max-calls").value`); got != "30" {
		t.Errorf("edit form's max calls: got %q, want 30", got)
	}
	p.Fill("#conn-edit-max-calls", "5")
	p.Fill("#conn-edit-max-regs", "7")
	p.Fill("#conn-edit-sip-uri", "internal")
	p.Fill("#conn-edit-pbx-uri", "http://192.0.2.11")
	p.Click("#conn-edit-save")
	p.WaitText("#status", "pbx_uri: pbx_uri must be a sip: or sips: URI", wait)
	p.Fill("#conn-edit-pbx-uri", "sip:192.0.2.11")
	p.Click("#conn-edit-save")
	p.WaitText(carrierRow, "5 calls, 7 registrations", wait)
	p.WaitText(carrierRow, "internal", wait)
	waitTrue(t, p, `document.getElementById("conn-edit").hidden`, "the edit form hidden after saving", wait)
	if code := ts.API(t, "GET", "/v1/connections/"+carrierID, nil, &carrier); code != 200 ||
		carrier.MaxCalls != 5 || carrier.MaxRegistrations != 7 || carrier.SIPURICallingPreference != "internal" ||
		carrier.PBXURI != "sip:192.0.2.11" || carrier.WebhookSecret != "" {
		t.Errorf("carrier after the edit: %d %+v", code, carrier)
	}
	if !p.Enabled("#secret") || browsertest.MustEval[bool](p, `!document.getElementById("secret").hidden`) {
		t.Errorf("a secret was shown again by an edit that kept the webhook URL")
	}

	// Escape leaves the form unsaved, the focus back on its Edit button.
	defaultRow := `#conn-table tr[data-id="default"]`
	p.Click(defaultRow + ` button[data-action="edit"]`)
	waitTrue(t, p, `document.activeElement.id === "conn-edit-caller-id"`, "the edit form's first field focused", wait)
	p.Fill("#conn-edit-max-regs", "99")
	browsertest.MustEval[bool](p, `document.activeElement.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape", bubbles: true}))`)
	waitTrue(t, p, `document.getElementById("conn-edit").hidden && document.activeElement.matches('`+defaultRow+` button[data-action="edit"]')`,
		"the edit form closed by Escape, the focus on its Edit button", wait)
	// Saved unchanged: nothing is sent.
	p.Click(defaultRow + ` button[data-action="edit"]`)
	waitTrue(t, p, `document.activeElement.id === "conn-edit-caller-id"`, "the edit form's first field focused", wait)
	p.Click("#conn-edit-save")
	p.WaitText("#status", "nothing changed in connection default", wait)
	waitTrue(t, p, `document.getElementById("conn-edit").hidden`, "the edit form hidden", wait)
	// A limit changed: only it is sent (the page's request bodies
	// recorded from here).
	browsertest.MustEval[bool](p, `(() => {
		window.sentBodies = [];
		const f = window.fetch;
		window.fetch = (url, init) => { if (init && init.body) window.sentBodies.push(init.method + " " + url + " " + init.body); return f(url, init); };
		return true;
	})()`)
	p.Click(defaultRow + ` button[data-action="edit"]`)
	waitTrue(t, p, `document.activeElement.id === "conn-edit-caller-id"`, "the edit form's first field focused", wait)
	if got := browsertest.MustEval[string](p, `document.getElementById("conn-edit-max-regs").value`); got != "" {
		t.Errorf("max registrations after Escape and Edit: got %q, want the stored value (none)", got)
	}
	p.Fill("#conn-edit-max-regs", "50")
	p.Click("#conn-edit-save")
	p.WaitText(defaultRow, "50 registrations", wait)
	if got := browsertest.MustEval[string](p, `window.sentBodies.join("\n")`); got != `PATCH /v1/connections/default {"max_registrations":50}` {
		t.Errorf("the edit sent %q, want the changed limit only", got)
	}
	var def api.Connection
	if code := ts.API(t, "GET", "/v1/connections/default", nil, &def); code != 200 || def.MaxRegistrations != 50 || def.WebhookEventURL != "" || def.PBXURI != "" {
		t.Errorf("default after the edit: %d %+v", code, def)
	}
	// Its first webhook URL, given by an edit: the secret is shown once.
	p.Click(defaultRow + ` button[data-action="edit"]`)
	waitTrue(t, p, `document.activeElement.id === "conn-edit-caller-id"`, "the edit form's first field focused", wait)
	p.Fill("#conn-edit-webhook-url", "http://127.0.0.1:9/default")
	p.Click("#conn-edit-save")
	p.WaitText("#secret-label", "Webhook signing secret of connection default", wait)
	if secret, _ := p.Text("#secret-value"); !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("webhook secret shown after the edit: got %q, want whsec_...", secret)
	}
	if got := browsertest.MustEval[string](p, `document.activeElement.id`); got != "secret-dismiss" {
		t.Errorf("focus with a secret shown: got %q, want secret-dismiss", got)
	}
	p.Click("#secret-dismiss")

	// Numbers: assign one to alice through the page.
	p.Click("#nav-numbers")
	p.WaitText("#num-table", "No numbers yet.", wait)
	waitTrue(t, p, `document.activeElement.id === "numbers-title" && document.getElementById("nav-numbers").getAttribute("aria-current") === "page"`,
		"the numbers view current and its heading focused", wait)
	p.WaitText("#num-target", "alice", wait)
	for _, sel := range []string{"#num-target", "#cred-connection"} {
		expr := `(() => { const t = [...document.querySelectorAll("` + sel + ` option")].map(o => o.textContent).filter(t => t.startsWith("twin")); return t.length === 2 && t[0] !== t[1]; })()`
		if !browsertest.MustEval[bool](p, expr) {
			t.Errorf("%s: the two connections named twin are not told apart", sel)
		}
	}
	p.Fill("#num-number", "tel:+1-555-123-4567")
	p.Fill("#num-target", "credential:"+alice.ID)
	p.Click("#num-assign")
	numRow := `#num-table tr[data-number="+15551234567"]`
	p.WaitText(numRow, "alice", wait)
	p.WaitText("#status", "number +15551234567 assigned to alice", wait)
	if got, _ := p.Text(numRow + " td:nth-child(2)"); got != "default" {
		t.Errorf("the number's connection: got %q, want %q", got, "default")
	}
	var n api.Number
	if code := ts.API(t, "GET", "/v1/numbers/+15551234567", nil, &n); code != 200 || n.CredentialID != alice.ID || n.ConnectionID != "default" {
		t.Errorf("the number in the API: %d %+v, want alice's on default", code, n)
	}

	// Taken already: the API's 409, naming the field.
	p.Fill("#num-number", "15551234567")
	p.Click("#num-assign")
	p.WaitText("#status", "number: +15551234567 is already assigned", wait)

	// An invalid number: the API's error, naming the field.
	p.Fill("#num-number", "+0123")
	p.Click("#num-assign")
	p.WaitText("#status", "number: number must be an E.164 number", wait)

	// A pattern to the carrier, shown by name.
	p.Fill("#num-number", "+1555123*")
	p.Fill("#num-target", "connection:"+carrierID)
	p.Click("#num-assign")
	p.WaitText(`#num-table tr[data-number="+1555123*"]`, "carrier", wait)
	screenshot(t, p, shots, "numbers")

	// Delete asks once more; nothing is deleted before the confirmation.
	p.Click(numRow + ` button[data-action="delete"]`)
	p.WaitText(numRow+` button[data-action="confirm-delete"]`, "Confirm delete", wait)
	if got := browsertest.MustEval[string](p, `document.activeElement.getAttribute("aria-label") || document.activeElement.tagName`); got != "Confirm: delete number +15551234567" {
		t.Errorf("focus after delete: got %q", got)
	}
	if code := ts.API(t, "GET", "/v1/numbers/+15551234567", nil, nil); code != 200 {
		t.Fatalf("the number before the confirmation: %d, want 200", code)
	}
	p.Click(numRow + ` button[data-action="confirm-delete"]`)
	waitTrue(t, p, `!document.querySelector('`+numRow+`')`, "the deleted number's row gone", wait)
	p.WaitText("#status", "number +15551234567 deleted", wait)
	if code := ts.API(t, "GET", "/v1/numbers/+15551234567", nil, nil); code != 404 {
		t.Errorf("the number after the confirmation: %d, want 404", code)
	}

	// More numbers than a page: the rest behind "More numbers".
	for i := range 100 {
		num := fmt.Sprintf("+1555000%04d", i)
		if code := ts.API(t, "POST", "/v1/numbers", map[string]any{"number": num, "connection_id": carrierID}, nil); code != 201 {
			t.Fatalf("POST number %s: %d", num, code)
		}
	}
	p.Click("#nav-overview")
	p.Click("#nav-numbers")
	waitTrue(t, p, `document.querySelectorAll("#num-table tbody tr").length === 100 && !document.getElementById("num-more").hidden`,
		"a first page of 100 numbers and More numbers", wait)
	p.Click("#num-more")
	waitTrue(t, p, `document.querySelectorAll("#num-table tbody tr").length === 101 && document.getElementById("num-more").hidden`,
		"101 numbers and no More numbers", wait)

	// The credentials' Delete keeps the focus on its confirmation too (it
	// was lost: the button was still disabled while its action ran).
	p.Click("#nav-credentials")
	aliceRow := `#cred-table tr[data-username="alice"]`
	p.WaitText(aliceRow, "active", wait)
	// A credential's connection by name, told apart from its twin as the
	// pickers do (the table showed its UUID).
	for row, want := range map[string]string{aliceRow: "default", `#cred-table tr[data-username="bob"]`: "twin (…" + twins[1].ID[len(twins[1].ID)-8:] + ")"} {
		if got, _ := p.Text(row + " td:nth-child(3)"); got != want {
			t.Errorf("%s: connection cell %q, want %q", row, got, want)
		}
	}
	p.Click(aliceRow + ` button[data-action="delete"]`)
	p.WaitText(aliceRow+` button[data-action="confirm-delete"]`, "Confirm delete", wait)
	if got := browsertest.MustEval[string](p, `document.activeElement.getAttribute("aria-label") || document.activeElement.tagName`); got != "Confirm: delete alice" {
		t.Errorf("focus after a credential's delete: got %q", got)
	}

	for _, m := range p.Errors() {
		// The refusals the test provoked are logged by the browser as
		// failed loads.
		if strings.Contains(m.Text, "Failed to load resource") && (strings.Contains(m.Text, "status of 422") || strings.Contains(m.Text, "status of 409")) {
			continue
		}
		t.Errorf("console error: %s", m)
	}
}
