//go:build interop

package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// apiJSON calls the API and decodes the answer into out; it returns the
// status (0 when the server did not answer).
func apiJSON(ctx context.Context, srv *harness.Server, method, path string, body, out any) (int, error) {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+srv.Config.HTTP+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+srv.Config.APIKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if out != nil && res.StatusCode < 300 {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			return res.StatusCode, err
		}
	}
	return res.StatusCode, nil
}

type credRow struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// listCredentials returns every credential by username.
func listCredentials(t *testing.T, srv *harness.Server) map[string]string {
	t.Helper()
	out := map[string]string{}
	after := ""
	for range 1000 {
		q := url.Values{"page[size]": {"1000"}}
		if after != "" {
			q.Set("page[after]", after)
		}
		var page struct {
			Data []credRow `json:"data"`
			Meta struct {
				NextCursor string `json:"next_cursor"`
			} `json:"meta"`
		}
		if code, err := apiJSON(testCtx(t, 30*time.Second), srv, "GET", "/v1/credentials?"+q.Encode(), nil, &page); code != 200 || err != nil {
			t.Fatalf("list credentials: %d %v", code, err)
		}
		for _, c := range page.Data {
			out[c.Username] = c.ID
		}
		if page.Meta.NextCursor == "" {
			return out
		}
		after = page.Meta.NextCursor
	}
	t.Fatal("list credentials: too many pages")
	return nil
}

// TestKill9KeepsConfirmedState loads the server with sipp REGISTERs and
// API writes, kills it with SIGKILL, checks the store file with bbolt's
// consistency check, restarts it on the same data, and compares: every
// credential the API confirmed (201) is there, every one it confirmed
// deleted (204) is not, and every binding older than the flush interval
// at the time of the kill is restored.
func TestKill9KeepsConfirmedState(t *testing.T) {
	requireTools(t, "sipp")
	dir := t.TempDir()
	cfg, err := harness.LoopbackConfig(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	const flush = 200 * time.Millisecond
	cfg.FlushInterval = flush.String()
	start := func() *harness.Server {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv, err := harness.StartServer(ctx, serverBin, dir, cfg)
		if err != nil {
			t.Fatalf("start sipwarden: %v", err)
		}
		return srv
	}
	srv := start()
	t.Cleanup(func() {
		if srv != nil {
			_ = srv.Stop()
		}
	})

	// Phase 1: 300 users created and registered, then 20 deleted; all
	// confirmed, and then older than the flush interval.
	users := harness.MakeUsers("crash", 300)
	if err := srv.API().CreateCredentials(testCtx(t, 2*time.Minute), users, 8); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(t.TempDir(), "users.csv")
	if err := harness.WriteUsersCSV(csvPath, users); err != nil {
		t.Fatal(err)
	}
	res, err := harness.RunSipp(testCtx(t, 2*time.Minute), harness.SippRun{
		Scenario: scenario("register_digest.xml"), Users: csvPath, Transport: "u1",
		Target: srv.SIPAddr(), Rate: 200, Calls: len(users), RecvTimeout: 5 * time.Second,
		Timeout: 90 * time.Second, Dir: t.TempDir(),
	})
	sippFlows(t, res, err, len(users))
	ids := listCredentials(t, srv)
	deleted := map[string]bool{}
	for _, u := range users[:20] {
		if code, err := apiJSON(testCtx(t, 10*time.Second), srv, "DELETE", "/v1/credentials/"+ids[u.Name], nil, nil); code != 204 {
			t.Fatalf("delete %s: %d %v", u.Name, code, err)
		}
		deleted[u.Name] = true
	}
	time.Sleep(3 * flush)
	confirmed, err := srv.API().Registrations(testCtx(t, 30*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(confirmed) != len(users)-len(deleted) {
		t.Fatalf("before the kill: %d registrations, want %d", len(confirmed), len(users)-len(deleted))
	}

	// Phase 2: load (sipp REGISTERs of other users, API creations), then
	// kill -9 in the middle of it.
	load := harness.MakeUsers("load", 2000)
	if err := srv.API().CreateCredentials(testCtx(t, 2*time.Minute), load[:500], 8); err != nil {
		t.Fatal(err)
	}
	loadCSV := filepath.Join(t.TempDir(), "load.csv")
	if err := harness.WriteUsersCSV(loadCSV, load[:500]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = harness.RunSipp(ctx, harness.SippRun{
			Scenario: scenario("register_digest.xml"), Users: loadCSV, Transport: "u1",
			Target: srv.SIPAddr(), Rate: 300, Calls: 500, RecvTimeout: 2 * time.Second,
			Timeout: 60 * time.Second, Dir: t.TempDir(),
		})
	})
	var mu sync.Mutex
	created := map[string]bool{}
	wg.Go(func() {
		for _, u := range load[500:] {
			if ctx.Err() != nil {
				return
			}
			code, _ := apiJSON(ctx, srv, "POST", "/v1/credentials", map[string]any{"username": u.Name, "password": u.Password}, nil)
			if code == 201 {
				mu.Lock()
				created[u.Name] = true
				mu.Unlock()
			}
		}
	})
	time.Sleep(1500 * time.Millisecond)
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	if err := harness.Poll(testCtx(t, 10*time.Second), 10*time.Second, 20*time.Millisecond, func() (bool, error) { return srv.Exited(), nil }); err != nil {
		t.Fatalf("sipwarden (pid %d) still running after SIGKILL", pid)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	nCreated := len(created)
	mu.Unlock()
	if nCreated == 0 {
		t.Fatal("no credential was created during the load: the kill came too early to test anything")
	}
	t.Logf("killed pid %d after %d credentials were confirmed during the load", pid, nCreated)

	// The file passes bbolt's consistency check.
	dbPath := filepath.Join(cfg.DataDir, "sipwarden.db")
	bdb, err := bolt.Open(dbPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open %s after the kill: %v", dbPath, err)
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	bdb.Close()
	if err != nil {
		t.Fatalf("bbolt check after kill -9: %v", err)
	}

	srv = start()
	have := listCredentials(t, srv)
	for _, u := range append(users, load[:500]...) {
		if _, ok := have[u.Name]; ok == deleted[u.Name] {
			t.Errorf("credential %s: present %v after restart, want %v", u.Name, ok, !deleted[u.Name])
		}
	}
	for name := range created {
		if _, ok := have[name]; !ok {
			t.Errorf("credential %s, confirmed during the load, is gone after the restart", name)
		}
	}
	regs, err := srv.API().Registrations(testCtx(t, 30*time.Second), "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]harness.Registration{}
	for _, r := range regs {
		byID[r.ID] = r
		if deleted[r.Username] {
			t.Errorf("binding of deleted credential %s restored: %+v", r.Username, r)
		}
	}
	for _, want := range confirmed {
		got, ok := byID[want.ID]
		if !ok || got.Contact != want.Contact || got.Source != want.Source || got.Transport != want.Transport {
			t.Errorf("binding %s of %s: got %+v, want %+v", want.ID, want.Username, got, want)
		}
	}
	t.Logf("after restart: %d credentials, %d registrations (%d confirmed before the load)", len(have), len(regs), len(confirmed))
	if t.Failed() {
		t.Logf("sipwarden log:\n%s", srv.LogTail(40))
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("stop after restart: %v", err)
	}
	srv = nil

}
