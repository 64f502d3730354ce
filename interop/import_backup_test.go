//go:build interop

package interop

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/interop/harness"
)

// cli runs the sipwarden binary as the operator's CLI against srv.
func cli(t *testing.T, srv *harness.Server, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, serverBin, args...)
	cmd.Env = append(os.Environ(), "SIPWARDEN_API=http://"+srv.Config.HTTP, "SIPWARDEN_API_KEY="+srv.Config.APIKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sipwarden %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestImportHA1sThenSippRegistersThem imports 10,000 users as a Kamailio
// subscriber CSV (username,ha1 with MD5 HA1s, no passwords), then sipp
// registers every one of them with the passwords the HA1s were made of.
// Meanwhile `sipwarden backup` copies the live store; the copy, restored
// into another data dir, serves a server with the same credentials (sipp
// registers with them again) and the bindings made before the backup.
func TestImportHA1sThenSippRegistersThem(t *testing.T) {
	requireTools(t, "sipp")
	const n = 10000
	srv := startServer(t, nil)
	users := harness.MakeUsers("kam", n)
	dir := t.TempDir()
	subscriber := filepath.Join(dir, "subscriber.csv")
	f, err := os.Create(subscriber)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "username,ha1")
	for _, u := range users {
		fmt.Fprintf(w, "%s,%s\n", u.Name, digest.HA1(digest.MD5, u.Name, "sipwarden.test", u.Password))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	start := time.Now()
	if out := cli(t, srv, time.Minute, "import", subscriber); !strings.Contains(out, fmt.Sprintf("%d credentials imported", n)) {
		t.Fatalf("import: %s", out)
	}
	t.Logf("imported %d credentials with MD5 HA1s in %v", n, time.Since(start).Round(time.Millisecond))
	usersCSV := filepath.Join(dir, "users.csv")
	if err := harness.WriteUsersCSV(usersCSV, users); err != nil {
		t.Fatal(err)
	}

	// sipp registers all of them; a backup is taken half way.
	type sippOut struct {
		res harness.SippResult
		err error
	}
	done := make(chan sippOut, 1)
	go func() {
		res, err := harness.RunSipp(testCtx(t, 90*time.Second), harness.SippRun{
			Scenario: scenario("register_digest.xml"), Users: usersCSV, Transport: "u1",
			// 400/s: at 1000/s on a loaded two-core machine, 20 to 90 of
			// 10,000 flows failed on sipp's retransmissions (unexpected
			// 100 Trying), with or without the backup.
			Target: srv.SIPAddr(), Rate: 250, Calls: n, Limit: 200,
			RecvTimeout: 10 * time.Second, Timeout: 80 * time.Second, Dir: t.TempDir(),
		})
		done <- sippOut{res, err}
	}()
	var before, after int
	if err := harness.Poll(testCtx(t, 30*time.Second), 30*time.Second, 100*time.Millisecond, func() (bool, error) {
		regs, err := srv.API().Registrations(testCtx(t, 10*time.Second), "")
		before = len(regs)
		return before >= n/4, err
	}); err != nil {
		t.Fatalf("waiting for a quarter of the registrations: %v (%d)", err, before)
	}
	backup := filepath.Join(dir, "live.db")
	cli(t, srv, time.Minute, "backup", backup)
	regs, err := srv.API().Registrations(testCtx(t, 10*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	after = len(regs)
	r := <-done
	sippFlows(t, r.res, r.err, n)
	if after >= n {
		t.Logf("the backup may have come after the load: %d bindings before it, %d after", before, after)
	}

	// Restore the copy into another data dir and serve it.
	restored := filepath.Join(dir, "restored", "data")
	if out := cli(t, srv, time.Minute, "restore", backup, "--data-dir", restored); !strings.Contains(out, "restored from") {
		t.Fatalf("restore: %s", out)
	}
	cfg, err := harness.LoopbackConfig(restored)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv2, err := harness.StartServer(ctx, serverBin, filepath.Join(dir, "restored"), cfg)
	if err != nil {
		t.Fatalf("start the restored server: %v", err)
	}
	t.Cleanup(func() { _ = srv2.Stop() })
	regs2, err := srv2.API().Registrations(testCtx(t, 10*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(regs2) < before || len(regs2) > after {
		t.Fatalf("restored server lists %d bindings; want between %d (before the backup) and %d (after)", len(regs2), before, after)
	}
	t.Logf("bindings: %d before the backup, %d after, %d in the restored server", before, after, len(regs2))
	exported := cli(t, srv2, time.Minute, "export")
	if lines := strings.Count(exported, "\n"); lines < n {
		t.Fatalf("restored server exports %d lines, want %d credentials", lines, n)
	}
	// The restored credentials serve: sipp registers the first 1,000 again.
	some := filepath.Join(dir, "some.csv")
	if err := harness.WriteUsersCSV(some, users[:1000]); err != nil {
		t.Fatal(err)
	}
	res, err := harness.RunSipp(testCtx(t, time.Minute), harness.SippRun{
		Scenario: scenario("register_digest.xml"), Users: some, Transport: "u1",
		Target: srv2.SIPAddr(), Rate: 400, Calls: 1000, Limit: 200,
		RecvTimeout: 10 * time.Second, Timeout: 50 * time.Second, Dir: t.TempDir(),
	})
	sippFlows(t, res, err, 1000)
}
