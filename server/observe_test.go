package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/server/servertest"
	"github.com/sipwarden/sipwarden/store"
)

// scrape fetches url (a /metrics endpoint) and returns every sample as
// name{label="value",...} (labels sorted by name, as exposed) -> value;
// histograms give their _count and _sum.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d", url, res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("scrape %s: parse: %v", url, err)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			key := name + labelString(m.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labelString(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labelString(m.GetLabel())] = m.GetHistogram().GetSampleSum()
			default:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.GetName() + `="` + l.GetValue() + `"`
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// wantSamples fails for every sample of want whose scraped value differs
// (a missing sample counts as a difference).
func wantSamples(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, ok := got[k]
		if !ok {
			t.Errorf("%s: not exported", k)
			continue
		}
		if v != want[k] {
			t.Errorf("%s: got %v, want %v", k, v, want[k])
		}
	}
}

// scrapeSettled scrapes once no SIP handler is running any more: a client
// may see a response before the handler that sent it has counted it and
// returned.
func (ts *testServer) scrapeSettled(t *testing.T) map[string]float64 {
	t.Helper()
	var got map[string]float64
	waitFor(t, "no SIP transaction in flight", 5*time.Second, func() bool {
		got = scrape(t, ts.metricsURL())
		return got["sipwarden_sip_transactions_inflight"] == 0
	})
	return got
}

func (ts *testServer) metricsURL() string {
	if a := ts.Addr("metrics"); a != "" {
		return "http://" + a + "/metrics"
	}
	return "http://" + ts.Addr("http") + "/metrics"
}

// TestMetricsAfterRegistrations runs registrations, a refresh, an
// unregistration, a wrong password, an unknown user and an OPTIONS over
// real sockets, scrapes /metrics over HTTP and checks the exact values.
func TestMetricsAfterRegistrations(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	udp, tcp := newPhone(t, ts, "udp"), newPhone(t, ts, "tcp")

	wantStatus(t, udp.register(t, regOpts{user: "alice", pass: pw, expires: "600"}), 200)           // 401, 200: added
	wantStatus(t, udp.register(t, regOpts{user: "alice", pass: pw, expires: "600"}), 200)           // 401, 200: refreshed
	wantStatus(t, tcp.register(t, regOpts{user: "bob", pass: pw, expires: "600"}), 200)             // 401, 200: added
	wantStatus(t, tcp.register(t, regOpts{user: "bob", pass: pw, expires: "0"}), 200)               // 401, 200: removed
	wantStatus(t, udp.register(t, regOpts{user: "alice", pass: "wrong-password-123"}), 403)         // 401, 403: mismatch
	wantStatus(t, udp.register(t, regOpts{user: "mallory", pass: pw}), 403)                         // 401, 403: unknown_user
	wantStatus(t, udp.register(t, regOpts{user: "alice", pass: pw, domain: "elsewhere.test"}), 404) // no auth check
	if raw := rawExchange(t, "udp", ts.Addr("udp"), optionsRequest(ts), 2*time.Second); !strings.HasPrefix(raw, "SIP/2.0 200") {
		t.Fatalf("OPTIONS: got %q", statusLine(raw))
	}

	got := ts.scrapeSettled(t)
	wantSamples(t, got, map[string]float64{
		`sipwarden_sip_requests_total{method="REGISTER",transport="udp"}`: 9,
		`sipwarden_sip_requests_total{method="REGISTER",transport="tcp"}`: 4,
		`sipwarden_sip_requests_total{method="OPTIONS",transport="udp"}`:  1,
		`sipwarden_sip_requests_total{method="INVITE",transport="udp"}`:   0,

		`sipwarden_sip_responses_total{class="4xx",code="401",method="REGISTER"}`: 6,
		`sipwarden_sip_responses_total{class="2xx",code="200",method="REGISTER"}`: 4,
		`sipwarden_sip_responses_total{class="4xx",code="403",method="REGISTER"}`: 2,
		`sipwarden_sip_responses_total{class="4xx",code="404",method="REGISTER"}`: 1,
		`sipwarden_sip_responses_total{class="2xx",code="200",method="OPTIONS"}`:  1,
		`sipwarden_sip_transactions_inflight`:                                     0,

		`sipwarden_auth_outcomes_total{result="challenge",scheme="digest"}`:    6,
		`sipwarden_auth_outcomes_total{result="ok",scheme="digest"}`:           4,
		`sipwarden_auth_outcomes_total{result="mismatch",scheme="digest"}`:     1,
		`sipwarden_auth_outcomes_total{result="unknown_user",scheme="digest"}`: 1,
		`sipwarden_auth_outcomes_total{result="stale",scheme="digest"}`:        0,
		`sipwarden_auth_outcomes_total{result="ok",scheme="bearer"}`:           0,

		`sipwarden_registrar_registrations_total`:             2,
		`sipwarden_registrar_refreshes_total`:                 1,
		`sipwarden_registrar_unregistrations_total`:           1,
		`sipwarden_registrar_replacements_total`:              0,
		`sipwarden_registrar_expirations_total`:               0,
		`sipwarden_registrar_dropped_total`:                   0,
		`sipwarden_registrar_register_duration_seconds_count`: 13,
		`sipwarden_registrar_bindings{transport="udp"}`:       1,
		`sipwarden_registrar_bindings{transport="tcp"}`:       0,
		`sipwarden_registrar_bindings{transport="tls"}`:       0,

		`sipwarden_proxy_calls_attempted_total`:                                                     0,
		`sipwarden_proxy_dialogs_active`:                                                            0,
		`sipwarden_guard_bans_active`:                                                               0,
		`sipwarden_store_commit_failures_total{kind="records"}`:                                     0,
		`sipwarden_store_commit_failures_total{kind="bindings"}`:                                    0,
		`sipwarden_build_info{goversion="` + runtime.Version() + `",version="` + testVersion + `"}`: 1,
	})
	// Two credentials were committed (the admin key comes from the config).
	if n := got[`sipwarden_store_commit_duration_seconds_count{kind="records"}`]; n != 2 {
		t.Errorf("record commits: got %v, want 2", n)
	}
	// The bindings reach the disk in group commits: at least one by now.
	waitFor(t, "a binding flush", 2*time.Second, func() bool {
		return scrape(t, ts.metricsURL())[`sipwarden_store_commit_duration_seconds_count{kind="bindings"}`] >= 1
	})

	// The same values through client_golang's testutil, straight from the
	// collectors.
	want := `
# HELP sipwarden_registrar_registrations_total Bindings created by REGISTER (a new device or contact).
# TYPE sipwarden_registrar_registrations_total counter
sipwarden_registrar_registrations_total 2
# HELP sipwarden_registrar_bindings Bindings in the location table, by transport, counted at scrape time.
# TYPE sipwarden_registrar_bindings gauge
sipwarden_registrar_bindings{transport="udp"} 1
sipwarden_registrar_bindings{transport="tcp"} 0
sipwarden_registrar_bindings{transport="tls"} 0
sipwarden_registrar_bindings{transport="ws"} 0
sipwarden_registrar_bindings{transport="wss"} 0
sipwarden_registrar_bindings{transport="other"} 0
`
	if err := testutil.ScrapeAndCompare(ts.metricsURL(), strings.NewReader(want),
		"sipwarden_registrar_registrations_total", "sipwarden_registrar_bindings"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(ts.Gatherer(), strings.NewReader(want),
		"sipwarden_registrar_registrations_total", "sipwarden_registrar_bindings"); err != nil {
		t.Error(err)
	}
}

func optionsRequest(ts *testServer) string {
	return "OPTIONS sip:" + ts.Addr("udp") + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-options-1;rport\n" +
		"To: <sip:" + ts.Addr("udp") + ">\nFrom: <sip:probe@sipwarden.test>;tag=1\n" +
		"Call-ID: options-1\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"
}

// TestMetricsExpiration checks that bindings removed by the sweeper are
// counted and leave the gauge.
func TestMetricsExpiration(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Registrar.MinExpires = 1
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	wantStatus(t, newPhone(t, ts, "tls").register(t, regOpts{user: "alice", pass: pw, expires: "1"}), 200)
	if got := scrape(t, ts.metricsURL())[`sipwarden_registrar_bindings{transport="tls"}`]; got != 1 {
		t.Fatalf("tls bindings: got %v, want 1", got)
	}
	waitFor(t, "the binding to expire", 5*time.Second, func() bool {
		return scrape(t, ts.metricsURL())[`sipwarden_registrar_expirations_total`] == 1
	})
	if got := scrape(t, ts.metricsURL())[`sipwarden_registrar_bindings{transport="tls"}`]; got != 0 {
		t.Fatalf("tls bindings after expiry: got %v, want 0", got)
	}
}

// TestMetricsLint lints everything the server exports, the Go runtime and
// process collectors included.
func TestMetricsLint(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "nobody"}), 401)
	problems, err := testutil.GatherAndLint(ts.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsListenerOfItsOwn serves /metrics on http.metrics_listen and
// not on the API listener.
func TestMetricsListenerOfItsOwn(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HTTP.MetricsListen = "127.0.0.1:0"
	ts := startServer(t, cfg)
	if ts.Addr("metrics") == "" {
		t.Fatal("no metrics listener bound")
	}
	if got := scrape(t, ts.metricsURL())[`sipwarden_sip_transactions_inflight`]; got != 0 {
		t.Fatalf("inflight: got %v, want 0", got)
	}
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{ts.Addr("http"), "/metrics", 401}, // an API route there: needs a key, and there is none
		{ts.Addr("metrics"), "/readyz", 200},
		{ts.Addr("metrics"), "/healthz", 200},
		{ts.Addr("metrics"), "/v1/credentials", 404},
		{ts.Addr("http"), "/readyz", 200},
	} {
		if got := httpStatus(t, "http://"+c.addr+c.path); got != c.want {
			t.Errorf("GET %s%s: got %d, want %d", c.addr, c.path, got, c.want)
		}
	}
}

// TestPublicPathsAllowGETOnly: another method on /healthz, /readyz,
// /metrics or /phone is answered 405 with Allow; it used to fall through
// to the API, which asked for a key (401) or found no route (404).
func TestPublicPathsAllowGETOnly(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/phone"} {
		url := "http://" + ts.Addr("http") + path
		for _, method := range []string{"POST", "PUT", "DELETE"} {
			req, err := http.NewRequest(method, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405, Allow GET, HEAD", method, path, res.StatusCode, res.Header.Get("Allow"))
			}
		}
		if code := httpStatus(t, url); code != 200 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	code, _ := httpGet(t, url)
	return code
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestReadyz: 200 when everything is up; while another handle holds the
// store's file, /readyz answers 503 naming the store, /healthz and
// /metrics answer, the API answers 503; once the file is free the server
// finishes starting and /readyz answers 200.
func TestReadyz(t *testing.T) {
	t.Run("up", func(t *testing.T) {
		ts := startServer(t, testConfig(t, t.TempDir()))
		if code, body := httpGet(t, "http://"+ts.Addr("http")+"/readyz"); code != 200 || body != "ready\n" {
			t.Fatalf("got %d %q, want 200 ready", code, body)
		}
	})
	t.Run("store locked", func(t *testing.T) {
		dir := t.TempDir()
		holder, err := store.Open(filepath.Join(dir, "sipwarden.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		released := false
		defer func() {
			if !released {
				_ = holder.Close()
			}
		}()
		cfg := testConfig(t, dir)
		cfg.HTTP.Listen = freeTCPAddr(t)
		base := "http://" + cfg.HTTP.Listen
		logs := &servertest.SyncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type started struct {
			s   *server.Node
			err error
		}
		done := make(chan started, 1)
		go func() {
			s, err := server.Start(ctx, cfg, server.NewLogger(cfg.Log, logs), server.Options{Version: testVersion})
			done <- started{s, err}
		}()
		waitFor(t, "/readyz to answer", 5*time.Second, func() bool {
			res, err := http.Get(base + "/readyz")
			if err == nil {
				res.Body.Close()
			}
			return err == nil
		})
		// The first open waits a second for the lock before it fails.
		var (
			code int
			body string
		)
		waitFor(t, "/readyz to name the locked store", 5*time.Second, func() bool {
			code, body = httpGet(t, base+"/readyz")
			return strings.Contains(body, "locked")
		})
		if code != 503 || !strings.Contains(body, "store: ") {
			t.Fatalf("/readyz with the store locked: got %d %q, want 503 naming the locked store", code, body)
		}
		if code := httpStatus(t, base+"/healthz"); code != 200 {
			t.Errorf("/healthz while not ready: got %d, want 200", code)
		}
		if got := scrape(t, base+"/metrics")[`sipwarden_registrar_bindings{transport="udp"}`]; got != 0 {
			t.Errorf("bindings while not ready: got %v, want 0", got)
		}
		if code := httpStatus(t, base+"/v1/credentials"); code != 503 {
			t.Errorf("API while not ready: got %d, want 503", code)
		}
		select {
		case r := <-done:
			t.Fatalf("start returned while the store was locked: %v", r.err)
		default:
		}

		if err := holder.Close(); err != nil {
			t.Fatal(err)
		}
		released = true
		var r started
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("start did not finish after the store was released")
		}
		if r.err != nil {
			t.Fatalf("start: %v", r.err)
		}
		ts := &testServer{Server: servertest.Adopt(t, r.s, cfg, logs, cancel), logs: logs}
		if code, body := httpGet(t, base+"/readyz"); code != 200 {
			t.Fatalf("/readyz after the store opened: got %d %q, want 200", code, body)
		}
		ts.createCredential(t, "alice", pw, nil)
		wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "alice", pass: pw}), 200)
		if !strings.Contains(logs.String(), "store cannot be opened; retrying") {
			t.Error("the failed open was not logged")
		}
	})
	t.Run("stopped while waiting", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "sipwarden.db"), 0o700); err != nil { // a directory: never openable, even as root
			t.Fatal(err)
		}
		cfg := testConfig(t, dir)
		cfg.HTTP.Listen = freeTCPAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- server.Run(ctx, cfg, server.NewLogger(cfg.Log, io.Discard), server.Options{}) }()
		waitFor(t, "/readyz to answer 503", 5*time.Second, func() bool {
			res, err := http.Get("http://" + cfg.HTTP.Listen + "/readyz")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode == 503 && strings.Contains(string(b), "store: ")
		})
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("serve: got %v, want a clean stop", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("serve did not stop")
		}
		if _, err := net.DialTimeout("tcp", cfg.HTTP.Listen, time.Second); err == nil {
			t.Error("HTTP listener still open after stop")
		}
	})
}

// freeTCPAddr returns a loopback address with a port free a moment ago,
// for a server whose start blocks before it can tell its address.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// TestDashboardReferencesExportedMetrics reads the Grafana dashboard and
// checks that every metric its queries name is exported by a running
// server (histograms by their _bucket, _sum and _count series).
func TestDashboardReferencesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../contrib/grafana/sipwarden.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if len(dash.Panels) < 10 {
		t.Fatalf("dashboard has %d panels, want the whole set", len(dash.Panels))
	}
	ts := startServer(t, testConfig(t, t.TempDir()))
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "nobody"}), 401) // makes sip_responses_total exist
	exported := map[string]bool{}
	for k := range ts.scrapeSettled(t) {
		name, _, _ := strings.Cut(k, "{")
		exported[name] = true
		if base, ok := strings.CutSuffix(name, "_count"); ok {
			exported[base+"_bucket"] = true
		}
	}
	metricName := regexp.MustCompile(`\b(sipwarden|go|process)_[a-z0-9_]+`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			queries++
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("panel %q: %s is not exported by the server", p.Title, n)
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
	for _, v := range dash.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue // the data source variable
		}
		s, _ := q["query"].(string)
		for _, n := range metricName.FindAllString(s, -1) {
			if !exported[n] {
				t.Errorf("variable query %q: %s is not exported by the server", s, n)
			}
		}
	}
}

// TestLogLevelAtRunTime starts at info, where first-leg 401s are not
// logged, and turns debug on and off again through the API.
func TestLogLevelAtRunTime(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.Level = "info"
	ts := startServer(t, cfg)
	p := newPhone(t, ts, "udp")
	challenges := func() int {
		return strings.Count(ts.logs.String(), "msg=REGISTER component=registrar method=REGISTER aor=nobody")
	}

	wantStatus(t, p.register(t, regOpts{user: "nobody"}), 401)
	if n := challenges(); n != 0 {
		t.Fatalf("at info: %d challenge lines logged, want 0", n)
	}
	putLevel := func(level string) int {
		t.Helper()
		return ts.api(t, "PUT", "/v1/log-level", map[string]string{"level": level}, nil)
	}
	if code := putLevel("debug"); code != 200 {
		t.Fatalf("PUT debug: got %d, want 200", code)
	}
	wantStatus(t, p.register(t, regOpts{user: "nobody"}), 401)
	if n := challenges(); n != 1 {
		t.Fatalf("at debug: %d challenge lines logged, want 1", n)
	}
	if code := putLevel("loud"); code != 422 {
		t.Fatalf("PUT loud: got %d, want 422", code)
	}
	if code := putLevel("info"); code != 200 {
		t.Fatalf("PUT info: got %d, want 200", code)
	}
	wantStatus(t, p.register(t, regOpts{user: "nobody"}), 401)
	if n := challenges(); n != 1 {
		t.Fatalf("back at info: %d challenge lines logged, want still 1", n)
	}
	// Without the key the level stays.
	req, _ := http.NewRequest("PUT", "http://"+ts.Addr("http")+"/v1/log-level", strings.NewReader(`{"level":"debug"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("PUT without a key: got %d, want 401", res.StatusCode)
	}
	wantStatus(t, p.register(t, regOpts{user: "nobody"}), 401)
	if n := challenges(); n != 1 {
		t.Fatalf("after a refused PUT: %d challenge lines logged, want still 1", n)
	}
}

// TestSIPTraceRedactsAuthorization traces a REGISTER carrying a known
// Authorization value and a full digest registration: the messages are
// logged, the Authorization values never.
func TestSIPTraceRedactsAuthorization(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.SIPTrace = true
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	const secret = "d41d8cd98f00b204e9800998ecf8427e-secret-response"
	raw := "REGISTER sip:sipwarden.test SIP/2.0\n" +
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-trace-1;rport\n" +
		"To: <sip:alice@sipwarden.test>\nFrom: <sip:alice@sipwarden.test>;tag=9\n" +
		"Call-ID: trace-1\nCSeq: 1 REGISTER\nMax-Forwards: 70\n" +
		"Contact: <sip:alice@127.0.0.1:5999>\n" +
		`authorization: Digest username="alice", realm="sipwarden.test", nonce="nonce-` + secret + `", uri="sip:sipwarden.test", response="` + secret + `"` + "\n" +
		"Proxy-Authorization: Bearer token-" + secret + "\n" +
		"Content-Length: 0\n\n"
	if got := rawExchange(t, "udp", ts.Addr("udp"), raw, 2*time.Second); !strings.HasPrefix(got, "SIP/2.0 4") {
		t.Fatalf("got %q, want a refusal", statusLine(got))
	}
	wantStatus(t, newPhone(t, ts, "tcp").register(t, regOpts{user: "alice", pass: pw}), 200)

	logs := ts.logs.String()
	for _, want := range []string{"SIP request received", "SIP response sending", "Call-ID: trace-1", "SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"} {
		if !strings.Contains(logs, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	// The raw REGISTER's two headers and the phone's second REGISTER.
	if n := strings.Count(strings.ToLower(logs), "authorization: [redacted]"); n != 3 {
		t.Errorf("got %d redacted Authorization headers, want 3", n)
	}
	for _, leak := range []string{secret, "Digest username", "response=", "cnonce", pw} {
		if strings.Contains(logs, leak) {
			t.Errorf("the log holds %q", leak)
		}
	}
}

// TestTraceOffAtInfo: the trace switch alone logs nothing above debug.
func TestTraceOffAtInfo(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.Level = "info"
	cfg.Log.SIPTrace = true
	ts := startServer(t, cfg)
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "nobody"}), 401)
	if strings.Contains(ts.logs.String(), "SIP request received") {
		t.Fatal("SIP trace logged at info")
	}
}
