//go:build interop

package interop

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// TestKill9RightAfterDeletions (issue 15 item 5): a DELETE of a
// credential and a DELETE of a registration, each answered 204, then
// kill -9 before the next batched write of the bindings (the flush
// interval is 2 s, the kill comes within milliseconds): after the restart
// neither registration is back. Before the fix both came back, and calls
// to the deleted user rang its phone.
func TestKill9RightAfterDeletions(t *testing.T) {
	requireTools(t, "sipp")
	dir := t.TempDir()
	cfg, err := harness.LoopbackConfig(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	const flush = 2 * time.Second
	cfg.FlushInterval = flush.String()
	start := func() *harness.Server {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv, err := harness.StartServer(ctx, serverBin, dir, cfg)
		if err != nil {
			t.Fatalf("start sipwarden: %v", err)
		}
		t.Cleanup(func() { _ = srv.Stop() })
		return srv
	}
	srv := start()
	users := harness.MakeUsers("gone", 3)
	if err := srv.API().CreateCredentials(testCtx(t, time.Minute), users, 2); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(t.TempDir(), "users.csv")
	if err := harness.WriteUsersCSV(csvPath, users); err != nil {
		t.Fatal(err)
	}
	res, err := harness.RunSipp(testCtx(t, time.Minute), harness.SippRun{
		Scenario: scenario("register_digest.xml"), Users: csvPath, Transport: "u1",
		Target: srv.SIPAddr(), Rate: 10, Calls: len(users), RecvTimeout: 5 * time.Second,
		Timeout: 30 * time.Second, Dir: t.TempDir(),
	})
	sippFlows(t, res, err, len(users))
	time.Sleep(flush + flush/2) // the registrations are stored
	ids := listCredentials(t, srv)
	regs, err := srv.API().Registrations(testCtx(t, 10*time.Second), users[1].Name)
	if err != nil || len(regs) != 1 {
		t.Fatalf("registrations of %s: %+v %v", users[1].Name, regs, err)
	}
	// A batched write comes every 2 s; the kill comes milliseconds after
	// the deletions, before the next one (but for a 1% chance).
	if code, err := apiJSON(testCtx(t, 5*time.Second), srv, "DELETE", "/v1/credentials/"+ids[users[0].Name], nil, nil); code != 204 {
		t.Fatalf("delete credential %s: %d %v", users[0].Name, code, err)
	}
	if code, err := apiJSON(testCtx(t, 5*time.Second), srv, "DELETE", "/v1/registrations/"+regs[0].ID, nil, nil); code != 204 {
		t.Fatalf("delete registration of %s: %d %v", users[1].Name, code, err)
	}
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	if err := harness.Poll(testCtx(t, 10*time.Second), 10*time.Second, 10*time.Millisecond, func() (bool, error) { return srv.Exited(), nil }); err != nil {
		t.Fatalf("sipwarden (pid %d) still running after SIGKILL", pid)
	}

	srv = start()
	after, err := srv.API().Registrations(testCtx(t, 10*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range after {
		got[r.Username]++
	}
	if got[users[0].Name] != 0 || got[users[1].Name] != 0 || got[users[2].Name] != 1 {
		t.Fatalf("after kill -9 and restart: registrations by user %v, want only %s's", got, users[2].Name)
	}
}
