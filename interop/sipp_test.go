//go:build interop

package interop

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// sippFlows checks a sipp run: exit status 0 (every call successful) and
// statistics with want successful and zero failed calls.
func sippFlows(t *testing.T, res harness.SippResult, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("sipp: %v", err)
	}
	t.Logf("sipp: %s", res.Summary())
	if res.ExitCode != 0 || res.Failed != 0 || res.Successful != want {
		t.Fatalf("sipp: %s; want exit 0, %d successful, 0 failed\n%s", res.Summary(), want, res.Diagnostics())
	}
}

// TestSippScenarioSelfTest runs the client scenarios against sipp's own
// stand-in registrar (testdata/sipp/uas_digest.xml), without sipwarden:
// when this fails, the scenarios or sipp are broken, not the server.
func TestSippScenarioSelfTest(t *testing.T) {
	requireTools(t, "sipp")
	users := harness.MakeUsers("self", 3)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	wrong := make([]harness.User, len(users))
	for i, u := range users {
		wrong[i] = harness.User{Name: u.Name, Password: "not-" + u.Password}
	}
	if err := harness.WriteUsersCSV(good, users); err != nil {
		t.Fatal(err)
	}
	if err := harness.WriteUsersCSV(bad, wrong); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, scenario, clientCSV, transport string
	}{
		{"digest-udp", "register_digest.xml", good, "u1"},
		{"digest-tcp", "register_digest.xml", good, "t1"},
		{"wrongpass-udp", "register_wrongpass.xml", bad, "u1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, err := harness.FreeSIPPort()
			if err != nil {
				t.Fatal(err)
			}
			uasDir := t.TempDir()
			uas, err := harness.StartProc(harness.ProcSpec{
				Name: "sipp uas", Path: "sipp", Dir: uasDir, LogPath: filepath.Join(uasDir, "uas.out"),
				Args: []string{"-sf", scenario("uas_digest.xml"), "-inf", good, "-t", tc.transport,
					"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-nostdin", "-m", strconv.Itoa(len(users)),
					"-trace_err", "-error_file", filepath.Join(uasDir, "errors.log")},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = uas.Stop(2 * time.Second) })
			// The stand-in must be listening before the client starts.
			if err := harness.Poll(testCtx(t, 10*time.Second), 10*time.Second, 50*time.Millisecond, func() (bool, error) {
				if tc.transport == "t1" {
					c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
					if err == nil {
						c.Close()
					}
					return err == nil, nil
				}
				c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
				if err == nil {
					c.Close()
				}
				return err != nil, nil // bound by the stand-in
			}); err != nil {
				t.Fatalf("sipp stand-in registrar not listening: %v\n%s", err, harness.FileTail(filepath.Join(uasDir, "uas.out"), 20))
			}
			// The stand-in verifies against the same SEQUENTIAL file: one call at a time.
			res, err := harness.RunSipp(testCtx(t, time.Minute), harness.SippRun{
				Scenario: scenario(tc.scenario), Users: tc.clientCSV, Transport: tc.transport,
				Target: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
				Rate:   5, Calls: len(users), Limit: 1, RecvTimeout: 5 * time.Second, Timeout: 45 * time.Second,
				Dir: t.TempDir(),
			})
			sippFlows(t, res, err, len(users))
		})
	}
}

// TestSippRegister1000 registers 1,000 users with digest flows (REGISTER,
// 401, REGISTER with Authorization, 200) over UDP, over one TCP connection
// and over a TCP connection per flow, every flow succeeding, and then the
// API lists exactly one binding per user over the transport of the last
// run (each run's Contact is a new device: the last device wins).
func TestSippRegister1000(t *testing.T) {
	requireTools(t, "sipp")
	const n = 1000
	srv := startServer(t, nil)
	users := harness.MakeUsers("sipp", n)
	start := time.Now()
	if err := srv.API().CreateCredentials(testCtx(t, 3*time.Minute), users, 16); err != nil {
		t.Fatalf("create %d credentials: %v", n, err)
	}
	t.Logf("created %d credentials through the API in %v", n, time.Since(start).Round(time.Millisecond))
	csvPath := filepath.Join(t.TempDir(), "users.csv")
	if err := harness.WriteUsersCSV(csvPath, users); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, sippTransport, transport string
	}{
		{"udp", "u1", "udp"},
		{"tcp-one-connection", "t1", "tcp"},
		{"tcp-connection-per-flow", "tn", "tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			localPort, err := harness.FreeSIPPort()
			if err != nil {
				t.Fatal(err)
			}
			res, err := harness.RunSipp(testCtx(t, 2*time.Minute), harness.SippRun{
				Scenario: scenario("register_digest.xml"), Users: csvPath, Transport: tc.sippTransport,
				Target: srv.SIPAddr(), Rate: 200, Calls: n, Limit: n, LocalPort: localPort,
				RecvTimeout: 10 * time.Second, Timeout: 90 * time.Second, Dir: t.TempDir(),
			})
			sippFlows(t, res, err, n)

			regs, err := srv.API().Registrations(testCtx(t, 30*time.Second), "")
			if err != nil {
				t.Fatalf("GET /v1/registrations: %v", err)
			}
			perUser := map[string]int{}
			sources := map[string]int{}
			for _, r := range regs {
				perUser[r.Username]++
				sources[r.Source]++
				if r.Transport != tc.transport {
					t.Errorf("registration of %s: transport got %q, want %q", r.Username, r.Transport, tc.transport)
				}
			}
			if len(regs) != n || len(perUser) != n {
				t.Fatalf("API lists %d registrations of %d users, want %d of %d", len(regs), len(perUser), n, n)
			}
			for _, u := range users {
				if perUser[u.Name] != 1 {
					t.Fatalf("user %s: %d registrations, want 1", u.Name, perUser[u.Name])
				}
			}
			sippAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(localPort))
			switch tc.sippTransport {
			case "u1":
				if len(sources) != 1 || sources[sippAddr] != n {
					t.Errorf("UDP sources: got %v, want all %d from sipp's socket %s", sources, n, sippAddr)
				}
			case "t1":
				// sipp binds its one connection to its -p port.
				if len(sources) != 1 {
					t.Errorf("TCP sources: got %v, want one connection", sources)
				}
			case "tn":
				if len(sources) < 2 || sources[sippAddr] != 0 {
					t.Errorf("TCP sources: got %d distinct, want a connection per flow", len(sources))
				}
				t.Logf("%d distinct TCP sources for %d flows", len(sources), n)
			}
			if r := regs[0]; r.ExpiresIn <= 0 || r.ExpiresIn > 3600 {
				t.Errorf("registration of %s: expires_in got %d, want 1..3600", r.Username, r.ExpiresIn)
			}
		})
	}
}

// TestSippWrongPassword: a wrong password, and an unknown user, get 403
// after the challenge, and no binding is made.
func TestSippWrongPassword(t *testing.T) {
	requireTools(t, "sipp")
	// 50 failures from sipp's address would ban it (guard.max_failures)
	// and turn the first-leg 401s into 403s; bans are tested elsewhere.
	srv := startServer(t, func(c *harness.Config) { c.ExemptCIDRs = []string{"127.0.0.0/8"} })
	users := harness.MakeUsers("wrongpw", 20)
	if err := srv.API().CreateCredentials(testCtx(t, time.Minute), users, 4); err != nil {
		t.Fatal(err)
	}
	var flows []harness.User
	for _, u := range users {
		flows = append(flows, harness.User{Name: u.Name, Password: "not-" + u.Password})
	}
	for i := range 5 {
		flows = append(flows, harness.User{Name: fmt.Sprintf("nosuchuser%02d", i), Password: "whatever-password"})
	}
	csvPath := filepath.Join(t.TempDir(), "wrong.csv")
	if err := harness.WriteUsersCSV(csvPath, flows); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"u1", "t1"} {
		t.Run(tr, func(t *testing.T) {
			res, err := harness.RunSipp(testCtx(t, time.Minute), harness.SippRun{
				Scenario: scenario("register_wrongpass.xml"), Users: csvPath, Transport: tr,
				Target: srv.SIPAddr(), Rate: 50, Calls: len(flows),
				RecvTimeout: 5 * time.Second, Timeout: 45 * time.Second, Dir: t.TempDir(),
			})
			sippFlows(t, res, err, len(flows))
			regs, err := srv.API().Registrations(testCtx(t, 30*time.Second), "")
			if err != nil {
				t.Fatalf("GET /v1/registrations: %v", err)
			}
			if len(regs) != 0 {
				t.Fatalf("got %d registrations after wrong passwords (%+v), want none", len(regs), regs[0])
			}
		})
	}
}
