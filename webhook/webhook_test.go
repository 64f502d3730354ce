package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sipwarden/sipwarden/webhook"
)

type dir struct{ targets map[string]webhook.Target }

func (d dir) ConnectionOfCredential(id string) (string, bool) { return "conn-" + id, true }
func (d dir) ConnectionOfUsername(u string) (string, bool)    { return "conn-" + u, true }
func (d dir) Target(id string) (webhook.Target, bool) {
	t, ok := d.targets[id]
	return t, ok
}

// receiver is a real HTTP server that records what it gets, answering
// status (an atomic, changeable).
type receiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    [][]byte
	sigs   []string
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.status.Store(int32(status))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, b)
		r.sigs = append(r.sigs, req.Header.Get("Sipwarden-Signature"))
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, cfg webhook.Config, d webhook.Directory, reg prometheus.Registerer) *webhook.Dispatcher {
	t.Helper()
	w, err := webhook.New(cfg, d, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func TestDeliverSigned(t *testing.T) {
	rcv := newReceiver(t, 204)
	const secret = "whsec_test"
	w := start(t, webhook.Config{Backoff: 10 * time.Millisecond}, dir{map[string]webhook.Target{
		"conn-alice": {URL: rcv.srv.URL, Secret: secret, Timeout: time.Second},
	}}, nil)
	w.Enqueue(webhook.Event{Type: webhook.RegistrationCreated, Usernames: []string{"alice"}, Payload: map[string]any{"username": "alice"}})
	w.Enqueue(webhook.Event{Type: webhook.CallInitiated, Usernames: []string{"bob"}}) // bob's connection has no webhook
	waitFor(t, "delivery", func() bool { return rcv.count() == 1 })
	rcv.mu.Lock()
	b, sig := rcv.got[0], rcv.sigs[0]
	rcv.mu.Unlock()
	if !webhook.Verify(secret, sig, b, time.Now(), time.Minute) {
		t.Errorf("signature %q does not verify over %s", sig, b)
	}
	if webhook.Verify("other-secret", sig, b, time.Now(), time.Minute) || webhook.Verify(secret, sig, append(b, ' '), time.Now(), time.Minute) {
		t.Error("a wrong secret or a changed body verifies")
	}
	var v struct {
		Data struct {
			EventType    string         `json:"event_type"`
			ConnectionID string         `json:"connection_id"`
			Payload      map[string]any `json:"payload"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Data.EventType != "registration.created" || v.Data.ConnectionID != "conn-alice" || v.Data.Payload["username"] != "alice" {
		t.Errorf("body %s: %v", b, err)
	}
	// The attempt is logged once the receiver's answer is read.
	waitFor(t, "the logged delivery", func() bool { return len(w.Deliveries("conn-alice")) == 1 })
	if ds := w.Deliveries("conn-alice"); len(ds) != 1 || !ds[0].OK || ds[0].Status != 204 {
		t.Errorf("deliveries %+v", ds)
	}
}

// TestRetryThenFailover: the primary URL fails every attempt, the
// failover URL gets the event; every attempt is in the log.
func TestRetryThenFailover(t *testing.T) {
	primary := newReceiver(t, 500)
	backup := newReceiver(t, 200)
	reg := prometheus.NewRegistry()
	w := start(t, webhook.Config{Attempts: 3, Backoff: 10 * time.Millisecond}, dir{map[string]webhook.Target{
		"conn-alice": {URL: primary.srv.URL, FailoverURL: backup.srv.URL, Secret: "s", Timeout: time.Second},
	}}, reg)
	w.Enqueue(webhook.Event{Type: webhook.CallHangup, Usernames: []string{"alice"}})
	waitFor(t, "failover delivery", func() bool { return backup.count() == 1 })
	if got := primary.count(); got != 3 {
		t.Errorf("primary got %d attempts, want 3", got)
	}
	waitFor(t, "the log", func() bool { return len(w.Deliveries("conn-alice")) == 4 })
	ds := w.Deliveries("conn-alice")
	if !ds[0].OK || ds[0].URL != backup.srv.URL || ds[0].Attempt != 4 || ds[1].OK || ds[1].Status != 500 {
		t.Errorf("deliveries %+v", ds)
	}
	waitFor(t, "delivered_total 1", func() bool { return testutil.ToFloat64(w2c(reg, "sipwarden_webhook_delivered_total")) == 1 })
}

// TestReceiverDownFails: both URLs unreachable: the event is given up
// after every attempt and counted.
func TestReceiverDownFails(t *testing.T) {
	down := newReceiver(t, 200)
	url := down.srv.URL
	down.srv.Close()
	reg := prometheus.NewRegistry()
	w := start(t, webhook.Config{Attempts: 2, Backoff: 5 * time.Millisecond}, dir{map[string]webhook.Target{
		"conn-alice": {URL: url, FailoverURL: url + "/backup", Secret: "s", Timeout: 200 * time.Millisecond},
	}}, reg)
	w.Enqueue(webhook.Event{Type: webhook.CallHangup, Usernames: []string{"alice"}})
	waitFor(t, "the failure", func() bool { return testutil.ToFloat64(w2c(reg, "sipwarden_webhook_failed_total")) == 1 })
	if ds := w.Deliveries("conn-alice"); len(ds) != 4 || ds[0].OK || ds[0].Error == "" {
		t.Errorf("deliveries %+v", ds)
	}
}

// TestEnqueueNeverBlocks: without workers, a full queue drops.
func TestEnqueueNeverBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := webhook.New(webhook.Config{QueueSize: 2}, dir{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for range 1000 {
			w.Enqueue(webhook.Event{Type: webhook.CallInitiated})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Enqueue blocked")
	}
	if n := testutil.ToFloat64(w2c(reg, "sipwarden_webhook_dropped_total")); n != 998 {
		t.Errorf("dropped_total %v, want 998", n)
	}
}

// w2c finds a registered counter by name.
func w2c(reg *prometheus.Registry, name string) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, m := range mf.GetMetric() {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// rotatingDir is a Directory whose one target's secret can change.
type rotatingDir struct {
	dir
	mu     sync.Mutex
	secret string
}

func (d *rotatingDir) Target(id string) (webhook.Target, bool) {
	t, ok := d.dir.Target(id)
	d.mu.Lock()
	t.Secret = d.secret
	d.mu.Unlock()
	return t, ok
}

// TestRetrySignedWithRotatedSecret: a retry after the connection's
// secret was rotated is signed with the new one, which the receiver has
// switched to. The receiver rotates it while it answers the first
// attempt 500, so the retry comes after the rotation whatever the timing.
func TestRetrySignedWithRotatedSecret(t *testing.T) {
	d := &rotatingDir{secret: "whsec_old"}
	var (
		mu   sync.Mutex
		got  [][]byte
		sigs []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		got, sigs = append(got, b), append(sigs, req.Header.Get("Sipwarden-Signature"))
		first := len(got) == 1
		mu.Unlock()
		if first {
			d.mu.Lock()
			d.secret = "whsec_new"
			d.mu.Unlock()
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	d.dir = dir{map[string]webhook.Target{"conn-alice": {URL: srv.URL, Timeout: time.Second}}}
	w := start(t, webhook.Config{Attempts: 3, Backoff: 10 * time.Millisecond}, d, nil)
	w.Enqueue(webhook.Event{Type: webhook.CallHangup, Usernames: []string{"alice"}})
	waitFor(t, "the retry", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if !webhook.Verify("whsec_old", sigs[0], got[0], time.Now(), time.Minute) {
		t.Errorf("the first attempt is not signed with the secret of its time")
	}
	if !webhook.Verify("whsec_new", sigs[1], got[1], time.Now(), time.Minute) {
		t.Errorf("the retry after the rotation is not signed with the new secret")
	}
}

// stuckReceiver accepts every request and never answers (until the test
// ends); arrived counts the requests that reached it.
type stuckReceiver struct {
	*httptest.Server
	arrived atomic.Int32
}

func newStuckReceiver(t *testing.T) *stuckReceiver {
	release := make(chan struct{})
	s := &stuckReceiver{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	return s
}

// TestStuckReceiverDelaysOnlyItsConnection: a receiver that accepts and
// never answers holds its own connection's events, not another's (the
// workers were shared: one such receiver per worker stalled every
// connection's webhooks for the attempts' timeouts); a connection's
// lane holds a tenth of the queue, more of its events are dropped.
func TestStuckReceiverDelaysOnlyItsConnection(t *testing.T) {
	stuck := newStuckReceiver(t)
	ok := newReceiver(t, 200)
	reg := prometheus.NewRegistry()
	w := start(t, webhook.Config{Workers: 2, Attempts: 3, Backoff: 10 * time.Millisecond, QueueSize: 100}, dir{map[string]webhook.Target{
		"conn-carrier": {URL: stuck.URL, Timeout: 30 * time.Second},
		"conn-users":   {URL: ok.srv.URL, Timeout: time.Second},
	}}, reg)
	for range 20 {
		w.Enqueue(webhook.Event{Type: webhook.CallInitiated, Usernames: []string{"carrier"}})
	}
	// Behind the stuck receiver it would wait for its 30 s timeouts.
	w.Enqueue(webhook.Event{Type: webhook.CallInitiated, Usernames: []string{"users"}})
	waitFor(t, "the other connection's event (within 5 s)", func() bool { return ok.count() == 1 })
	// 20 events for the stuck one, routed before the other's: 10 (a
	// tenth of 100) in its lane, up to 2 taken from it into delivery, the
	// rest dropped.
	if n := testutil.ToFloat64(w2c(reg, "sipwarden_webhook_dropped_total")); n < 8 || n > 10 {
		t.Errorf("dropped_total %v, want 8 to 10", n)
	}
}

// TestLanesBoundedTogether: the lanes together hold at most QueueSize
// events: with every connection's receiver stuck, each lane's tenth would
// otherwise let a thousand connections hold a hundred times the queue.
func TestLanesBoundedTogether(t *testing.T) {
	stuck := newStuckReceiver(t)
	targets := map[string]webhook.Target{}
	for i := range 20 {
		targets[fmt.Sprintf("conn-c%d", i)] = webhook.Target{URL: stuck.URL, Timeout: 30 * time.Second}
	}
	reg := prometheus.NewRegistry()
	w := start(t, webhook.Config{Workers: 1, Attempts: 1, QueueSize: 20}, dir{targets}, reg)
	// 20 connections: the first event of each is taken into delivery and
	// stays there; then two more each: a lane may hold 2 (a tenth of 20),
	// all of them together 20, so 20 of those 40 are dropped (none was,
	// each lane holding its 2).
	for i := range 20 {
		w.Enqueue(webhook.Event{Type: webhook.CallInitiated, Usernames: []string{fmt.Sprintf("c%d", i)}})
	}
	waitFor(t, "a delivery in progress per connection", func() bool { return stuck.arrived.Load() == 20 })
	for range 2 {
		for i := range 20 {
			w.Enqueue(webhook.Event{Type: webhook.CallInitiated, Usernames: []string{fmt.Sprintf("c%d", i)}})
		}
	}
	dropped := func() float64 { return testutil.ToFloat64(w2c(reg, "sipwarden_webhook_dropped_total")) }
	waitFor(t, "20 of the 40 dropped", func() bool { return dropped() == 20 })
	time.Sleep(100 * time.Millisecond)
	if n := dropped(); n != 20 {
		t.Errorf("dropped_total %v, want 20", n)
	}
}
