// Package metrics defines sipwarden's Prometheus metrics on a registry of
// its own, and the small method API through which the SIP front end, the
// registrar wiring, the store, the proxy and the guard report to it.
//
// Names read sipwarden_<subsystem>_<name>, counters end in _total and
// histograms in _seconds. No label ever carries a username, an IP address
// or a Call-ID: label values come from small fixed sets (methods,
// transports, status codes, outcome names), and values from the network
// that fall outside those sets are counted as "other".
//
// Every method is safe for concurrent use. The per-request methods
// (RequestReceived, ResponseSent, AuthOutcome, Register...) use label
// children resolved at construction, so that they do not allocate.
package metrics

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "sipwarden"

// Authentication schemes, the values of the scheme label.
const (
	SchemeDigest = "digest"
	SchemeBearer = "bearer"
)

// Results of an authentication, the values of the result label of
// sipwarden_auth_outcomes_total. The first ten are auth.Outcome's names;
// acl and banned are decided by the guard, invalid_token by the bearer
// verifier. Another name is counted as it is: callers pass constants, never
// text from the network.
var authResults = []string{
	"ok", "challenge", "stale", "bad_nonce", "replay", "mismatch", "unknown_user",
	"disabled", "expired", "malformed", "acl", "banned", "invalid_token",
}

// Reasons a request is rejected before authentication, the values of the
// reason label of sipwarden_guard_rejected_total.
const (
	RejectBanned           = "banned"              // the source IP is banned
	RejectUserAgent        = "user_agent"          // a denied User-Agent (scanner)
	RejectMessageSize      = "message_size"        // over sip.max_message_bytes
	RejectConnections      = "connections"         // TCP/TLS connections in total
	RejectConnectionsPerIP = "connections_per_ip"  // TCP/TLS connections of one IP
	RejectInFlight         = "inflight"            // in-flight transactions cap (503)
	RejectThrottled        = "throttled"           // a username slowed down after failures
	RejectCluster          = "cluster_unavailable" // the cluster's Redis is down (503)
	RejectOverload         = "overload"            // waited past limits.max_queue_delay (503)
	RejectQueueFull        = "queue_full"          // a datagram the workers had no room for (dropped)
	RejectDuplicate        = "duplicate"           // a retransmission of a datagram still queued (dropped)
	RejectUnparsable       = "unparsable"          // a request nobody can be answered for: no Via, or unparsable without one (dropped)
	RejectOther            = "other"
)

var rejectReasons = []string{
	RejectBanned, RejectUserAgent, RejectMessageSize, RejectConnections,
	RejectConnectionsPerIP, RejectInFlight, RejectThrottled, RejectCluster, RejectOverload, RejectQueueFull,
	RejectDuplicate, RejectUnparsable, RejectOther,
}

// Store commit kinds, the values of the kind label of the store metrics.
const (
	// CommitBindings is a group commit of binding changes.
	CommitBindings = "bindings"
	// CommitRecords is a synchronous commit of a credential, connection or
	// API key.
	CommitRecords = "records"
)

// Metrics holds every sipwarden metric and its registry.
type Metrics struct {

	// sip
	requests  [numMethods][numTransports]prometheus.Counter
	responses *prometheus.CounterVec
	respMu    sync.RWMutex
	respByKey map[uint32]prometheus.Counter // methodIndex<<16 | code
	inflight  prometheus.Gauge
	queued    prometheus.Histogram

	// auth
	authVec *prometheus.CounterVec
	auth    [numSchemes]map[string]prometheus.Counter

	// registrar
	registerDuration prometheus.Histogram
	registerDropped  prometheus.Counter
	registrations    prometheus.Counter
	refreshes        prometheus.Counter
	unregistrations  prometheus.Counter
	expirations      prometheus.Counter
	replacements     prometheus.Counter

	// store
	commitDuration [numCommitKinds]prometheus.Observer
	commitFailures [numCommitKinds]prometheus.Counter

	// proxy
	callsAttempted prometheus.Counter
	callsAnswered  prometheus.Counter
	callsFailed    *prometheus.CounterVec
	forwarded      [numMethods]prometheus.Counter
	firstResponse  prometheus.Histogram

	// guard
	bansIssued prometheus.Counter
	rejected   map[string]prometheus.Counter

	// websocket and anonymous calls
	wsRefused map[string]prometheus.Counter
	anonymous map[string]prometheus.Counter

	// live state, read at scrape time from functions set after New
	bindings    atomic.Pointer[func() map[string]int]
	dialogs     atomic.Pointer[func() int]
	bansActive  atomic.Pointer[func() int]
	connections atomic.Pointer[func(transport string) int]
}

// Options configures New.
type Options struct {
	// Version is the build's version, for sipwarden_build_info.
	Version string
}

// New returns the metrics, registered on r. Every metric is exported from
// the start, at zero until something happens. The Go runtime and process
// collectors are the caller's to register (the server does).
func New(r prometheus.Registerer, opts Options) (*Metrics, error) {
	m := &Metrics{respByKey: make(map[uint32]prometheus.Counter)}
	var cs []prometheus.Collector
	bi := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels name the sipwarden version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	bi.WithLabelValues(opts.Version, runtime.Version()).Set(1)
	cs = append(cs, bi)

	// sip
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "sip", Name: "requests_total",
		Help: "SIP requests received, by method and transport (retransmissions absorbed by the transaction layer are not counted).",
	}, []string{"method", "transport"})
	for i, meth := range methodNames {
		for j, tp := range transportNames {
			m.requests[i][j] = reqs.WithLabelValues(meth, tp)
		}
	}
	m.responses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "sip", Name: "responses_total",
		Help: "SIP responses sent by sipwarden's handlers, by request method, status class (1xx..6xx) and code.",
	}, []string{"method", "class", "code"})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "sip", Name: "transactions_inflight",
		Help: "SIP server transactions whose handler is running (for a proxied INVITE: until its final response is relayed).",
	})
	connections := newFuncGaugeVec(prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "sip", "connections_open"),
		"Open TCP, TLS, WS and WSS connections, by transport.", []string{"transport"}, nil),
		func(ch chan<- prometheus.Metric, d *prometheus.Desc) {
			f := m.connections.Load()
			for _, tp := range connTransports {
				v := 0
				if f != nil {
					v = (*f)(tp)
				}
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), tp)
			}
		})
	m.queued = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "sip", Name: "queue_delay_seconds",
		Help:    "Time a request answered by the stateless front (REGISTER, a first INVITE's challenge) waited for a worker after it was read.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	cs = append(cs, reqs, m.responses, m.inflight, m.queued, connections)

	// auth
	m.authVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "auth", Name: "outcomes_total",
		Help: "Authentication checks, by scheme (digest, bearer) and result (ok, challenge, stale, mismatch, unknown_user, ...).",
	}, []string{"scheme", "result"})
	for i, s := range schemeNames {
		m.auth[i] = make(map[string]prometheus.Counter, len(authResults))
		for _, res := range authResults {
			m.auth[i][res] = m.authVec.WithLabelValues(s, res)
		}
	}
	cs = append(cs, m.authVec)

	// registrar
	m.registerDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "registrar", Name: "register_duration_seconds",
		Help:    "Time to handle one REGISTER, from parsed request to response built (authentication, table update).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	counter := func(sub, name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help})
		cs = append(cs, c)
		return c
	}
	m.registerDropped = counter("registrar", "dropped_total", "REGISTER requests dropped unanswered (a line break inside a header).")
	m.registrations = counter("registrar", "registrations_total", "Bindings created by REGISTER (a new device or contact).")
	m.refreshes = counter("registrar", "refreshes_total", "Bindings refreshed in place by REGISTER.")
	m.unregistrations = counter("registrar", "unregistrations_total", "Bindings removed by REGISTER (expires=0 or Contact: *).")
	m.expirations = counter("registrar", "expirations_total", "Bindings removed because they expired.")
	m.replacements = counter("registrar", "replacements_total", "Bindings replaced by a newer device beyond registrar.max_contacts (last device wins).")
	bindings := newFuncGaugeVec(prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "registrar", "bindings"),
		"Bindings in the location table, by transport, counted at scrape time.", []string{"transport"}, nil),
		func(ch chan<- prometheus.Metric, d *prometheus.Desc) {
			var counts map[string]int
			if f := m.bindings.Load(); f != nil {
				counts = (*f)()
			}
			for _, tp := range transportNames[:numTransports-1] { // every known transport, even at 0
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(counts[tp]), tp)
			}
			other := 0
			for tp, n := range counts {
				if transportIndex(tp) == transportOther {
					other += n
				}
			}
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(other), "other")
		})
	cs = append(cs, m.registerDuration, bindings)

	// store
	commitDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "store", Name: "commit_duration_seconds",
		Help:    "Time of one bbolt commit (fsync included), by kind: bindings (group commit) or records (credential, connection, API key).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"kind"})
	commitFail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "store", Name: "commit_failures_total",
		Help: "bbolt commits that failed, by kind (bindings, records).",
	}, []string{"kind"})
	for i, k := range commitKinds {
		m.commitDuration[i] = commitDur.WithLabelValues(k)
		m.commitFailures[i] = commitFail.WithLabelValues(k)
	}
	cs = append(cs, commitDur, commitFail)

	// proxy
	m.callsAttempted = counter("proxy", "calls_attempted_total", "INVITEs outside a dialog accepted for routing (authenticated or from a trusted peer).")
	m.callsAnswered = counter("proxy", "calls_answered_total", "Proxied calls whose final response was a 2xx.")
	m.callsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "proxy", Name: "calls_failed_total",
		Help: "Proxied calls that ended with a final response of 300 to 699, by status code.",
	}, []string{"code"})
	for _, c := range commonFailureCodes {
		m.callsFailed.WithLabelValues(strconv.Itoa(c))
	}
	fwd := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "proxy", Name: "forwarded_requests_total",
		Help: "Requests the proxy forwarded, by method: each request once, however many branches it took (forks, gateway failover); ACK and CANCEL, which follow their INVITE, are not counted.",
	}, []string{"method"})
	for i, meth := range methodNames {
		m.forwarded[i] = fwd.WithLabelValues(meth)
	}
	m.firstResponse = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "proxy", Name: "invite_first_response_seconds",
		Help:    "Time from forwarding an INVITE to the first response from downstream (100 Trying or later).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	dialogs := newFuncGauge(prometheus.NewDesc(prometheus.BuildFQName(namespace, "proxy", "dialogs_active"),
		"Confirmed dialogs (calls) tracked by the proxy, at scrape time.", nil, nil), &m.dialogs)
	cs = append(cs, m.callsFailed, fwd, m.firstResponse, dialogs)

	// guard
	m.bansIssued = counter("guard", "bans_issued_total", "Source IPs banned after repeated authentication failures.")
	rej := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "guard", Name: "rejected_total",
		Help: "Requests and connections refused by bans and limits before authentication, by reason.",
	}, []string{"reason"})
	m.rejected = make(map[string]prometheus.Counter, len(rejectReasons))
	for _, reason := range rejectReasons {
		m.rejected[reason] = rej.WithLabelValues(reason)
	}
	bans := newFuncGauge(prometheus.NewDesc(prometheus.BuildFQName(namespace, "guard", "bans_active"),
		"Source IPs banned now, at scrape time.", nil, nil), &m.bansActive)
	cs = append(cs, rej, bans)

	// websocket
	wsRef := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "websocket", Name: "refused_total",
		Help: "WebSocket connections closed before their upgrade reached SIP, or for a message over the size limit, by reason: handshake, subprotocol, origin, pending, message_size.",
	}, []string{"reason"})
	m.wsRefused = map[string]prometheus.Counter{}
	for _, r := range wsRefusals {
		m.wsRefused[r] = wsRef.WithLabelValues(r)
	}
	anon := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "proxy", Name: "anonymous_calls_total",
		Help: "Anonymous requests (click-to-call over ws/wss, no credential) by result: allowed, not_public (403), rate_limited (403).",
	}, []string{"result"})
	m.anonymous = map[string]prometheus.Counter{}
	for _, r := range anonymousResults {
		m.anonymous[r] = anon.WithLabelValues(r)
	}
	cs = append(cs, wsRef, anon)
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// RequestReceived counts a SIP request handed to a handler and marks one
// more transaction in flight; RequestDone must follow when the handler
// returns. method and transport are as sipgo gives them (any case).
func (m *Metrics) RequestReceived(method, transport string) {
	m.requests[methodIndex(method)][transportIndex(transport)].Inc()
	m.inflight.Inc()
}

// RequestDone marks the end of a handler started with RequestReceived.
func (m *Metrics) RequestDone() { m.inflight.Dec() }

// ResponseSent counts a response to a request of the given method.
func (m *Metrics) ResponseSent(method string, code int) {
	mi := methodIndex(method)
	if code < 100 || code > 699 {
		code = 0 // counted as class "other", code "other"
	}
	key := uint32(mi)<<16 | uint32(code)
	m.respMu.RLock()
	c := m.respByKey[key]
	m.respMu.RUnlock()
	if c == nil {
		c = m.responseCounter(key, mi, code)
	}
	c.Inc()
}

func (m *Metrics) responseCounter(key uint32, mi, code int) prometheus.Counter {
	m.respMu.Lock()
	defer m.respMu.Unlock()
	if c := m.respByKey[key]; c != nil {
		return c
	}
	class, codeLabel := "other", "other"
	if code != 0 {
		class = string(rune('0'+code/100)) + "xx"
		codeLabel = strconv.Itoa(code)
	}
	c := m.responses.WithLabelValues(methodNames[mi], class, codeLabel)
	m.respByKey[key] = c
	return c
}

// AuthOutcome counts one authentication check. scheme is SchemeDigest or
// SchemeBearer; result one of the names listed for
// sipwarden_auth_outcomes_total (auth.Outcome's String, "acl", "banned",
// "invalid_token"). Both must be constants of the caller, never network
// input: a value outside those sets makes a new series.
func (m *Metrics) AuthOutcome(scheme, result string) {
	si := -1
	switch scheme {
	case SchemeDigest:
		si = 0
	case SchemeBearer:
		si = 1
	}
	if si >= 0 {
		if c := m.auth[si][result]; c != nil {
			c.Inc()
			return
		}
	}
	m.authVec.WithLabelValues(scheme, result).Inc()
}

// QueueDelay records how long a request waited for a stateless worker.
func (m *Metrics) QueueDelay(d time.Duration) { m.queued.Observe(d.Seconds()) }

// RegisterHandled records one answered REGISTER: how long it took and the
// binding changes it made.
func (m *Metrics) RegisterHandled(d time.Duration, added, refreshed, removed, replaced int) {
	m.registerDuration.Observe(d.Seconds())
	if added > 0 {
		m.registrations.Add(float64(added))
	}
	if refreshed > 0 {
		m.refreshes.Add(float64(refreshed))
	}
	if removed > 0 {
		m.unregistrations.Add(float64(removed))
	}
	if replaced > 0 {
		m.replacements.Add(float64(replaced))
	}
}

// RegisterDropped counts a REGISTER dropped unanswered.
func (m *Metrics) RegisterDropped() { m.registerDropped.Inc() }

// BindingExpired counts one binding removed by expiry.
func (m *Metrics) BindingExpired() { m.expirations.Inc() }

// SetBindings sets the function that counts the location table's bindings
// by transport at scrape time. It must be cheap and safe for concurrent
// use.
func (m *Metrics) SetBindings(f func() map[string]int) { m.bindings.Store(&f) }

// StoreCommit records one bbolt commit of the given kind (CommitBindings,
// CommitRecords): its duration, and a failure when err is not nil.
func (m *Metrics) StoreCommit(kind string, d time.Duration, err error) {
	i := 0
	if kind == CommitRecords {
		i = 1
	}
	m.commitDuration[i].Observe(d.Seconds())
	if err != nil {
		m.commitFailures[i].Inc()
	}
}

// The proxy's API.

// CallAttempted counts an INVITE outside a dialog that the proxy accepted
// for routing (after authentication), once per call, not per branch or
// retransmission.
func (m *Metrics) CallAttempted() { m.callsAttempted.Inc() }

// CallFinished counts the final status of a call counted by CallAttempted:
// 2xx as answered, 300 to 699 as failed with its code. Call it once per
// call, with the final response relayed upstream (487 for a cancelled
// call, 408 when Timer C fired).
func (m *Metrics) CallFinished(status int) {
	switch {
	case status >= 200 && status < 300:
		m.callsAnswered.Inc()
	case status >= 300 && status < 700:
		m.callsFailed.WithLabelValues(strconv.Itoa(status)).Inc()
	default:
		m.callsFailed.WithLabelValues("other").Inc()
	}
}

// Forwarded counts one request forwarded downstream (each fork branch
// counts).
func (m *Metrics) Forwarded(method string) { m.forwarded[methodIndex(method)].Inc() }

// FirstResponse records the time from forwarding an INVITE to its first
// response from downstream.
func (m *Metrics) FirstResponse(d time.Duration) { m.firstResponse.Observe(d.Seconds()) }

// SetActiveDialogs sets the function that returns the number of dialogs
// the proxy tracks, read at scrape time. It must be cheap and safe for
// concurrent use.
func (m *Metrics) SetActiveDialogs(f func() int) { m.dialogs.Store(&f) }

// The guard's API (bans and limits).

// BanIssued counts one source IP banned.
func (m *Metrics) BanIssued() { m.bansIssued.Inc() }

// SetBansActive sets the function that returns the number of bans in
// force, read at scrape time.
func (m *Metrics) SetBansActive(f func() int) { m.bansActive.Store(&f) }

// Rejected counts a request or connection refused by a ban or a limit
// before authentication. reason is one of the Reject constants; another
// value counts as RejectOther.
func (m *Metrics) Rejected(reason string) {
	c := m.rejected[reason]
	if c == nil {
		c = m.rejected[RejectOther]
	}
	c.Inc()
}

// Results of an anonymous call attempt, the values of the result label
// of sipwarden_proxy_anonymous_calls_total.
const (
	AnonymousAllowed     = "allowed"
	AnonymousNotPublic   = "not_public"
	AnonymousRateLimited = "rate_limited"
)

var anonymousResults = []string{AnonymousAllowed, AnonymousNotPublic, AnonymousRateLimited}

// AnonymousCall counts an anonymous call attempt; result is one of the
// Anonymous constants (another value is not counted).
func (m *Metrics) AnonymousCall(result string) {
	if c := m.anonymous[result]; c != nil {
		c.Inc()
	}
}

// Reasons a WebSocket connection is refused, the values of the reason
// label of sipwarden_websocket_refused_total.
const (
	WSHandshake   = "handshake"    // malformed, incomplete, slow or not a WebSocket upgrade; TLS failed
	WSSubprotocol = "subprotocol"  // no "sip" subprotocol (RFC 7118 section 4.1)
	WSOrigin      = "origin"       // Origin not allowed
	WSPending     = "pending"      // too many handshakes in progress (in all, or from the source)
	WSMessageSize = "message_size" // a message over the size limit closed the connection
)

var wsRefusals = []string{WSHandshake, WSSubprotocol, WSOrigin, WSPending, WSMessageSize}

// WebSocketRefused counts a WebSocket connection refused by the upgrade
// gate; reason is one of the WS constants (another counts as handshake).
func (m *Metrics) WebSocketRefused(reason string) {
	c := m.wsRefused[reason]
	if c == nil {
		c = m.wsRefused[WSHandshake]
	}
	c.Inc()
}

// SetConnectionsOpen sets the function that returns the open connections
// of a transport ("tcp", "tls", "ws", "wss"), read at scrape time.
func (m *Metrics) SetConnectionsOpen(f func(transport string) int) { m.connections.Store(&f) }

// commonFailureCodes are exported at 0 from the start, so that dashboards
// and alerts see the series before the first failure.
var commonFailureCodes = []int{404, 408, 480, 486, 487, 500, 503, 603}

var (
	schemeNames    = [numSchemes]string{SchemeDigest, SchemeBearer}
	commitKinds    = [numCommitKinds]string{CommitBindings, CommitRecords}
	connTransports = []string{"tcp", "tls", "ws", "wss"}
)

const (
	numSchemes     = 2
	numCommitKinds = 2
)
