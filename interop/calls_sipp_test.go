//go:build interop

package interop

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// TestSippCalls1000 places 1,000 authenticated calls through the proxy
// over UDP and over TCP (sipp -t t1 on both sides): a sipp UAC (INVITE,
// 407, ACK, INVITE with Proxy-Authorization, 100, 180, 200, ACK, BYE, 200)
// calls a sipp UAS registered as a user, which answers. Every call must
// succeed on both sides, and once they have ended the API lists no live
// call: every BYE went through the proxy and ended its dialog.
func TestSippCalls1000(t *testing.T) {
	requireTools(t, "sipp")
	const n = 1000
	srv := startServer(t, nil)
	callers := harness.MakeUsers("caller", 50)
	callee := harness.MakeUsers("callee", 1)[0]
	if err := srv.API().CreateCredentials(testCtx(t, time.Minute), append(callers, callee), 8); err != nil {
		t.Fatalf("create credentials: %v", err)
	}
	csvPath := filepath.Join(t.TempDir(), "callers.csv")
	if err := harness.WriteUsersCSV(csvPath, callers); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, sippTransport string }{
		{"udp", "u1"},
		{"tcp", "t1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := harness.RunCalls(testCtx(t, 2*time.Minute), harness.CallRun{
				UACScenario: scenario("uac_invite_digest.xml"), UASScenario: scenario("uas_answer.xml"),
				RegisterScenario: scenario("register_digest.xml"),
				Callers:          csvPath, Callee: callee, Transport: tc.sippTransport, Target: srv.SIPAddr(),
				Rate: 200, Calls: n, Limit: 200, RecvTimeout: 10 * time.Second, Timeout: 90 * time.Second,
				Dir: t.TempDir(), BuffSize: 4194304, Hold: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatalf("calls: %v", err)
			}
			t.Logf("%s in %v", res.Summary(), time.Since(start).Round(time.Millisecond))
			uac := res.UAC
			if uac.ExitCode != 0 || uac.Failed != 0 || uac.Successful != n {
				t.Fatalf("sipp UAC: %s; want exit 0, %d successful, 0 failed\n%s", uac.Summary(), n, res.Diagnostics())
			}
			if res.UASExit != nil || res.UASFailed != 0 || res.UASSuccessful != n {
				t.Fatalf("sipp UAS: exit %v, %d successful, %d failed; want exit 0, %d successful, 0 failed\n%s",
					res.UASExit, res.UASSuccessful, res.UASFailed, n, res.Diagnostics())
			}
			// The proxy forgets a dialog once its BYE is answered.
			waitNoCalls(t, srv)
			// The callee was reached over the transport it registered on.
			if reg := oneRegistration(t, srv, callee.Name); reg.Transport != tc.name {
				t.Errorf("binding of the callee: transport %q, want %q", reg.Transport, tc.name)
			}
		})
	}
}
