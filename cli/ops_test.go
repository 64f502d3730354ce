package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/server/servertest"
)

// nodeCLI runs the CLI against a servertest node.
type nodeCLI struct {
	t   *testing.T
	ts  *servertest.Server
	key string
}

func newNodeCLI(t *testing.T, ts *servertest.Server) *nodeCLI {
	t.Setenv(envAPI, "")
	t.Setenv("SIPWARDEN_API_KEY", "")
	t.Setenv(envDataDir, "")
	return &nodeCLI{t: t, ts: ts, key: servertest.APIKey}
}

// run runs "sipwarden args... --api URL --api-key KEY" and returns the
// exit code, stdout and stderr.
func (n *nodeCLI) run(stdin string, args ...string) result {
	n.t.Helper()
	var out, errb strings.Builder
	args = append(slices.Clone(args), "--api", "http://"+n.ts.Addr("http"), "--api-key", n.key)
	code := Run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (n *nodeCLI) ok(args ...string) result {
	n.t.Helper()
	r := n.run("", args...)
	if r.code != 0 {
		n.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// refused runs a command that must exit 1 with wantErr in its stderr.
func (n *nodeCLI) refused(wantErr string, args ...string) {
	n.t.Helper()
	r := n.run("", args...)
	if r.code != exitError || !strings.Contains(r.stderr, wantErr) {
		n.t.Fatalf("%v: got exit %d, stderr %q; want exit 1 and %q", args, r.code, r.stderr, wantErr)
	}
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

var passwordLine = regexp.MustCompile(`(?m)^password\s+(\S+)$`)

// TestCLIOperations drives the operator commands against a real node:
// credentials by username, a generated password on update, live
// registrations, calls, bans, the log level, scoped API keys, paging with
// the next cursor, and the output flag.
func TestCLIOperations(t *testing.T) {
	cfg := servertest.Config(t, t.TempDir())
	cfg.Guard.MaxFailures = 3
	ts := servertest.Start(t, cfg)
	n := newNodeCLI(t, ts)

	// A credential, then addressed by its username.
	created := decodeJSON[api.Credential](t, n.ok("credential", "create", "--username", "alice", "-o", "json").stdout) // with its generated Password
	got := decodeJSON[api.Credential](t, n.ok("credential", "get", "alice", "-o", "json").stdout)
	if got.ID != created.ID {
		t.Fatalf("credential get alice: id %s, want %s", got.ID, created.ID)
	}
	n.refused("no credential with id or username \"nobody\"", "credential", "get", "nobody")

	// update --generate-password: shown once; the old one stops working.
	r := n.ok("credential", "update", "alice", "--generate-password")
	m := passwordLine.FindStringSubmatch(r.stdout)
	if m == nil || m[1] == created.Password || !strings.Contains(r.stdout, "will not be shown again") {
		t.Fatalf("update --generate-password printed:\n%s", r.stdout)
	}
	if st := ts.Register(t, "127.0.0.1", "alice", created.Password, 600); st != "SIP/2.0 403 Forbidden" {
		t.Errorf("REGISTER with the old password: %q, want 403", st)
	}
	if st := ts.Register(t, "127.0.0.1", "alice", m[1], 600); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER with the generated password: %q", st)
	}
	if strings.Contains(n.ok("credential", "get", "alice").stdout, m[1]) {
		t.Error("credential get shows the password")
	}
	if n.run("x", "credential", "update", "alice", "--generate-password", "--password-stdin").code != exitUsage {
		t.Error("--generate-password with --password-stdin: want exit 2")
	}
	regs := decodeJSON[[]api.Registration](t, n.ok("registration", "list", "-o", "json").stdout)
	if len(regs) != 1 || regs[0].Username != "alice" {
		t.Fatalf("registrations: %+v", regs)
	}

	// Calls: none live.
	if out := n.ok("call", "list").stdout; !strings.HasPrefix(out, "ID") || strings.Count(out, "\n") != 1 {
		t.Errorf("call list with no calls: %q, want the header alone", out)
	}
	n.refused("no live call", "call", "hangup", "nope;1;2")
	if calls := decodeJSON[[]api.Call](t, n.ok("call", "list", "--credential", "alice", "-o", "json").stdout); len(calls) != 0 {
		t.Errorf("calls of alice: %+v", calls)
	}

	// Bans: three wrong passwords from 127.0.0.9 ban it; the CLI lifts it.
	for range 3 {
		ts.Register(t, "127.0.0.9", "alice", "wrong-password-here", 600)
	}
	bans := decodeJSON[[]api.Ban](t, n.ok("ban", "list", "-o", "json").stdout)
	if len(bans) != 1 || bans[0].IP != "127.0.0.9" {
		t.Fatalf("bans after 3 failures: %+v", bans)
	}
	if out := n.ok("ban", "list").stdout; !strings.Contains(out, "127.0.0.9/32") {
		t.Errorf("ban list table: %q", out)
	}
	if out := n.ok("ban", "delete", "127.0.0.9").stdout; !strings.Contains(out, "lifted") {
		t.Errorf("ban delete: %q", out)
	}
	if bans := decodeJSON[[]api.Ban](t, n.ok("ban", "list", "-o", "json").stdout); len(bans) != 0 {
		t.Errorf("bans after delete: %+v", bans)
	}
	n.refused("no ban for 127.0.0.9", "ban", "delete", "127.0.0.9")
	n.refused("ip must be an IPv4 or IPv6 address", "ban", "delete", "nope")

	// Log level.
	if out := n.ok("log-level").stdout; out != "debug\n" {
		t.Errorf("log-level: %q, want debug", out)
	}
	if out := n.ok("log-level", "warn").stdout; out != "warn\n" {
		t.Errorf("log-level warn: %q", out)
	}
	if lv := decodeJSON[api.LogLevel](t, n.ok("log-level", "-o", "json").stdout); lv.Level != "warn" {
		t.Errorf("log-level -o json: %+v", lv)
	}
	n.refused("level \"loud\" is not one of", "log-level", "loud")
	if n.run("", "log-level", "info", "extra").code != exitUsage {
		t.Error("log-level with two arguments: want exit 2")
	}

	// Scoped API keys.
	ro := decodeJSON[api.APIKey](t, n.ok("apikey", "create", "--name", "grafana", "--scope", "read", "-o", "json").stdout)
	if ro.Scope != "read" || !strings.HasPrefix(ro.Key, "swk_") {
		t.Fatalf("apikey create: %+v", ro)
	}
	if out := n.ok("apikey", "list").stdout; !strings.Contains(out, "grafana") || strings.Contains(out, ro.Key) {
		t.Errorf("apikey list: %q", out)
	}
	if n.run("", "apikey", "create", "--name", "x", "--scope", "root").code != exitUsage {
		t.Error("apikey create --scope root: want exit 2")
	}
	n.key = ro.Key
	n.ok("credential", "list")
	n.ok("ban", "list")
	n.refused("HTTP 403", "credential", "create", "--username", "mallory")
	n.refused("HTTP 403", "credential", "disable", "alice")
	n.refused("HTTP 403", "apikey", "list")
	n.refused("HTTP 403", "log-level", "debug")
	n.key = servertest.APIKey
	if out := n.ok("apikey", "delete", ro.ID).stdout; !strings.Contains(out, "deleted") {
		t.Errorf("apikey delete: %q", out)
	}
	n.key = ro.Key
	n.refused("HTTP 401", "credential", "list")
	n.key = servertest.APIKey

	// Disabling by username removes the registration; list shows the state.
	n.ok("credential", "disable", "alice")
	if out := n.ok("credential", "list").stdout; !strings.Contains(out, "STATE") || !strings.Contains(out, "disabled") {
		t.Errorf("credential list after disable:\n%s", out)
	}
	if regs := decodeJSON[[]api.Registration](t, n.ok("registration", "list", "-o", "json").stdout); len(regs) != 0 {
		t.Errorf("registrations after disable: %+v", regs)
	}

	// Paging: the next cursor is printed in both formats.
	for _, u := range []string{"bob", "carol", "dave"} {
		n.ok("credential", "create", "--username", u)
	}
	for _, o := range []string{"json", "table"} {
		r := n.ok("credential", "list", "--limit", "2", "-o", o)
		cur := regexp.MustCompile(`next cursor: (\S+)`).FindStringSubmatch(r.stderr)
		if cur == nil {
			t.Fatalf("-o %s: no next cursor in stderr %q", o, r.stderr)
		}
		rest := decodeJSON[[]api.Credential](t, n.ok("credential", "list", "--after", cur[1], "-o", "json").stdout)
		if len(rest) != 2 {
			t.Errorf("-o %s: after the cursor %d credentials, want 2", o, len(rest))
		}
	}
	if r := n.run("", "credential", "list", "-o", "xml"); r.code != exitUsage || !strings.Contains(r.stderr, "table or json") {
		t.Errorf("-o xml: exit %d, %q", r.code, r.stderr)
	}
	// Deleting by username.
	n.ok("credential", "delete", "dave")
	n.refused("no credential with id or username \"dave\"", "credential", "get", "dave")
}

// TestCheckConfig: a good file, an unknown key and a bad value, each error
// naming the YAML key.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("SIPWARDEN_API_KEY", "")
	cases := []struct {
		name, file string
		code       int
		want       []string
	}{
		{"example", "../config/example.yaml", 0, []string{"example.yaml: ok"}},
		{"good", write("good.yaml", "sip:\n  realm: example.com\n  listen:\n    udp: 127.0.0.1:5070\nhttp:\n  listen: 127.0.0.1:8090\n"), 0,
			[]string{"good.yaml: ok", "realm example.com", "udp 127.0.0.1:5070", "HTTP 127.0.0.1:8090"}},
		{"unknown key", write("unknown.yaml", "sip:\n  listen:\n    udp: 127.0.0.1:5060\n    sctp: 127.0.0.1:5060\n"), 1,
			[]string{"sip.listen.sctp (line 4): unknown key"}},
		{"bad type", write("type.yaml", "registrar:\n  max_contacts: many\n"), 1,
			[]string{`registrar.max_contacts (line 2): invalid value "many": want a whole number`}},
		{"bad value", write("value.yaml", "sip:\n  listen:\n    udp: nowhere\n"), 1,
			[]string{`value.yaml: sip.listen.udp (line 3): invalid value "nowhere"`}},
		{"missing file", filepath.Join(dir, "none.yaml"), 1, []string{"none.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := Run([]string{"check-config", tc.file}, strings.NewReader(""), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String()+errb.String(), w) {
					t.Errorf("output lacks %q:\nstdout %s\nstderr %s", w, out.String(), errb.String())
				}
			}
			if strings.Contains(errb.String(), "config.") {
				t.Errorf("an error names a Go type: %s", errb.String())
			}
		})
	}
	// --config FILE, as serve takes it, is the same as the argument.
	good := cases[0].file
	for _, args := range [][]string{{"--config", good}, {"--config=" + good}} {
		var out, errb strings.Builder
		if code := Run(append([]string{"check-config"}, args...), strings.NewReader(""), &out, &errb); code != exitOK {
			t.Errorf("check-config %q: exit %d, want 0\n%s", args, code, errb.String())
		}
	}
	for _, args := range [][]string{nil, {"--config", good, good}, {good, good}} {
		var out, errb strings.Builder
		if code := Run(append([]string{"check-config"}, args...), strings.NewReader(""), &out, &errb); code != exitUsage {
			t.Errorf("check-config %q: exit %d, want 2", args, code)
		}
	}
}

// TestCompletion runs the bash script's completion function in bash, and
// checks the zsh script with zsh when it is installed.
func TestCompletion(t *testing.T) {
	var out, errb strings.Builder
	if code := Run([]string{"completion", "bash"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("completion bash: exit %d: %s", code, errb.String())
	}
	script := filepath.Join(t.TempDir(), "c.bash")
	if err := os.WriteFile(script, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		prog := "source " + script + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "; _sipwarden; echo \"${COMPREPLY[*]}\""
		b, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sipwarden", "cre"}, "credential"},
		{[]string{"sipwarden", "ba"}, "backup ban"},
		{[]string{"sipwarden", "ban", ""}, "list delete"},
		{[]string{"sipwarden", "apikey", "c"}, "create"},
		{[]string{"sipwarden", "completion", ""}, "bash zsh"},
		{[]string{"sipwarden", "credential", "list", "--ou"}, "--output"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("complete %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
	out.Reset()
	if code := Run([]string{"completion", "zsh"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "compdef _sipwarden sipwarden") {
		t.Fatalf("completion zsh: exit %d, %q", code, out.String())
	}
	// zsh (installed by scripts/install-peers.sh): the script parses, and
	// its function offers the right words, with compadd and _files, which
	// exist only inside zsh's completion system, replaced by functions that
	// print what they are given.
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Fatal("zsh not installed: run scripts/install-peers.sh")
	}
	zs := filepath.Join(t.TempDir(), "c.zsh")
	if err := os.WriteFile(zs, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(zsh, "-n", zs).CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v: %s", err, b)
	}
	zcomplete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		prog := "source " + zs + "; compadd() { shift; print -r -- \"$*\" }; _files() { print FILES }; " +
			"words=(" + strings.Join(quoted, " ") + "); CURRENT=" + strconv.Itoa(len(words)) + "; _sipwarden"
		b, err := exec.Command(zsh, "-f", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("zsh: %v: %s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sipwarden", ""}, "apikey backup ban call check-config cluster completion connection credential export help import log-level number registration restore serve token version"},
		{[]string{"sipwarden", "ban", ""}, "list delete"},
		{[]string{"sipwarden", "completion", ""}, "bash zsh"},
		{[]string{"sipwarden", "import", ""}, "FILES"},
		{[]string{"sipwarden", "credential", "list", "--ou"}, "--api --api-key --data-dir --output -o -h"},
	} {
		if got := zcomplete(tc.words...); got != tc.want {
			t.Errorf("zsh complete %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
	if code := Run([]string{"completion", "fish"}, strings.NewReader(""), &out, &errb); code != exitUsage {
		t.Errorf("completion fish: exit %d, want 2", code)
	}
}
