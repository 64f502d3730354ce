package metrics_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/webhook"
)

// TestLint lints every metric family of the registry, runtime collectors
// included, and each of sipwarden's collectors on its own.
func TestLint(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{Version: "test"})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.ResponseSent("REGISTER", 200) // the one family with no series at start
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sipwarden_") {
			continue
		}
		n++
		problems, err := testutil.CollectAndLint(reg, mf.GetName())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
	if n != 28 {
		t.Errorf("got %d sipwarden metric families, want 28 (a new one? list it in README.md and the dashboard)", n)
	}
}

// TestExportedAtZero checks that the metrics the proxy and the guard will
// feed exist before anything calls them.
func TestExportedAtZero(t *testing.T) {
	_, reg := newMetrics(t, metrics.Options{Version: "v1.2.3"})
	want := `
# HELP sipwarden_proxy_dialogs_active Confirmed dialogs (calls) tracked by the proxy, at scrape time.
# TYPE sipwarden_proxy_dialogs_active gauge
sipwarden_proxy_dialogs_active 0
# HELP sipwarden_guard_bans_active Source IPs banned now, at scrape time.
# TYPE sipwarden_guard_bans_active gauge
sipwarden_guard_bans_active 0
# HELP sipwarden_proxy_calls_attempted_total INVITEs outside a dialog accepted for routing (authenticated or from a trusted peer).
# TYPE sipwarden_proxy_calls_attempted_total counter
sipwarden_proxy_calls_attempted_total 0
# HELP sipwarden_sip_connections_open Open TCP, TLS, WS and WSS connections, by transport.
# TYPE sipwarden_sip_connections_open gauge
sipwarden_sip_connections_open{transport="tcp"} 0
sipwarden_sip_connections_open{transport="tls"} 0
sipwarden_sip_connections_open{transport="ws"} 0
sipwarden_sip_connections_open{transport="wss"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"sipwarden_proxy_dialogs_active", "sipwarden_guard_bans_active",
		"sipwarden_proxy_calls_attempted_total", "sipwarden_sip_connections_open"); err != nil {
		t.Error(err)
	}
	for _, name := range []string{
		"sipwarden_build_info", "sipwarden_proxy_calls_failed_total", "sipwarden_proxy_forwarded_requests_total",
		"sipwarden_proxy_invite_first_response_seconds", "sipwarden_guard_bans_issued_total", "sipwarden_guard_rejected_total",
		"sipwarden_sip_transactions_inflight", "sipwarden_store_commit_duration_seconds", "sipwarden_auth_outcomes_total",
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s: got %d series (err %v), want it exported at start", name, n, err)
		}
	}
}

func TestMethodAPI(t *testing.T) {
	m, reg := newMetrics(t, metrics.Options{Version: "test"})
	m.RequestReceived("REGISTER", "UDP")
	m.RequestReceived("REGISTER", "udp")
	m.RequestReceived("FOO", "SCTP") // made-up values land in "other"
	m.ResponseSent("REGISTER", 401)
	m.ResponseSent("REGISTER", 200)
	m.ResponseSent("REGISTER", 200)
	m.ResponseSent("FOO", 405)
	m.ResponseSent("OPTIONS", 42)
	m.RequestDone()
	m.AuthOutcome(metrics.SchemeDigest, "mismatch")
	m.AuthOutcome(metrics.SchemeBearer, "ok")
	m.RegisterHandled(time.Millisecond, 1, 2, 3, 4)
	m.BindingExpired()
	m.StoreCommit(metrics.CommitRecords, time.Millisecond, errors.New("disk full"))
	m.CallAttempted()
	m.CallAttempted()
	m.CallFinished(200)
	m.CallFinished(486)
	m.CallFinished(1)
	m.Forwarded("INVITE")
	m.FirstResponse(20 * time.Millisecond)
	m.SetActiveDialogs(func() int { return 7 })
	m.BanIssued()
	m.SetBansActive(func() int { return 3 })
	m.Rejected(metrics.RejectInFlight)
	m.Rejected("made-up")
	m.SetConnectionsOpen(func(tp string) int { return len(tp) })
	m.SetBindings(func() map[string]int { return map[string]int{"udp": 5, "tls": 1, "sctp": 2} })

	want := `
# HELP sipwarden_sip_requests_total SIP requests received, by method and transport (retransmissions absorbed by the transaction layer are not counted).
# TYPE sipwarden_sip_requests_total counter
`
	for _, meth := range []string{"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "SUBSCRIBE", "NOTIFY", "REFER", "INFO", "MESSAGE", "PRACK", "UPDATE", "PUBLISH", "other"} {
		for _, tp := range []string{"udp", "tcp", "tls", "ws", "wss", "other"} {
			v := "0"
			switch {
			case meth == "REGISTER" && tp == "udp":
				v = "2"
			case meth == "other" && tp == "other":
				v = "1"
			}
			want += `sipwarden_sip_requests_total{method="` + meth + `",transport="` + tp + `"} ` + v + "\n"
		}
	}
	want += `
# HELP sipwarden_sip_responses_total SIP responses sent by sipwarden's handlers, by request method, status class (1xx..6xx) and code.
# TYPE sipwarden_sip_responses_total counter
sipwarden_sip_responses_total{class="2xx",code="200",method="REGISTER"} 2
sipwarden_sip_responses_total{class="4xx",code="401",method="REGISTER"} 1
sipwarden_sip_responses_total{class="4xx",code="405",method="other"} 1
sipwarden_sip_responses_total{class="other",code="other",method="OPTIONS"} 1
# HELP sipwarden_sip_transactions_inflight SIP server transactions whose handler is running (for a proxied INVITE: until its final response is relayed).
# TYPE sipwarden_sip_transactions_inflight gauge
sipwarden_sip_transactions_inflight 2
# HELP sipwarden_registrar_bindings Bindings in the location table, by transport, counted at scrape time.
# TYPE sipwarden_registrar_bindings gauge
sipwarden_registrar_bindings{transport="udp"} 5
sipwarden_registrar_bindings{transport="tcp"} 0
sipwarden_registrar_bindings{transport="tls"} 1
sipwarden_registrar_bindings{transport="ws"} 0
sipwarden_registrar_bindings{transport="wss"} 0
sipwarden_registrar_bindings{transport="other"} 2
# HELP sipwarden_registrar_registrations_total Bindings created by REGISTER (a new device or contact).
# TYPE sipwarden_registrar_registrations_total counter
sipwarden_registrar_registrations_total 1
# HELP sipwarden_registrar_refreshes_total Bindings refreshed in place by REGISTER.
# TYPE sipwarden_registrar_refreshes_total counter
sipwarden_registrar_refreshes_total 2
# HELP sipwarden_registrar_unregistrations_total Bindings removed by REGISTER (expires=0 or Contact: *).
# TYPE sipwarden_registrar_unregistrations_total counter
sipwarden_registrar_unregistrations_total 3
# HELP sipwarden_registrar_replacements_total Bindings replaced by a newer device beyond registrar.max_contacts (last device wins).
# TYPE sipwarden_registrar_replacements_total counter
sipwarden_registrar_replacements_total 4
# HELP sipwarden_registrar_expirations_total Bindings removed because they expired.
# TYPE sipwarden_registrar_expirations_total counter
sipwarden_registrar_expirations_total 1
# HELP sipwarden_store_commit_failures_total bbolt commits that failed, by kind (bindings, records).
# TYPE sipwarden_store_commit_failures_total counter
sipwarden_store_commit_failures_total{kind="bindings"} 0
sipwarden_store_commit_failures_total{kind="records"} 1
# HELP sipwarden_proxy_calls_attempted_total INVITEs outside a dialog accepted for routing (authenticated or from a trusted peer).
# TYPE sipwarden_proxy_calls_attempted_total counter
sipwarden_proxy_calls_attempted_total 2
# HELP sipwarden_proxy_calls_answered_total Proxied calls whose final response was a 2xx.
# TYPE sipwarden_proxy_calls_answered_total counter
sipwarden_proxy_calls_answered_total 1
# HELP sipwarden_proxy_calls_failed_total Proxied calls that ended with a final response of 300 to 699, by status code.
# TYPE sipwarden_proxy_calls_failed_total counter
sipwarden_proxy_calls_failed_total{code="404"} 0
sipwarden_proxy_calls_failed_total{code="408"} 0
sipwarden_proxy_calls_failed_total{code="480"} 0
sipwarden_proxy_calls_failed_total{code="486"} 1
sipwarden_proxy_calls_failed_total{code="487"} 0
sipwarden_proxy_calls_failed_total{code="500"} 0
sipwarden_proxy_calls_failed_total{code="503"} 0
sipwarden_proxy_calls_failed_total{code="603"} 0
sipwarden_proxy_calls_failed_total{code="other"} 1
# HELP sipwarden_proxy_dialogs_active Confirmed dialogs (calls) tracked by the proxy, at scrape time.
# TYPE sipwarden_proxy_dialogs_active gauge
sipwarden_proxy_dialogs_active 7
# HELP sipwarden_guard_bans_issued_total Source IPs banned after repeated authentication failures.
# TYPE sipwarden_guard_bans_issued_total counter
sipwarden_guard_bans_issued_total 1
# HELP sipwarden_guard_bans_active Source IPs banned now, at scrape time.
# TYPE sipwarden_guard_bans_active gauge
sipwarden_guard_bans_active 3
# HELP sipwarden_guard_rejected_total Requests and connections refused by bans and limits before authentication, by reason.
# TYPE sipwarden_guard_rejected_total counter
sipwarden_guard_rejected_total{reason="banned"} 0
sipwarden_guard_rejected_total{reason="cluster_unavailable"} 0
sipwarden_guard_rejected_total{reason="connections"} 0
sipwarden_guard_rejected_total{reason="connections_per_ip"} 0
sipwarden_guard_rejected_total{reason="duplicate"} 0
sipwarden_guard_rejected_total{reason="inflight"} 1
sipwarden_guard_rejected_total{reason="message_size"} 0
sipwarden_guard_rejected_total{reason="other"} 1
sipwarden_guard_rejected_total{reason="overload"} 0
sipwarden_guard_rejected_total{reason="queue_full"} 0
sipwarden_guard_rejected_total{reason="throttled"} 0
sipwarden_guard_rejected_total{reason="unparsable"} 0
sipwarden_guard_rejected_total{reason="user_agent"} 0
# HELP sipwarden_sip_connections_open Open TCP, TLS, WS and WSS connections, by transport.
# TYPE sipwarden_sip_connections_open gauge
sipwarden_sip_connections_open{transport="tcp"} 3
sipwarden_sip_connections_open{transport="tls"} 3
sipwarden_sip_connections_open{transport="ws"} 2
sipwarden_sip_connections_open{transport="wss"} 3
`
	names := []string{
		"sipwarden_sip_requests_total", "sipwarden_sip_responses_total", "sipwarden_sip_transactions_inflight",
		"sipwarden_registrar_bindings", "sipwarden_registrar_registrations_total", "sipwarden_registrar_refreshes_total",
		"sipwarden_registrar_unregistrations_total", "sipwarden_registrar_replacements_total", "sipwarden_registrar_expirations_total",
		"sipwarden_store_commit_failures_total", "sipwarden_proxy_calls_attempted_total", "sipwarden_proxy_calls_answered_total",
		"sipwarden_proxy_calls_failed_total", "sipwarden_proxy_dialogs_active", "sipwarden_guard_bans_issued_total",
		"sipwarden_guard_bans_active", "sipwarden_guard_rejected_total", "sipwarden_sip_connections_open",
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	auth := map[[2]string]float64{{"digest", "mismatch"}: 1, {"bearer", "ok"}: 1, {"digest", "ok"}: 0}
	for k, v := range auth {
		if got := counterValue(t, reg, "sipwarden_auth_outcomes_total", map[string]string{"scheme": k[0], "result": k[1]}); got != v {
			t.Errorf("auth %v: got %v, want %v", k, got, v)
		}
	}
	if got := histogramCount(t, reg, "sipwarden_proxy_invite_first_response_seconds"); got != 1 {
		t.Errorf("first response observations: got %d, want 1", got)
	}
	if got := histogramCount(t, reg, "sipwarden_registrar_register_duration_seconds"); got != 1 {
		t.Errorf("REGISTER duration observations: got %d, want 1", got)
	}
}

// TestHotPathDoesNotAllocate holds the per-request cost of the methods a
// REGISTER goes through to zero allocations (once a response code has
// been seen).
func TestHotPathDoesNotAllocate(t *testing.T) {
	m, _ := newMetrics(t, metrics.Options{Version: "test"})
	m.ResponseSent("REGISTER", 200)
	allocs := testing.AllocsPerRun(1000, func() {
		m.RequestReceived("REGISTER", "UDP")
		m.AuthOutcome(metrics.SchemeDigest, "ok")
		m.RegisterHandled(300*time.Microsecond, 1, 0, 0, 0)
		m.ResponseSent("REGISTER", 200)
		m.RequestDone()
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per REGISTER, want 0", allocs)
	}
}

func BenchmarkRegisterMetrics(b *testing.B) {
	m, _ := newMetrics(b, metrics.Options{Version: "bench"})
	b.ReportAllocs()
	for b.Loop() {
		m.RequestReceived("REGISTER", "UDP")
		m.AuthOutcome(metrics.SchemeDigest, "ok")
		m.RegisterHandled(300*time.Microsecond, 0, 1, 0, 0)
		m.ResponseSent("REGISTER", 200)
		m.RequestDone()
	}
}

func BenchmarkRegisterMetricsParallel(b *testing.B) {
	m, _ := newMetrics(b, metrics.Options{Version: "bench"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.RequestReceived("REGISTER", "UDP")
			m.AuthOutcome(metrics.SchemeDigest, "ok")
			m.RegisterHandled(300*time.Microsecond, 0, 1, 0, 0)
			m.ResponseSent("REGISTER", 200)
			m.RequestDone()
		}
	})
}

// counterValue returns the value of the series of name with exactly the
// given labels.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			if len(mt.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range mt.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return mt.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0
}

// TestREADMEListsEveryMetric keeps the README's metrics table and the
// registry in step, both ways.
func TestREADMEListsEveryMetric(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `sipwarden_"); ok {
			name, _, _ := strings.Cut(rest, "`")
			listed["sipwarden_"+name] = true
		}
	}
	m, reg := newMetrics(t, metrics.Options{})
	m.ResponseSent("REGISTER", 200)
	// The webhook dispatcher registers its own on the same registry.
	if _, err := webhook.New(webhook.Config{}, nil, reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
		if !listed[mf.GetName()] {
			t.Errorf("%s is not listed in README.md", mf.GetName())
		}
	}
	for name := range listed {
		if !exported[name] {
			t.Errorf("README.md lists %s, which is not exported", name)
		}
	}
}

// newMetrics returns metrics registered on a registry of their own.
func newMetrics(t testing.TB, opts metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}
