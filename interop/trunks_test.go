//go:build interop

package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
	"github.com/sipwarden/sipwarden/webhook"
)

// TestSippTrunks (issue 16) drives connections with real sipp peers on
// loopback:
//   - a PBX (sipp UAC) authenticating as its trunk credential with its
//     caller's number in From reaches the outbound gateway (a sipp UAS);
//   - a carrier (sipp UAC from 127.0.0.9, an ip connection: never
//     challenged) calls a DID assigned to the trunk, which reaches the
//     trunk's PBX (a sipp UAS at its pbx_uri);
//   - the carrier's call to an unassigned DID gets 404.
func TestSippTrunks(t *testing.T) {
	requireTools(t, "sipp")
	gwPort, err := harness.FreeSIPPort()
	if err != nil {
		t.Fatal(err)
	}
	pbxPort, err := harness.FreeSIPPort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, func(c *harness.Config) {
		c.Routes = []harness.Route{{Name: "pstn", Prefix: "+1", Gateway: fmt.Sprintf("sip:127.0.0.1:%d", gwPort)}}
	})
	ctx := testCtx(t, 50*time.Second)
	api := srv.API()
	var trunk, carrier struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := api.Do(ctx, "POST", "/v1/connections", map[string]any{"name": "pbx-trunk", "caller_id_policy": "connection_numbers",
		"pbx_uri": fmt.Sprintf("sip:127.0.0.1:%d", pbxPort)}, 201, &trunk); err != nil {
		t.Fatal(err)
	}
	if err := api.Do(ctx, "POST", "/v1/credentials", map[string]any{"username": "trunk1", "password": "trunk-secret-pw-1",
		"connection_id": trunk.Data.ID}, 201, nil); err != nil {
		t.Fatal(err)
	}
	if err := api.Do(ctx, "POST", "/v1/numbers", map[string]any{"number": "+1 555 123 4567", "connection_id": trunk.Data.ID}, 201, nil); err != nil {
		t.Fatal(err)
	}
	if err := api.Do(ctx, "POST", "/v1/connections", map[string]any{"name": "carrier", "kind": "ip",
		"allowed_cidrs": []string{"127.0.0.9"}}, 201, &carrier); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trunkCSV := filepath.Join(dir, "trunk.csv")
	if err := os.WriteFile(trunkCSV, []byte("SEQUENTIAL\ntrunk1;trunk-secret-pw-1;+15551234567\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	callerCSV := filepath.Join(dir, "callers.csv")
	if err := os.WriteFile(callerCSV, []byte("SEQUENTIAL\n+442079460958\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const calls = 5

	run := func(t *testing.T, name, uasScenario, uacScenario, users, service, localIP string, uasPort int, uasExtra ...string) {
		t.Helper()
		var uas *harness.UAS
		if uasScenario != "" {
			var err error
			if uas, err = harness.StartUAS(ctx, scenario(uasScenario), service, filepath.Join(dir, name, "uas"), uasPort, calls, uasExtra...); err != nil {
				t.Fatal(err)
			}
		}
		res, err := harness.RunSipp(ctx, harness.SippRun{
			Scenario: scenario(uacScenario), Users: users, Transport: "u1", Target: srv.SIPAddr(), LocalIP: localIP,
			Rate: 10, Calls: calls, RecvTimeout: 5 * time.Second, Timeout: 20 * time.Second,
			Dir: filepath.Join(dir, name, "uac"), Extra: []string{"-s", service},
		})
		if err != nil {
			t.Fatalf("sipp UAC: %v", err)
		}
		if res.ExitCode != 0 || res.Successful != calls || res.Failed != 0 {
			t.Fatalf("sipp UAC: %s; want %d successful\n%s", res.Summary(), calls, res.Diagnostics())
		}
		if uas != nil {
			ok, failed, err := uas.Stop()
			if err != nil || ok != calls || failed != 0 {
				t.Fatalf("sipp UAS: %d successful, %d failed, %v; want %d successful\n%s", ok, failed, err, calls, uas.Output())
			}
		}
	}

	t.Run("pbx_caller_number_to_gateway", func(t *testing.T) {
		run(t, "pbx", "uas_answer.xml", "uac_trunk_invite.xml", trunkCSV, "+15559876543", "", gwPort)
	})
	t.Run("carrier_to_did_reaches_pbx", func(t *testing.T) {
		run(t, "carrier", "uas_answer.xml", "uac_invite_trusted.xml", callerCSV, "+15551234567", "127.0.0.9", pbxPort)
	})
	t.Run("carrier_to_unassigned_did_404", func(t *testing.T) {
		run(t, "unassigned", "", "uac_invite_refused.xml", callerCSV, "+15550000000", "127.0.0.9", 0)
	})
	t.Run("pbx_other_number_refused", func(t *testing.T) {
		// A number that is not the trunk's: the PBX's scenario gets 403 after
		// its authenticated INVITE and fails every call.
		other := filepath.Join(dir, "other.csv")
		if err := os.WriteFile(other, []byte("SEQUENTIAL\ntrunk1;trunk-secret-pw-1;+15550001111\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := harness.RunSipp(ctx, harness.SippRun{
			Scenario: scenario("uac_trunk_invite.xml"), Users: other, Transport: "u1", Target: srv.SIPAddr(),
			Rate: 10, Calls: 1, RecvTimeout: 3 * time.Second, Timeout: 15 * time.Second,
			Dir: filepath.Join(dir, "other"), Extra: []string{"-s", "+15559876543"},
		})
		if err != nil {
			t.Fatalf("sipp UAC: %v", err)
		}
		if res.Failed != 1 || !strings.Contains(harness.FileTail(res.ErrorsPath, 40)+harness.FileTail(res.OutputPath, 60), "403") {
			t.Fatalf("another number in From: %s; want the call failed on 403\n%s", res.Summary(), res.Diagnostics())
		}
	})
	t.Run("gateway_failover_and_digest", func(t *testing.T) {
		// A second trunk with its own gateways: the first answers 503, the
		// second challenges with 401 and verifies the trunk's gateway
		// credentials, which sipwarden answers.
		gw1, err := harness.FreeSIPPort()
		if err != nil {
			t.Fatal(err)
		}
		gw2, err := harness.FreeSIPPort()
		if err != nil {
			t.Fatal(err)
		}
		var trunk2 struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := api.Do(ctx, "POST", "/v1/connections", map[string]any{"name": "trunk-2", "caller_id_policy": "any",
			"outbound_routes": []map[string]any{{"prefix": "+44", "gateways": []string{
				fmt.Sprintf("sip:127.0.0.1:%d", gw1), fmt.Sprintf("sip:127.0.0.1:%d", gw2)}}},
			"gateway_username": "acct-1234", "gateway_password": "gw-secret-9876"}, 201, &trunk2); err != nil {
			t.Fatal(err)
		}
		if err := api.Do(ctx, "POST", "/v1/credentials", map[string]any{"username": "trunk2", "password": "trunk-secret-pw-2",
			"connection_id": trunk2.Data.ID}, 201, nil); err != nil {
			t.Fatal(err)
		}
		csv := filepath.Join(dir, "trunk2.csv")
		if err := os.WriteFile(csv, []byte("SEQUENTIAL\ntrunk2;trunk-secret-pw-2;+15551234567\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		down, err := harness.StartUAS(ctx, scenario("uas_unavailable.xml"), "gw1", filepath.Join(dir, "gw1"), gw1, calls)
		if err != nil {
			t.Fatal(err)
		}
		run(t, "failover", "uas_gateway_auth.xml", "uac_trunk_invite.xml", csv, "+442079460958", "", gw2,
			"-key", "user", "acct-1234", "-key", "pass", "gw-secret-9876")
		if ok, failed, err := down.Stop(); err != nil || ok != calls || failed != 0 {
			t.Fatalf("the 503 gateway: %d successful, %d failed, %v; want %d successful\n%s", ok, failed, err, calls, down.Output())
		}
	})
	waitNoCalls(t, srv)
}

// TestCarrierDIDRingsBaresip (issue 16): sipp as a carrier on an ip
// connection calls a DID assigned to a credential; baresip, registered
// as that credential, rings and answers (answermode=auto); the call ends
// with the carrier's BYE through the proxy.
func TestCarrierDIDRingsBaresip(t *testing.T) {
	requireTools(t, "sipp", "baresip")
	srv := startServer(t, nil)
	ctx := testCtx(t, 50*time.Second)
	api := srv.API()
	const user = "did-owner"
	pw := randomPassword()
	var cred struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := api.Do(ctx, "POST", "/v1/credentials", map[string]any{"username": user, "password": pw}, 201, &cred); err != nil {
		t.Fatal(err)
	}
	if err := api.Do(ctx, "POST", "/v1/numbers", map[string]any{"number": "tel:+1-555-123-0001", "credential_id": cred.Data.ID}, 201, nil); err != nil {
		t.Fatal(err)
	}
	if err := api.Do(ctx, "POST", "/v1/connections", map[string]any{"name": "carrier", "kind": "ip",
		"allowed_cidrs": []string{"127.0.0.9"}}, 201, nil); err != nil {
		t.Fatal(err)
	}
	phone := startBaresip(t, srv, user, pw, "udp")
	phone.waitRegistered(t, user, "udp")

	dir := t.TempDir()
	callerCSV := filepath.Join(dir, "callers.csv")
	if err := os.WriteFile(callerCSV, []byte("SEQUENTIAL\n+442079460958\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := harness.RunSipp(ctx, harness.SippRun{
		Scenario: scenario("uac_invite_trusted.xml"), Users: callerCSV, Transport: "u1", Target: srv.SIPAddr(), LocalIP: "127.0.0.9",
		Rate: 1, Calls: 1, RecvTimeout: 10 * time.Second, Timeout: 30 * time.Second,
		Dir: filepath.Join(dir, "uac"), Extra: []string{"-s", "+15551230001", "-d", "1200"},
	})
	if err != nil {
		t.Fatalf("sipp carrier: %v", err)
	}
	if res.ExitCode != 0 || res.Successful != 1 {
		t.Fatalf("sipp carrier: %s; want 1 successful call\n%s", res.Summary(), res.Diagnostics())
	}
	phone.waitOutput(t, "the carrier's call established", func(s string) bool {
		return strings.Contains(s, user+"@sipwarden.test: Call established: sip:+442079460958@")
	})
	// baresip reports a call the peer ended by BYE as "session closed:
	// Connection reset by peer"; sipp counted the call successful only
	// once its BYE was answered (by baresip, through the proxy).
	phone.waitOutput(t, "the carrier's BYE", func(s string) bool {
		return strings.Contains(s, "sip:+442079460958@127.0.0.1: session closed")
	})
	waitNoCalls(t, srv)
}

// TestBaresipWebhooks (issue 16): a webhook receiver (a real HTTP server
// in the test) gets the events of real baresip registrations and a call
// between them, each signed with the connection's secret; the connection
// and the number are made with the CLI.
func TestBaresipWebhooks(t *testing.T) {
	requireTools(t, "baresip")
	srv := startServer(t, nil)
	var mu sync.Mutex
	var secret string
	var events []string
	bad := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		var v struct {
			Data struct {
				Type string `json:"event_type"`
			} `json:"data"`
		}
		if !webhook.Verify(secret, r.Header.Get("Sipwarden-Signature"), b, time.Now(), time.Minute) || json.Unmarshal(b, &v) != nil {
			bad++
			w.WriteHeader(400)
			return
		}
		events = append(events, v.Data.Type)
		w.WriteHeader(204)
	}))
	defer rcv.Close()
	out := runCLI(t, srv, "", "connection", "create", "--name", "hooked", "--output", "json")
	var conn struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &conn); err != nil {
		t.Fatalf("connection create: %q %v", out, err)
	}
	var patched struct {
		Data struct {
			Secret string `json:"webhook_secret"`
		} `json:"data"`
	}
	if err := srv.API().Do(testCtx(t, 10*time.Second), "PATCH", "/v1/connections/"+conn.ID,
		map[string]any{"webhook_event_url": rcv.URL + "/events"}, 200, &patched); err != nil || patched.Data.Secret == "" {
		t.Fatalf("PATCH webhook_event_url: %v %+v", err, patched)
	}
	mu.Lock()
	secret = patched.Data.Secret
	mu.Unlock()
	a, b := "hook-caller", "hook-callee"
	pa, pb := randomPassword(), randomPassword()
	for _, u := range []struct{ name, pass string }{{a, pa}, {b, pb}} {
		runCLI(t, srv, u.pass+"\n", "credential", "create", "--username", u.name, "--connection", conn.ID, "--password-stdin")
	}
	callee := startBaresip(t, srv, b, pb, "udp")
	callee.waitRegistered(t, b, "udp")
	caller := startBaresip(t, srv, a, pa, "udp")
	caller.waitRegistered(t, a, "udp")
	caller.command(t, "/dial sip:"+b+"@sipwarden.test")
	caller.waitOutput(t, "established call to "+b, baresipEstablished(a, b))
	up := time.Now()
	holdBaresipCall(up)
	caller.command(t, "/hangup")
	callee.waitOutput(t, "BYE from the caller", baresipTerminated(a))
	waitNoCalls(t, srv)

	want := map[string]int{"registration.created": 2, "call.initiated": 1, "call.answered": 1, "call.hangup": 1}
	if err := harness.Poll(testCtx(t, 15*time.Second), 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		got := map[string]int{}
		for _, e := range events {
			got[e]++
		}
		for k, n := range want {
			if got[k] < n {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("webhook events %v, want at least %v: %v", events, want, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 {
		t.Errorf("%d deliveries without a valid signature", bad)
	}
}

// TestSippCallsWebhookReceiverDown (issue 16): the same sipp call load
// (1,000 authenticated calls at 200/s over UDP) without webhooks and with
// every user's connection sending its events to a receiver that is down
// (connection refused, then the failover URL, retried): no call fails in
// either run and the call set-up time does not grow, because events wait
// in the dispatcher's queue off the SIP path. The figures are logged.
func TestSippCallsWebhookReceiverDown(t *testing.T) {
	requireTools(t, "sipp")
	const n = 1000
	srv := startServer(t, nil)
	callers := harness.MakeUsers("whcaller", 20)
	callee := harness.MakeUsers("whcallee", 1)[0]
	if err := srv.API().CreateCredentials(testCtx(t, time.Minute), append(callers, callee), 8); err != nil {
		t.Fatalf("create credentials: %v", err)
	}
	csvPath := filepath.Join(t.TempDir(), "callers.csv")
	if err := harness.WriteUsersCSV(csvPath, callers); err != nil {
		t.Fatal(err)
	}
	run := func(name string) (p50, p99 int) {
		t.Helper()
		res, err := harness.RunCalls(testCtx(t, 90*time.Second), harness.CallRun{
			UACScenario: scenario("uac_invite_digest.xml"), UASScenario: scenario("uas_answer.xml"),
			RegisterScenario: scenario("register_digest.xml"),
			Callers:          csvPath, Callee: callee, Transport: "u1", Target: srv.SIPAddr(),
			Rate: 200, Calls: n, Limit: 200, RecvTimeout: 10 * time.Second, Timeout: 60 * time.Second,
			Dir: filepath.Join(t.TempDir(), name), BuffSize: 4194304, Hold: 100 * time.Millisecond, RTT: true,
		})
		if err != nil {
			t.Fatalf("%s: calls: %v", name, err)
		}
		if res.UAC.Failed != 0 || res.UAC.Successful != n || res.UASFailed != 0 {
			t.Fatalf("%s: %s; want %d successful calls on both sides\n%s", name, res.Summary(), n, res.Diagnostics())
		}
		p50, p99 = harness.Percentile(res.UAC.RTTs, 50), harness.Percentile(res.UAC.RTTs, 99)
		t.Logf("%s: %s; call set-up p50 %d ms, p99 %d ms", name, res.Summary(), p50, p99)
		return p50, p99
	}
	_, before := run("no-webhooks")
	dead, err := harness.FreeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.API().Do(testCtx(t, 10*time.Second), "PATCH", "/v1/connections/default", map[string]any{
		"webhook_event_url":          fmt.Sprintf("http://127.0.0.1:%d/a", dead),
		"webhook_event_failover_url": fmt.Sprintf("http://127.0.0.1:%d/b", dead),
	}, 200, nil); err != nil {
		t.Fatal(err)
	}
	_, after := run("receiver-down")
	if after > 2*before+50 {
		t.Errorf("call set-up p99 %d ms with the webhook receiver down, %d ms without", after, before)
	}
	var dels struct {
		Data []webhook.Delivery `json:"data"`
	}
	if err := srv.API().Do(testCtx(t, 10*time.Second), "GET", "/v1/connections/default/webhook_deliveries", nil, 200, &dels); err != nil {
		t.Fatal(err)
	}
	if len(dels.Data) == 0 || dels.Data[0].OK {
		t.Errorf("webhook deliveries %+v, want failed attempts", dels.Data)
	}
}
