package cli

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
)

// cliLocations is a location table for the CLI tests.
type cliLocations struct {
	mu sync.Mutex
	bs []store.Binding
}

func (l *cliLocations) Bindings(aor string) []store.Binding {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.Binding
	for _, b := range l.bs {
		if aor == "" || b.AOR == aor {
			out = append(out, b)
		}
	}
	return out
}

func (l *cliLocations) RemoveBinding(id string) (store.Binding, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.bs {
		if b.ID == id {
			l.bs = slices.Delete(l.bs, i, i+1)
			return b, true
		}
	}
	return store.Binding{}, false
}

func (l *cliLocations) set(bs ...store.Binding) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bs = append(l.bs, bs...)
}

func md5Hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// Sync: the map is all there is.
func (l *cliLocations) Sync() error { return nil }

func (l *cliLocations) Writable() error { return nil }

func (l *cliLocations) RemoveWhere(aor string, drop func(store.Binding) bool) []store.Binding {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gone []store.Binding
	l.bs = slices.DeleteFunc(l.bs, func(b store.Binding) bool {
		if b.AOR == aor && drop(b) {
			gone = append(gone, b)
			return true
		}
		return false
	})
	return gone
}

// cliEnv is a real API server (real store) the CLI talks to, with the
// admin key generated into a data dir as on a first start.
type cliEnv struct {
	t       *testing.T
	url     string
	dataDir string
	db      *store.DB
	locs    *cliLocations
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "sipwarden.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	locs := &cliLocations{}
	srv, err := api.New(api.Config{Realm: "cli.test", AdminKeyFile: filepath.Join(dir, "admin.key"),
		Lifecycle: lifecycle.New(locs, nil, db, nil, nil)}, db, locs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	// The tests pass --api and --data-dir; keep the caller's environment out.
	t.Setenv(envAPI, "")
	t.Setenv("SIPWARDEN_API_KEY", "")
	t.Setenv(envDataDir, "")
	return &cliEnv{t: t, url: ts.URL, dataDir: dir, db: db, locs: locs}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs one management command ("credential create ...") with the
// common flags pointing at the test server.
func (e *cliEnv) run(stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	var f func([]string, io.Reader, io.Writer, io.Writer) int
	switch args[0] {
	case "credential":
		f = runCredential
	case "connection":
		f = runConnection
	case "registration":
		f = runRegistration
	case "number":
		f = runNumber
	default:
		e.t.Fatalf("unknown command %q", args[0])
	}
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && rest[0] != "help" {
		rest = append([]string{rest[0], "--api", e.url, "--data-dir", e.dataDir}, rest[1:]...)
	}
	code := f(rest, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (e *cliEnv) mustRun(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

var generatedPassword = regexp.MustCompile(`(?m)^password\s+([A-Za-z0-9]+)$`)

func TestCLICredentialCreateGeneratesPassword(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("", "credential", "create", "--username", "alice", "--tag", "sales")
	m := generatedPassword.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no password line in:\n%s", r.stdout)
	}
	pw := m[1]
	if len(pw) != 24 || strings.ContainsAny(pw, "0O1lIo") {
		t.Errorf("generated password %q: want 24 characters without look-alikes", pw)
	}
	if strings.Count(r.stdout, pw) != 1 || !strings.Contains(r.stdout, "will not be shown again") {
		t.Errorf("want the password once and the note:\n%s", r.stdout)
	}
	for _, want := range []string{"username", "alice", "sales", "enabled", "true"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// The store's HA1 is the one of the printed password.
	c, err := e.db.CredentialByUsername("alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.HA1["MD5"] != md5Hex("alice:cli.test:"+pw) {
		t.Errorf("stored MD5 HA1 is not that of the printed password")
	}
	// Another one gets another password.
	r2 := e.mustRun("", "credential", "create", "--username", "alice2")
	if m2 := generatedPassword.FindStringSubmatch(r2.stdout); m2 == nil || m2[1] == pw {
		t.Errorf("second generated password: %v", m2)
	}
	// get and list never show it.
	r = e.mustRun("", "credential", "get", c.ID)
	r3 := e.mustRun("", "credential", "list")
	if strings.Contains(r.stdout+r3.stdout, pw) || strings.Contains(r.stdout, "password") {
		t.Errorf("password shown again")
	}
}

func TestCLICredentialPasswordStdin(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("my-own-long-password\n", "credential", "create", "--username", "bob", "--password-stdin",
		"--name", "Bob", "--algorithms", "SHA-256,MD5", "--expires-at", "2099-01-02T03:04:05Z")
	if strings.Contains(r.stdout, "my-own-long-password") || generatedPassword.MatchString(r.stdout) {
		t.Errorf("a password was printed:\n%s", r.stdout)
	}
	c, err := e.db.CredentialByUsername("bob")
	if err != nil {
		t.Fatal(err)
	}
	if c.HA1["MD5"] != md5Hex("bob:cli.test:my-own-long-password") {
		t.Errorf("stdin password: the trailing newline must be dropped")
	}
	if !slices.Equal(c.Algorithms, []string{"SHA-256", "MD5"}) || c.Name != "Bob" || !c.ExpiresAt.Equal(time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("stored %+v", c)
	}

	// Too short: the API's detail on stderr, exit 1.
	r = e.run("short\n", "credential", "create", "--username", "carol", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "password is shorter than 12 characters") || r.stdout != "" {
		t.Errorf("short password: got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Empty stdin is a usage error.
	if r = e.run("", "credential", "create", "--username", "carol", "--password-stdin"); r.code != 2 {
		t.Errorf("empty stdin: got exit %d, want 2", r.code)
	}
	// Duplicate username.
	r = e.run("another-long-password", "credential", "create", "--username", "bob", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "already taken") {
		t.Errorf("duplicate: got %d %q", r.code, r.stderr)
	}
}

func TestCLICredentialJSON(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("", "credential", "create", "--username", "dave", "--output", "json")
	var out struct {
		api.Credential
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("json output %q: %v", r.stdout, err)
	}
	if out.Username != "dave" || len(out.Password) != 24 || out.ID == "" {
		t.Errorf("got %+v", out)
	}
	if strings.Contains(r.stderr, out.Password) {
		t.Errorf("stderr holds the password")
	}
	// With --password-stdin there is no password key.
	r = e.mustRun("dave2-long-password", "credential", "create", "--username", "dave2", "--password-stdin", "--output", "json")
	if strings.Contains(r.stdout, `"password"`) {
		t.Errorf("password key in %s", r.stdout)
	}
	r = e.mustRun("", "credential", "list", "--output", "json")
	var list []api.Credential
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("list json %q: %v", r.stdout, err)
	}
	r = e.mustRun("", "credential", "get", out.ID, "--output", "json")
	var one api.Credential
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || one.ID != out.ID {
		t.Fatalf("get json %q: %v", r.stdout, err)
	}
	r = e.mustRun("", "credential", "list", "--username", "nobody", "--output", "json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty list json: got %q, want []", r.stdout)
	}
}

func TestCLICredentialLifecycle(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("", "credential", "create", "--username", "erin")
	c, _ := e.db.CredentialByUsername("erin")
	e.locs.set(store.Binding{ID: "b1", AOR: "erin", Contact: "sip:erin@192.0.2.9", Expires: time.Now().Add(time.Hour)})

	// Flags may follow the ID.
	r := e.mustRun("", "credential", "update", c.ID, "--name", "Erin", "--tag", "t", "--algorithms", "SHA-512-256", "--expires-at", "2099-01-01T00:00:00Z")
	if !strings.Contains(r.stdout, "Erin") || !strings.Contains(r.stdout, "SHA-512-256") || !strings.Contains(r.stdout, "2099-01-01T00:00:00Z") {
		t.Errorf("update output:\n%s", r.stdout)
	}
	r = e.mustRun("", "credential", "update", c.ID, "--expires-at", "none", "--algorithms", "default", "--tag", "")
	if !strings.Contains(r.stdout, "never") || !regexp.MustCompile(`algorithms\s+default`).MatchString(r.stdout) {
		t.Errorf("clear output:\n%s", r.stdout)
	}
	got, _ := e.db.Credential(c.ID)
	if got.Tag != "" || !got.ExpiresAt.IsZero() || len(got.Algorithms) != 0 || got.Name != "Erin" {
		t.Errorf("after clearing: %+v", got)
	}
	old := got.HA1["MD5"]
	e.mustRun("a-brand-new-password\n", "credential", "update", "--password-stdin", c.ID)
	if got, _ := e.db.Credential(c.ID); got.HA1["MD5"] == old || got.HA1["MD5"] != md5Hex("erin:cli.test:a-brand-new-password") {
		t.Errorf("password not changed")
	}

	r = e.mustRun("", "credential", "disable", c.ID)
	if !regexp.MustCompile(`enabled\s+false`).MatchString(r.stdout) || len(e.locs.Bindings("erin")) != 0 {
		t.Errorf("disable: %s, bindings %d", r.stdout, len(e.locs.Bindings("erin")))
	}
	// It says what the server did, as delete does (it said nothing).
	if want := "credential " + c.ID + " disabled; its registrations and calls were ended"; !strings.Contains(r.stdout, want) {
		t.Errorf("disable output lacks %q:\n%s", want, r.stdout)
	}
	if r = e.mustRun("", "credential", "disable", c.ID, "-o", "json"); strings.Contains(r.stdout, "were ended") {
		t.Errorf("disable -o json: the note is not JSON:\n%s", r.stdout)
	}
	r = e.mustRun("", "credential", "list", "--enabled", "false")
	if !strings.Contains(r.stdout, "erin") || !strings.HasPrefix(r.stdout, "ID") {
		t.Errorf("list disabled:\n%s", r.stdout)
	}
	e.mustRun("", "credential", "enable", c.ID)
	if got, _ := e.db.Credential(c.ID); !got.Enabled {
		t.Errorf("enable did not")
	}
	r = e.mustRun("", "credential", "delete", c.ID)
	if !strings.Contains(r.stdout, "deleted") {
		t.Errorf("delete output %q", r.stdout)
	}
	r = e.run("", "credential", "get", c.ID)
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 404") {
		t.Errorf("get deleted: %d %q", r.code, r.stderr)
	}
}

func TestCLIListAll(t *testing.T) {
	e := newCLIEnv(t)
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		e.mustRun("", "credential", "create", "--username", u)
	}
	r := e.mustRun("", "credential", "list", "--limit", "2")
	if n := strings.Count(r.stdout, "\n"); n != 3 || !strings.Contains(r.stderr, "--after") {
		t.Errorf("one page of 2: got %d lines, stderr %q", n, r.stderr)
	}
	r = e.mustRun("", "credential", "list", "--limit", "2", "--all", "--output", "json")
	var list []api.Credential
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 5 {
		t.Fatalf("--all: got %d (%v)", len(list), err)
	}
	seen := map[string]bool{}
	for _, c := range list {
		if seen[c.Username] {
			t.Errorf("%s twice", c.Username)
		}
		seen[c.Username] = true
	}
}

func TestCLIConnection(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("", "connection", "create", "--name", "pbx", "--output", "json")
	var c api.Connection
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.Name != "pbx" || !c.Active {
		t.Fatalf("create: %q %v", r.stdout, err)
	}
	r = e.mustRun("", "connection", "update", c.ID, "--active", "false")
	if !regexp.MustCompile(`active\s+false`).MatchString(r.stdout) {
		t.Errorf("update:\n%s", r.stdout)
	}
	r = e.mustRun("", "connection", "list")
	if !strings.Contains(r.stdout, "pbx") || !strings.Contains(r.stdout, "default") {
		t.Errorf("list:\n%s", r.stdout)
	}
	e.mustRun("", "connection", "get", c.ID)
	r = e.mustRun("", "connection", "update", c.ID, "--allowed-cidrs", "192.0.2.7, 10.1.0.0/16")
	if !regexp.MustCompile(`allowed_cidrs\s+192.0.2.7/32,10.1.0.0/16`).MatchString(r.stdout) {
		t.Errorf("update allowed-cidrs:\n%s", r.stdout)
	}
	if r = e.run("", "connection", "update", c.ID, "--allowed-cidrs", "10.0.0.0/99"); r.code != 1 || !strings.Contains(r.stderr, "allowed_cidrs") {
		t.Errorf("bad allowed-cidrs: %d %q", r.code, r.stderr)
	}
	r = e.mustRun("", "connection", "update", c.ID, "--allowed-cidrs", "")
	if !regexp.MustCompile(`allowed_cidrs\s+any`).MatchString(r.stdout) {
		t.Errorf("clear allowed-cidrs:\n%s", r.stdout)
	}
	r = e.mustRun("", "connection", "create", "--name", "acl", "--allowed-cidrs", "2001:db8::/32", "--output", "json")
	var acl api.Connection
	if err := json.Unmarshal([]byte(r.stdout), &acl); err != nil || len(acl.AllowedCIDRs) != 1 || acl.AllowedCIDRs[0] != "2001:db8::/32" {
		t.Errorf("create with allowed-cidrs: %q %v", r.stdout, err)
	}
	e.mustRun("long-enough-password", "credential", "create", "--username", "pbx1", "--connection", c.ID, "--password-stdin")
	if r = e.run("", "connection", "delete", c.ID); r.code != 1 || !strings.Contains(r.stderr, "credentials") {
		t.Errorf("delete in use: %d %q", r.code, r.stderr)
	}
	if r = e.run("", "connection", "delete", "default"); r.code != 1 {
		t.Errorf("delete default: exit %d", r.code)
	}
	r = e.mustRun("", "credential", "list", "--connection", c.ID)
	if !strings.Contains(r.stdout, "pbx1") {
		t.Errorf("list by connection:\n%s", r.stdout)
	}
}

func TestCLIRegistration(t *testing.T) {
	e := newCLIEnv(t)
	exp := time.Now().Add(5 * time.Minute)
	e.locs.set(
		store.Binding{ID: "r1", AOR: "alice", Contact: "sip:alice@192.0.2.1:5060", Source: "192.0.2.1:5060", Transport: "udp", UserAgent: "Zoiper\t5\x1b[31m", Expires: exp},
		store.Binding{ID: "r2", AOR: "bob", Contact: "sip:bob@192.0.2.2:5060", Source: "192.0.2.2:5060", Transport: "tcp", Expires: exp},
	)
	r := e.mustRun("", "registration", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "alice") || !strings.Contains(lines[2], "tcp") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("a device's escape sequence reached the terminal:\n%q", r.stdout)
	}
	r = e.mustRun("", "registration", "list", "--username", "bob", "--output", "json")
	var regs []api.Registration
	if err := json.Unmarshal([]byte(r.stdout), &regs); err != nil || len(regs) != 1 || regs[0].ID != "r2" {
		t.Fatalf("json: %q %v", r.stdout, err)
	}
	e.mustRun("", "registration", "delete", "r1")
	if r = e.run("", "registration", "delete", "r1"); r.code != 1 {
		t.Errorf("delete twice: exit %d", r.code)
	}
}

func TestCLIUsage(t *testing.T) {
	e := newCLIEnv(t)
	cases := []struct {
		args []string
		code int
		want string // on stdout or stderr
	}{
		{[]string{"credential"}, 2, "subcommands:"},
		{[]string{"credential", "help"}, 0, "create [--username U]"},
		{[]string{"credential", "frobnicate"}, 2, "unknown subcommand"},
		{[]string{"credential", "create", "-h"}, 0, "-password-stdin"},
		{[]string{"credential", "create", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"credential", "get"}, 2, "want 1 argument"},
		{[]string{"credential", "get", "a", "b"}, 2, "want 1 argument"},
		{[]string{"credential", "list", "--enabled", "maybe"}, 2, "true or false"},
		{[]string{"credential", "list", "--output", "yaml"}, 2, "--output"},
		{[]string{"credential", "create", "--username", "x", "--expires-at", "tomorrow"}, 2, "RFC 3339"},
		{[]string{"credential", "update", "some-id"}, 2, "nothing to change"},
		{[]string{"connection", "create"}, 2, "--name is required"},
		{[]string{"connection", "update", "x", "--active", "yes"}, 2, "true or false"},
		{[]string{"registration"}, 2, "subcommands:"},
		{[]string{"registration", "list", "extra"}, 2, "unexpected argument"},
	}
	for _, tc := range cases {
		r := e.run("", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("%v: got exit %d, output %q; want %d and %q", tc.args, r.code, r.stdout+r.stderr, tc.code, tc.want)
		}
	}
}

func TestCLIKeyResolution(t *testing.T) {
	e := newCLIEnv(t)
	var out, errb bytes.Buffer
	// No key anywhere: a clear error.
	code := runCredential([]string{"list", "--api", e.url, "--data-dir", t.TempDir()}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "no API key") {
		t.Errorf("no key: got %d %q", code, errb.String())
	}
	// A wrong key from the environment: the API's 401.
	t.Setenv("SIPWARDEN_API_KEY", "swk_nope_nope")
	errb.Reset()
	code = runCredential([]string{"list", "--api", e.url, "--data-dir", e.dataDir}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "HTTP 401") {
		t.Errorf("env key beats the file: got %d %q", code, errb.String())
	}
	// The environment's API URL and data dir.
	t.Setenv("SIPWARDEN_API_KEY", "")
	t.Setenv(envAPI, e.url)
	t.Setenv(envDataDir, e.dataDir)
	out.Reset()
	if code = runConnection([]string{"list"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "default") {
		t.Errorf("env: got %d %q", code, out.String())
	}
	// --api-key beats all.
	key, _ := os.ReadFile(filepath.Join(e.dataDir, "admin.key"))
	t.Setenv(envDataDir, t.TempDir())
	if code = runConnection([]string{"list", "--api-key", strings.TrimSpace(string(key))}, nil, &out, &errb); code != 0 {
		t.Errorf("--api-key: got %d", code)
	}
}

func TestCLINumberAndIPConnection(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("", "connection", "create", "--name", "carrier", "--kind", "ip", "--allowed-cidrs", "192.0.2.0/28",
		"--pbx-uri", "sip:192.0.2.5:5080;transport=tcp", "--max-calls", "30", "--output", "json")
	var c api.Connection
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.Kind != "ip" || c.MaxCalls != 30 || c.CallerIDPolicy != "any" {
		t.Fatalf("create ip connection: %q %v", r.stdout, err)
	}
	if r = e.run("", "connection", "create", "--name", "x", "--kind", "ip"); r.code != 1 || !strings.Contains(r.stderr, "allowed_cidrs") {
		t.Errorf("ip connection without addresses: %d %q", r.code, r.stderr)
	}
	r = e.mustRun("", "connection", "update", c.ID, "--sip-uri-calling", "disabled", "--caller-id-policy", "connection_numbers", "--max-registrations", "4")
	for _, want := range []string{`sip_uri_calling_preference\s+disabled`, `caller_id_policy\s+connection_numbers`, `max_registrations\s+4`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("update: no %s in\n%s", want, r.stdout)
		}
	}
	r = e.mustRun("", "number", "create", "tel:+1-555-123-4567", "--connection", c.ID)
	if !regexp.MustCompile(`number\s+\+15551234567`).MatchString(r.stdout) {
		t.Errorf("number create:\n%s", r.stdout)
	}
	if r = e.run("", "number", "create", "+1555abc", "--connection", c.ID); r.code != 1 || !strings.Contains(r.stderr, "number") {
		t.Errorf("bad number: %d %q", r.code, r.stderr)
	}
	if r = e.run("", "number", "create", "+15551234567", "--connection", c.ID); r.code != 1 || !strings.Contains(r.stderr, "already assigned") {
		t.Errorf("taken number: %d %q", r.code, r.stderr)
	}
	e.mustRun("long-enough-password", "credential", "create", "--username", "pbx1", "--password-stdin")
	r = e.mustRun("", "number", "list", "--connection", c.ID)
	if !strings.Contains(r.stdout, "+15551234567") {
		t.Errorf("number list:\n%s", r.stdout)
	}
	r = e.mustRun("", "number", "get", "15551234567", "--output", "json")
	var n api.Number
	if err := json.Unmarshal([]byte(r.stdout), &n); err != nil || n.ConnectionID != c.ID {
		t.Errorf("number get: %q %v", r.stdout, err)
	}
	if r = e.run("", "connection", "delete", c.ID); r.code != 1 || !strings.Contains(r.stderr, "numbers") {
		t.Errorf("delete connection with a number: %d %q", r.code, r.stderr)
	}
	e.mustRun("", "number", "delete", "+15551234567")
	e.mustRun("", "connection", "delete", c.ID)
}

// TestCLICredentialResolution: a credential is named by ID or username,
// and a username may look like a UUID: it used to be taken as an ID,
// reaching the credential with that ID (or a 404) instead of the one with
// that username. An argument that is one credential's ID and another's
// username is refused as ambiguous.
func TestCLICredentialResolution(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("", "credential", "create", "--username", "target")
	target, _ := e.db.CredentialByUsername("target")
	// A username that is a UUID but no credential's ID.
	const uuidName = "5b1c9f7e-0d2a-4c3b-8e6f-1a2b3c4d5e6f"
	e.mustRun("", "credential", "create", "--username", uuidName)
	byUUIDName, _ := e.db.CredentialByUsername(uuidName)
	// A username that is another credential's ID.
	e.mustRun("", "credential", "create", "--username", target.ID)
	clash, _ := e.db.CredentialByUsername(target.ID)

	cases := []struct {
		name, arg string
		wantID    string // "" : refused
		wantErr   string
	}{
		{"plain username", "target", target.ID, ""},
		{"ID", target.ID, "", "ambiguous"},
		{"ID only", clash.ID, clash.ID, ""},
		{"UUID username", uuidName, byUUIDName.ID, ""},
		{"neither", "00000000-0000-4000-8000-000000000000", "", "HTTP 404"},
		{"unknown username", "nobody", "", "no credential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.run("", "credential", "get", c.arg, "--output", "json")
			if c.wantID == "" {
				if r.code == 0 || !strings.Contains(r.stderr, c.wantErr) {
					t.Fatalf("credential get %s: got exit %d stderr %q, want a failure saying %q", c.arg, r.code, r.stderr, c.wantErr)
				}
				return
			}
			if r.code != 0 || !strings.Contains(r.stdout, `"id": "`+c.wantID+`"`) {
				t.Fatalf("credential get %s: got exit %d stdout %s stderr %q, want id %s", c.arg, r.code, r.stdout, r.stderr, c.wantID)
			}
		})
	}
}

// TestCLIConnectionWebhooks: the webhook fields can be set and cleared
// from the CLI (only the API could), the first URL's secret is shown
// once, and rotate-webhook-secret shows a new one.
func TestCLIConnectionWebhooks(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("", "connection", "create", "--name", "hooked", "--webhook-url", "http://127.0.0.1:9/hook", "--webhook-timeout-secs", "5")
	secret := regexp.MustCompile(`webhook_secret\s+(whsec_\S+)`).FindStringSubmatch(r.stdout)
	if secret == nil || !regexp.MustCompile(`webhook_event_url\s+http://127.0.0.1:9/hook`).MatchString(r.stdout) ||
		!regexp.MustCompile(`webhook_timeout_secs\s+5`).MatchString(r.stdout) {
		t.Fatalf("create:\n%s", r.stdout)
	}
	id := regexp.MustCompile(`(?m)^id\s+(\S+)`).FindStringSubmatch(r.stdout)[1]
	if r = e.mustRun("", "connection", "get", id); strings.Contains(r.stdout, "whsec_") {
		t.Errorf("get shows the secret again:\n%s", r.stdout)
	}
	r = e.mustRun("", "connection", "rotate-webhook-secret", id)
	rotated := regexp.MustCompile(`webhook_secret\s+(whsec_\S+)`).FindStringSubmatch(r.stdout)
	if rotated == nil || rotated[1] == secret[1] {
		t.Fatalf("rotate-webhook-secret:\n%s", r.stdout)
	}
	r = e.mustRun("", "connection", "update", id, "--webhook-failover-url", "http://127.0.0.1:10/backup")
	if !regexp.MustCompile(`webhook_event_failover_url\s+http://127.0.0.1:10/backup`).MatchString(r.stdout) {
		t.Errorf("update failover:\n%s", r.stdout)
	}
	if r = e.run("", "connection", "update", id, "--webhook-url", "ftp://x"); r.code != 1 || !strings.Contains(r.stderr, "webhook_event_url") {
		t.Errorf("bad URL: %d %q", r.code, r.stderr)
	}
	r = e.mustRun("", "connection", "update", id, "--webhook-url", "", "--webhook-failover-url", "")
	if strings.Contains(r.stdout, "webhook_event_url") {
		t.Errorf("cleared:\n%s", r.stdout)
	}
	if r = e.run("", "connection", "rotate-webhook-secret", "nope"); r.code != 1 {
		t.Errorf("rotate unknown: exit %d", r.code)
	}
}

// The common flags may come before the command, as with git or kubectl
// ("unknown command --api" before), in both forms, and never after a
// "--"; --limit outside 1 to 1000 is a usage error (0 and -1 listed the
// default page).
func TestCLICommonFlagsFirst(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("", "credential", "create", "--username", "-dash")
	for _, args := range [][]string{
		{"--api", e.url, "--data-dir", e.dataDir, "credential", "list"},
		{"--api=" + e.url, "-data-dir=" + e.dataDir, "-o", "json", "credential", "list"},
		{"--api", e.url, "--data-dir", e.dataDir, "credential", "get", "--", "-dash"},
	} {
		var out, errb bytes.Buffer
		if code := Run(args, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "-dash") {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
		}
	}
	for _, limit := range []string{"0", "-1", "1001", "ten"} {
		r := e.run("", "credential", "list", "--limit", limit)
		if r.code != 2 || !strings.Contains(r.stderr, "1 to 1000") {
			t.Errorf("--limit %s: exit %d, stderr %q; want 2 and the range", limit, r.code, r.stderr)
		}
	}
}

// TestCLICredentialCreateOnDemand: credential create without --username
// lets the server generate the username and the password (it was a usage
// error), and prints the password the server generated, once.
func TestCLICredentialCreateOnDemand(t *testing.T) {
	e := newCLIEnv(t)
	r := e.mustRun("", "connection", "create", "--name", "pbx", "--output", "json")
	var conn api.Connection
	if err := json.Unmarshal([]byte(r.stdout), &conn); err != nil {
		t.Fatal(err)
	}
	r = e.mustRun("", "credential", "create", "--connection", conn.ID, "--name", "My-new-credential")
	user := regexp.MustCompile(`(?m)^username\s+(gencred[a-z0-9]{13})$`).FindStringSubmatch(r.stdout)
	pw := generatedPassword.FindStringSubmatch(r.stdout)
	if user == nil || pw == nil || !strings.Contains(r.stdout, "will not be shown again") {
		t.Fatalf("want a generated username, the password and the note:\n%s", r.stdout)
	}
	c, err := e.db.CredentialByUsername(user[1])
	if err != nil {
		t.Fatal(err)
	}
	if c.ConnectionID != conn.ID || c.Name != "My-new-credential" || c.HA1["MD5"] != md5Hex(user[1]+":cli.test:"+pw[1]) {
		t.Errorf("stored %+v: want its connection, name and the HA1 of the printed password", c)
	}

	// JSON: the password in the output, once; the stdin one never.
	r = e.mustRun("", "credential", "create", "--output", "json")
	var out api.Credential
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("json output %q: %v", r.stdout, err)
	}
	if !strings.HasPrefix(out.Username, "gencred") || len(out.Password) != 24 || strings.Count(r.stdout, out.Password) != 1 {
		t.Errorf("json: got %+v, want a generated username and a 24-character password once", out)
	}
	r = e.mustRun("stdin-long-password-9", "credential", "create", "--password-stdin", "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !strings.HasPrefix(out.Username, "gencred") || strings.Contains(r.stdout, `"password"`) {
		t.Errorf("--password-stdin without --username: got %s (%v), want a generated username and no password", r.stdout, err)
	}
}

// TestCLINumberCredentialByUsername: number create, update and list take
// the credential by ID or username, as the README says and call list
// does; a username was sent as credential_id (422 on create and update,
// an empty table on list), and an unknown one must be an error naming it.
func TestCLINumberCredentialByUsername(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("", "credential", "create", "--username", "dave")
	e.mustRun("", "credential", "create", "--username", "erin")
	dave, _ := e.db.CredentialByUsername("dave")
	erin, _ := e.db.CredentialByUsername("erin")

	r := e.mustRun("", "number", "create", "+15550001111", "--credential", "dave")
	if !regexp.MustCompile(`credential_id\s+` + dave.ID).MatchString(r.stdout) {
		t.Errorf("number create --credential dave:\n%s", r.stdout)
	}
	e.mustRun("", "number", "create", "+15550002222", "--credential", erin.ID)
	r = e.mustRun("", "number", "list", "--credential", "dave")
	if !strings.Contains(r.stdout, "+15550001111") || strings.Contains(r.stdout, "+15550002222") {
		t.Errorf("number list --credential dave: want dave's number only:\n%s", r.stdout)
	}
	r = e.mustRun("", "number", "update", "+15550002222", "--credential", "dave")
	if !regexp.MustCompile(`credential_id\s+` + dave.ID).MatchString(r.stdout) {
		t.Errorf("number update --credential dave:\n%s", r.stdout)
	}
	r = e.mustRun("", "number", "update", "+15550002222", "--credential", "")
	if !strings.Contains(r.stdout, "none (the connection's pbx_uri)") {
		t.Errorf(`number update --credential "":\n%s`, r.stdout)
	}

	const unknownID = "00000000-0000-4000-8000-000000000000"
	for _, args := range [][]string{
		{"number", "create", "+15550003333", "--credential", "nobody"},
		{"number", "update", "+15550001111", "--credential", "nobody"},
		{"number", "list", "--credential", "nobody"},
		{"number", "list", "--credential", unknownID},
	} {
		r := e.run("", args...)
		ref := args[len(args)-1]
		if r.code != 1 || !strings.Contains(r.stderr, `no credential with id or username "`+ref+`"`) || r.stdout != "" {
			t.Errorf("%v: got exit %d, stdout %q, stderr %q; want 1 and an error naming %s", args, r.code, r.stdout, r.stderr, ref)
		}
	}
	if n, err := e.db.Number("+15550001111"); err != nil || n.CredentialID != dave.ID {
		t.Errorf("after the refused update: %+v %v, want still dave's", n, err)
	}
}

// TestCLIHelpTexts: the help agrees with the commands. The top-level
// usage lists every subcommand (it left out connection
// rotate-webhook-secret); every command's help gives the same --output
// values, the ones parse takes (number's said text|json); --max-calls
// says what the proxy counts: calls made by the connection's callers and
// calls to its users and numbers, together.
func TestCLIHelpTexts(t *testing.T) {
	lines := strings.Split(Usage, "\n")
	for cmd, subs := range commandTree() {
		if len(subs) == 0 {
			continue // help, version, ...: no subcommands to list
		}
		var block string
		for i, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == cmd && strings.HasPrefix(l, "  ") {
				block = l
				for _, more := range lines[i+1:] {
					if !strings.HasPrefix(more, "    ") {
						break
					}
					block += "\n" + more
				}
				break
			}
		}
		if block == "" {
			t.Errorf("usage does not list command %s", cmd)
			continue
		}
		for _, sub := range subs {
			if !regexp.MustCompile(`(^|[\s|\[])` + regexp.QuoteMeta(sub) + `($|[\s|\]])`).MatchString(block) {
				t.Errorf("usage of %s does not list %s:\n%s", cmd, sub, block)
			}
		}
	}

	for name, u := range map[string]string{"apikey": apikeyUsage, "ban": banUsage, "call": callUsage, "connection": connectionUsage,
		"credential": credentialUsage, "number": numberUsage, "registration": registrationUsage, "token": tokenUsage} {
		if !strings.Contains(u, "common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json\n") {
			t.Errorf("%s usage: common flags differ from the others:\n%s", name, u)
		}
	}

	e := newCLIEnv(t)
	r := e.run("", "connection", "create", "-h")
	if r.code != 0 || !strings.Contains(r.stderr, "made by its callers or to its users and numbers, counted together") {
		t.Errorf("connection create -h: --max-calls does not say both ways:\n%s", r.stderr)
	}
	for _, o := range []string{"table", "text", "json"} {
		if r := e.run("", "number", "list", "-o", o); r.code != 0 {
			t.Errorf("number list -o %s: exit %d %q", o, r.code, r.stderr)
		}
	}
}
