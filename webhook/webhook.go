// Package webhook delivers a connection's events (registrations, calls)
// to its webhook URLs as signed JSON, in the shape of Telnyx's webhooks
// ({"data": {"event_type", "id", "occurred_at", "payload"}}).
//
// The SIP path only hands an event to Enqueue, which never blocks: the
// queue is bounded and an event that does not fit is dropped and counted.
// One goroutine resolves each event's connections (Directory) and hands
// it to each connection's lane: a queue of its own, delivered by at most
// Config.Workers goroutines of that connection, which sign the body with
// the connection's secret (HMAC-SHA256 over "timestamp.body", header
// Sipwarden-Signature: t=TIMESTAMP,v1=HEX) and POST it, retrying with
// exponential backoff, then failing over to the connection's second URL.
// A receiver that is slow, down or never answers so delays its own
// connection's events only (with workers shared by every connection, four
// such events held every worker for half a minute). Every attempt is kept
// in a bounded per-connection log (Deliveries) and counted in metrics.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Event types.
const (
	RegistrationCreated   = "registration.created"
	RegistrationRefreshed = "registration.refreshed"
	RegistrationRemoved   = "registration.removed"
	RegistrationExpired   = "registration.expired"
	CallInitiated         = "call.initiated"
	CallAnswered          = "call.answered"
	CallHangup            = "call.hangup"
)

// Event is one thing that happened. Exactly the connections it concerns
// are found by the workers from ConnectionIDs, CredentialIDs and
// Usernames (Directory), not on the SIP path.
type Event struct {
	Type       string
	OccurredAt time.Time
	// Payload is the event's JSON payload (a map or a struct).
	Payload       any
	ConnectionIDs []string
	CredentialIDs []string
	Usernames     []string
}

// Target is where a connection's events go.
type Target struct {
	URL, FailoverURL string
	Timeout          time.Duration
	Secret           string
}

// Directory resolves events to connections and connections to targets:
// the server's adapter over the store.
type Directory interface {
	ConnectionOfCredential(id string) (string, bool)
	ConnectionOfUsername(username string) (string, bool)
	// Target returns the connection's webhook, false when it has none.
	Target(connectionID string) (Target, bool)
}

// Config configures a Dispatcher.
type Config struct {
	// QueueSize bounds the events waiting; default 10000.
	QueueSize int
	// Workers is how many of a connection's events are delivered at
	// once (each with its retries); default 4. Connections deliver
	// independently of each other. A connection's lane holds at most a
	// tenth of QueueSize events (at least 1); more are dropped.
	Workers int
	// Attempts per URL; default 3.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each one; default 1s.
	Backoff time.Duration
	// LogSize bounds the deliveries kept per connection; default 100.
	LogSize int
	// Client posts the events; default a client without redirects.
	Client *http.Client
	Logger *slog.Logger
	Now    func() time.Time
}

// Delivery is one attempt to deliver an event.
type Delivery struct {
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	URL        string    `json:"url"`
	Attempt    int       `json:"attempt"`
	Status     int       `json:"status,omitempty"` // HTTP status; 0 when none came
	Error      string    `json:"error,omitempty"`
	OK         bool      `json:"ok"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
}

// Dispatcher queues and delivers events.
type Dispatcher struct {
	cfg   Config
	dir   Directory
	queue chan Event
	log   *slog.Logger
	now   func() time.Time

	mu    sync.Mutex
	byCon map[string][]Delivery // ring per connection, newest last

	// lanes are the connections' queues, guarded by lmu; laneCap bounds
	// each.
	lmu     sync.Mutex
	lanes   map[string]*lane
	laneCap int
	queued  int            // events in every lane, at most QueueSize
	wg      sync.WaitGroup // the lanes' goroutines

	dropped, delivered, failed prometheus.Counter
	attempts                   *prometheus.CounterVec
}

// New returns a Dispatcher registering its metrics on reg (nil: none).
func New(cfg Config, dir Directory, reg prometheus.Registerer) (*Dispatcher, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.LogSize <= 0 {
		cfg.LogSize = 100
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dispatcher{cfg: cfg, dir: dir, queue: make(chan Event, cfg.QueueSize), log: cfg.Logger, now: cfg.Now,
		byCon: map[string][]Delivery{}, lanes: map[string]*lane{}, laneCap: max(cfg.QueueSize/10, 1),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sipwarden", Subsystem: "webhook", Name: "dropped_total",
			Help: "Events dropped because the webhook queue was full."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sipwarden", Subsystem: "webhook", Name: "delivered_total",
			Help: "Events delivered to a connection's webhook (primary or failover URL)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sipwarden", Subsystem: "webhook", Name: "failed_total",
			Help: "Events not delivered after every attempt on both URLs."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sipwarden", Subsystem: "webhook", Name: "attempts_total",
			Help: "Delivery attempts by result: ok, http_error (a non-2xx answer), error (no answer)."}, []string{"result"}),
	}
	for _, r := range []string{"ok", "http_error", "error"} {
		d.attempts.WithLabelValues(r) // exported at 0 from the start
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{d.dropped, d.delivered, d.failed, d.attempts} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("webhook metrics: %w", err)
			}
		}
	}
	return d, nil
}

// Enqueue hands an event to the workers. It never blocks: when the queue
// is full the event is dropped (sipwarden_webhook_dropped_total).
func (d *Dispatcher) Enqueue(ev Event) {
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = d.now()
	}
	select {
	case d.queue <- ev:
	default:
		d.dropped.Inc()
	}
}

// Run delivers events until ctx ends. Deliveries in progress stop at once.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-d.queue:
			d.route(ctx, ev)
		}
	}
}

// lane is a connection's queue of events and the goroutines delivering
// them (busy, at most Config.Workers).
type lane struct {
	conn   string
	events []Event
	busy   int
}

// route hands ev to the lane of each connection it concerns that has a
// webhook.
func (d *Dispatcher) route(ctx context.Context, ev Event) {
	conns := map[string]bool{}
	for _, id := range ev.ConnectionIDs {
		if id != "" {
			conns[id] = true
		}
	}
	for _, id := range ev.CredentialIDs {
		if c, ok := d.dir.ConnectionOfCredential(id); ok && id != "" {
			conns[c] = true
		}
	}
	for _, u := range ev.Usernames {
		if c, ok := d.dir.ConnectionOfUsername(u); ok && u != "" {
			conns[c] = true
		}
	}
	for conn := range conns {
		if t, ok := d.dir.Target(conn); !ok || t.URL == "" {
			continue
		}
		d.push(ctx, conn, ev)
	}
}

// push queues ev on conn's lane, and starts a goroutine for it when the
// lane has fewer than Workers.
func (d *Dispatcher) push(ctx context.Context, conn string, ev Event) {
	d.lmu.Lock()
	defer d.lmu.Unlock()
	l := d.lanes[conn]
	if l == nil {
		l = &lane{conn: conn}
		d.lanes[conn] = l
	}
	if len(l.events) >= d.laneCap || d.queued >= d.cfg.QueueSize {
		// A connection holds a tenth of the queue, all of them together
		// QueueSize: many receivers down at once cannot grow the heap
		// past what the queue allowed.
		d.dropped.Inc()
		return
	}
	l.events = append(l.events, ev)
	d.queued++
	if l.busy < d.cfg.Workers {
		l.busy++
		d.wg.Go(func() { d.drain(ctx, l) })
	}
}

// drain delivers l's events until none is left (or ctx ends); the last
// goroutine out removes the lane.
func (d *Dispatcher) drain(ctx context.Context, l *lane) {
	for {
		d.lmu.Lock()
		if len(l.events) == 0 || ctx.Err() != nil {
			l.busy--
			if l.busy == 0 && len(l.events) == 0 {
				delete(d.lanes, l.conn)
			}
			d.lmu.Unlock()
			return
		}
		ev := l.events[0]
		l.events[0] = Event{}
		l.events = l.events[1:]
		d.queued--
		d.lmu.Unlock()
		// The target as it is now: changed or removed while queued.
		if t, ok := d.dir.Target(l.conn); ok && t.URL != "" {
			d.deliver(ctx, l.conn, t, ev)
		}
	}
}

// body is the JSON posted.
type body struct {
	Data data `json:"data"`
}

type data struct {
	EventType    string    `json:"event_type"`
	ID           string    `json:"id"`
	OccurredAt   time.Time `json:"occurred_at"`
	ConnectionID string    `json:"connection_id"`
	RecordType   string    `json:"record_type"`
	Payload      any       `json:"payload"`
}

// deliver posts ev to the connection's URL, then its failover URL, each
// up to Attempts times with exponential backoff.
func (d *Dispatcher) deliver(ctx context.Context, conn string, t Target, ev Event) {
	id := newID()
	b, err := json.Marshal(body{Data: data{EventType: ev.Type, ID: id, OccurredAt: ev.OccurredAt.UTC(), ConnectionID: conn,
		RecordType: "event", Payload: ev.Payload}})
	if err != nil {
		d.log.Error("webhook event not encodable", "event_type", ev.Type, "error", err)
		return
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	attempt := 0
	for _, url := range []string{t.URL, t.FailoverURL} {
		if url == "" {
			continue
		}
		wait := d.cfg.Backoff
		for i := range d.cfg.Attempts {
			if i > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait *= 2
			}
			if attempt > 0 {
				// The secret as it is now: a retry after a rotation
				// (rotate_webhook_secret) is signed with the new one,
				// which the receiver has switched to.
				if now, ok := d.dir.Target(conn); ok && now.Secret != "" {
					t.Secret = now.Secret
				}
			}
			attempt++
			del := d.post(ctx, url, t.Secret, b, timeout)
			del.EventID, del.EventType, del.Attempt = id, ev.Type, attempt
			d.record(conn, del)
			if del.OK {
				d.delivered.Inc()
				return
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
	d.failed.Inc()
	d.log.Warn("webhook event not delivered", "connection_id", conn, "event_type", ev.Type, "attempts", attempt)
}

// post makes one attempt.
func (d *Dispatcher) post(ctx context.Context, url, secret string, b []byte, timeout time.Duration) Delivery {
	start := d.now()
	del := Delivery{URL: url, At: start.UTC()}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		del.Error = err.Error()
		d.attempts.WithLabelValues("error").Inc()
		return del
	}
	ts := strconv.FormatInt(start.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sipwarden-webhook")
	req.Header.Set("Sipwarden-Signature", "t="+ts+",v1="+Sign(secret, ts, b))
	res, err := d.cfg.Client.Do(req)
	del.DurationMS = d.now().Sub(start).Milliseconds()
	if err != nil {
		del.Error = err.Error()
		d.attempts.WithLabelValues("error").Inc()
		return del
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	del.Status = res.StatusCode
	del.OK = res.StatusCode >= 200 && res.StatusCode < 300
	if del.OK {
		d.attempts.WithLabelValues("ok").Inc()
	} else {
		del.Error = "HTTP " + res.Status
		d.attempts.WithLabelValues("http_error").Inc()
	}
	return del
}

// Sign returns the hex HMAC-SHA256 of "timestamp.body" under secret: the
// v1 value of Sipwarden-Signature.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Sipwarden-Signature header value against body: what a
// receiver does (with its own tolerance for the timestamp's age).
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	var ts, v1 string
	for _, part := range bytes.Split([]byte(header), []byte{','}) {
		k, v, _ := bytes.Cut(bytes.TrimSpace(part), []byte{'='})
		switch string(k) {
		case "t":
			ts = string(v)
		case "v1":
			v1 = string(v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || v1 == "" {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(v1))
}

func (d *Dispatcher) record(conn string, del Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := append(d.byCon[conn], del)
	if len(l) > d.cfg.LogSize {
		l = l[len(l)-d.cfg.LogSize:]
	}
	d.byCon[conn] = l
}

// Deliveries returns the connection's most recent delivery attempts,
// newest first.
func (d *Dispatcher) Deliveries(connectionID string) []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.byCon[connectionID]
	out := make([]Delivery, len(l))
	for i, x := range l {
		out[len(l)-1-i] = x
	}
	return out
}

// Forget drops a connection's delivery log (it was deleted).
func (d *Dispatcher) Forget(connectionID string) {
	d.mu.Lock()
	delete(d.byCon, connectionID)
	d.mu.Unlock()
}

// NewSecret returns a random webhook secret: "whsec_" and 32 bytes in hex.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return "whsec_" + hex.EncodeToString(b[:]), nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
