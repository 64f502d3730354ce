//go:build interop

// Package interop drives a real sipwarden binary with real SIP peers: sipp,
// baresip and linphonec, over UDP, TCP and TLS on loopback. Run it with
// `make interop` (which installs the peers) or
//
//	go test -tags interop -count=1 -timeout 20m ./interop/
//
// SIPWARDEN_INTEROP_BIN=path runs it against that binary instead of
// building ./cmd/sipwarden. How each peer is driven headless is described in the helpers of its
// file; the facts behind them are in INTEROP_NOTES.md.
package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// Set by TestMain.
var (
	serverBin string // sipwarden built from this checkout
	repoRoot  string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	root, err := harness.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	repoRoot = root
	// SIPWARDEN_INTEROP_BIN runs the suite against a binary built elsewhere.
	if bin := os.Getenv("SIPWARDEN_INTEROP_BIN"); bin != "" {
		serverBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sipwarden-interop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := harness.BuildServer(context.Background(), root, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	serverBin = bin
	return m.Run()
}

// requireTools fails (not skips) the test when a peer is missing: the
// suite exists to run them.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: run scripts/install-peers.sh (as root) first", n)
		}
	}
}

// scenario is the path of a sipp scenario under testdata/sipp.
func scenario(name string) string {
	return filepath.Join(repoRoot, "testdata", "sipp", name)
}

// startServer starts sipwarden with free loopback ports (mod may change
// the configuration) and stops it when the test ends: a server that died
// during the test, or that does not exit cleanly on SIGTERM, fails the test.
// On failure the tail of its log is printed.
func startServer(t *testing.T, mod func(*harness.Config)) *harness.Server {
	t.Helper()
	dir := t.TempDir()
	cfg, err := harness.LoopbackConfig(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := harness.StartServer(ctx, serverBin, dir, cfg)
	if err != nil {
		t.Fatalf("start sipwarden: %v", err)
	}
	t.Cleanup(func() {
		died := srv.Exited()
		err := srv.Stop()
		switch {
		case died:
			t.Errorf("sipwarden (pid %d) exited during the test: %v", srv.PID(), err)
		case err != nil:
			t.Errorf("sipwarden (pid %d) did not exit cleanly on SIGTERM: %v", srv.PID(), err)
		}
		if t.Failed() {
			t.Logf("sipwarden log %s, last lines:\n%s", srv.LogPath, srv.LogTail(40))
		}
	})
	return srv
}

// testCtx is a context that ends after limit or with the test.
func testCtx(t *testing.T, limit time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}

// cliCredential is the JSON the CLI prints for a created credential.
type cliCredential struct {
	ID         string   `json:"id"`
	Username   string   `json:"username"`
	Enabled    bool     `json:"enabled"`
	Algorithms []string `json:"algorithms"`
}

// runCLI runs the sipwarden binary with args against srv's API, password
// (if any) on stdin, and returns its stdout; a non-zero exit fails the test.
func runCLI(t *testing.T, srv *harness.Server, stdin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--api", "http://"+srv.Config.HTTP, "--api-key", srv.Config.APIKey, "--output", "json")
	cmd := exec.CommandContext(ctx, serverBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sipwarden %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// createCredentialCLI creates a credential with the CLI binary
// (`credential create --password-stdin`); algorithms is its --algorithms
// flag, "" for the server's list.
func createCredentialCLI(t *testing.T, srv *harness.Server, user, password, algorithms string) {
	t.Helper()
	args := []string{"credential", "create", "--username", user, "--password-stdin"}
	if algorithms != "" {
		args = append(args, "--algorithms", algorithms)
	}
	out := runCLI(t, srv, password+"\n", args...)
	var c cliCredential
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("credential create output %q: %v", out, err)
	}
	if c.Username != user || !c.Enabled || c.ID == "" {
		t.Fatalf("credential create: got %+v, want an enabled credential %q with an id", c, user)
	}
	if want := splitList(algorithms); !slices.Equal(c.Algorithms, want) {
		t.Fatalf("credential create: got algorithms %q, want %q", c.Algorithms, want)
	}
}

func splitList(s string) []string {
	out := []string{}
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// registrationsCLI lists user's registrations with the CLI binary
// (`registration list --username U --output json`).
func registrationsCLI(t *testing.T, srv *harness.Server, user string) []harness.Registration {
	t.Helper()
	out := runCLI(t, srv, "", "registration", "list", "--username", user)
	var regs []harness.Registration
	if err := json.Unmarshal(out, &regs); err != nil {
		t.Fatalf("registration list output %q: %v", out, err)
	}
	return regs
}

// waitLog polls the file at path until match returns true for its
// contents, fail returns a non-empty reason, the peer exits, or limit
// passes. It reports whether match succeeded and why not.
func waitLog(ctx context.Context, path string, p *harness.Proc, limit time.Duration, match func(string) bool, fail func(string) string) (bool, string) {
	var why string
	err := harness.Poll(ctx, limit, 100*time.Millisecond, func() (bool, error) {
		b, _ := os.ReadFile(path)
		s := string(b)
		if match(s) {
			return true, nil
		}
		if why = fail(s); why != "" {
			return false, fmt.Errorf("%s", why)
		}
		if p.Exited() {
			return false, fmt.Errorf("peer (pid %d) exited: %v", p.PID(), p.Err())
		}
		return false, nil
	})
	if err != nil {
		return false, err.Error()
	}
	return true, ""
}

// randomPassword returns a fresh password (24 hex digits).
func randomPassword() string { return harness.MakeUsers("x", 1)[0].Password }

// oneRegistration fails the test unless the API lists exactly one binding
// for user, and returns it.
func oneRegistration(t *testing.T, srv *harness.Server, user string) harness.Registration {
	t.Helper()
	regs, err := srv.API().Registrations(testCtx(t, 30*time.Second), user)
	if err != nil {
		t.Fatalf("GET /v1/registrations?username=%s: %v", user, err)
	}
	if len(regs) != 1 {
		t.Fatalf("GET /v1/registrations?username=%s: got %d bindings %+v, want 1", user, len(regs), regs)
	}
	if regs[0].Username != user {
		t.Fatalf("registration username: got %q, want %q", regs[0].Username, user)
	}
	return regs[0]
}

// noRegistration fails the test when the API lists a binding for user.
func noRegistration(t *testing.T, srv *harness.Server, user string) {
	t.Helper()
	regs, err := srv.API().Registrations(testCtx(t, 30*time.Second), user)
	if err != nil {
		t.Fatalf("GET /v1/registrations?username=%s: %v", user, err)
	}
	if len(regs) != 0 {
		t.Fatalf("GET /v1/registrations?username=%s: got %d bindings %+v, want none", user, len(regs), regs)
	}
}

// checkSource fails the test unless reg came over transport from the
// address the peer (pid) itself uses: for UDP its listening port, for TCP
// and TLS the local end of the one connection it holds to the server.
func checkSource(t *testing.T, reg harness.Registration, transport string, pid int, udpAddr, serverAddr string) {
	t.Helper()
	if reg.Transport != transport {
		t.Errorf("registration transport: got %q, want %q", reg.Transport, transport)
	}
	want := udpAddr
	if transport != "udp" {
		addrs, err := harness.ConnLocalAddrs(pid, serverAddr)
		if err != nil {
			t.Fatalf("connections of pid %d: %v", pid, err)
		}
		if len(addrs) != 1 {
			t.Fatalf("pid %d holds %d established connections to %s (%v), want 1", pid, len(addrs), serverAddr, addrs)
		}
		want = addrs[0]
		if want == udpAddr {
			t.Fatalf("the peer's connection %s is its listening address: cannot tell them apart", want)
		}
	}
	if reg.Source != want {
		t.Errorf("registration source: got %q, want %q (the peer's own %s socket)", reg.Source, want, transport)
	}
}
