package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/health"
	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
)

// observer is one server's observability: its metrics, its readiness, the
// SIP trace, and the HTTP handlers that expose them.
type observer struct {
	m     *metrics.Metrics
	ready *health.Readiness
	ctl   *logControl
	trace *slog.Logger // SIP message trace, at debug
	api   apiSlot
}

func newObserver(ctl *logControl, logger *slog.Logger) *observer {
	return &observer{
		m:     metrics.New(metrics.Options{Version: version}),
		ready: health.NewReadiness("store", "not open yet", "sip", "listeners not serving yet"),
		ctl:   ctl,
		trace: logger.With("component", "sip_trace"),
	}
}

// sip wraps a sipgo handler: it counts the request and the responses the
// handler sends (through its transaction), keeps the in-flight gauge
// while the handler runs, and traces both when the trace is on. Every
// handler registered on the SIP server goes through it.
func (o *observer) sip(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		method := string(req.Method)
		o.m.RequestReceived(method, req.Transport())
		defer o.m.RequestDone()
		if o.tracing() {
			o.traceMessage("SIP request received", req, slog.String("source", req.Source()))
		}
		// An ACK gets no response (and one for a 2xx comes without a
		// transaction): hand it over untouched.
		if req.Method != sip.ACK {
			tx = &observedTx{ServerTransaction: tx, o: o, method: method}
		}
		h(req, tx)
	}
}

// statelessExchange counts and traces a REGISTER answered by the
// stateless UDP path, which no sipgo handler sees.
func (o *observer) statelessExchange(req *sip.Request, res *sip.Response) {
	o.m.RequestReceived(string(req.Method), req.Transport())
	defer o.m.RequestDone()
	if o.tracing() {
		o.traceMessage("SIP request received", req, slog.String("source", req.Source()))
	}
	if res == nil {
		return
	}
	if o.tracing() {
		o.traceMessage("SIP response sending", res, slog.String("destination", res.Destination()))
	}
	o.m.ResponseSent(string(req.Method), res.StatusCode)
}

// watchProxy feeds the proxy's events and dialog count to the metrics.
func (o *observer) watchProxy(px *proxy.Proxy) {
	o.m.SetActiveDialogs(px.Dialogs().Count)
	px.OnEvent(func(ev proxy.Event) {
		if ev.Checked {
			scheme := metrics.SchemeDigest
			if ev.Scheme == "bearer" {
				scheme = metrics.SchemeBearer
			}
			o.m.AuthOutcome(scheme, ev.Outcome.String())
		}
		if ev.Forwarded {
			o.m.Forwarded(ev.Method)
		}
		if ev.Method == string(sip.INVITE) && !ev.InDialog && ev.Forwarded {
			o.m.CallAttempted()
			if ev.FirstResponse > 0 {
				o.m.FirstResponse(ev.FirstResponse)
			}
			if ev.Status >= 200 {
				o.m.CallFinished(ev.Status)
			}
		}
	})
}

// observedTx counts (and traces) the responses sent through a server
// transaction. Responses sipgo sends by itself (100 Trying to an INVITE,
// 200 to a CANCEL and the INVITE's 487) do not pass here.
type observedTx struct {
	sip.ServerTransaction
	o      *observer
	method string
}

func (t *observedTx) Respond(res *sip.Response) error {
	// Traced before it is sent, so that the line is in the log before the
	// peer can act on the response (and also when sending fails).
	if t.o.tracing() {
		t.o.traceMessage("SIP response sending", res, slog.String("destination", res.Destination()))
	}
	if err := t.ServerTransaction.Respond(res); err != nil {
		return err
	}
	t.o.m.ResponseSent(t.method, res.StatusCode)
	return nil
}

func (o *observer) tracing() bool {
	return o.ctl.trace.Load() && o.trace.Enabled(context.Background(), slog.LevelDebug)
}

// tracedMessage is what the trace reads of a request or a response.
type tracedMessage interface {
	StartLine() string
	Headers() []sip.Header
	Body() []byte
	Transport() string
}

func (o *observer) traceMessage(what string, m tracedMessage, peer slog.Attr) {
	o.trace.LogAttrs(context.Background(), slog.LevelDebug, what,
		slog.String("transport", strings.ToLower(m.Transport())), peer,
		slog.String("message", redactedMessage(m)))
}

// redactedMessage renders a SIP message as it is on the wire, except that
// the values of Authorization and Proxy-Authorization headers are
// replaced by [redacted]: they hold digest responses (from which an
// offline dictionary attack on the password starts) and bearer tokens.
func redactedMessage(m tracedMessage) string {
	var b strings.Builder
	b.WriteString(m.StartLine())
	b.WriteString("\r\n")
	for _, h := range m.Headers() {
		name := h.Name()
		b.WriteString(name)
		b.WriteString(": ")
		if secretHeader(name) {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(h.Value())
		}
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(m.Body())
	return b.String()
}

// secretHeader reports whether a header's value must never be logged.
// Header names are case-insensitive (RFC 3261 7.3.1).
func secretHeader(name string) bool {
	return strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Proxy-Authorization")
}

// registerEvent feeds one handled REGISTER to the metrics.
func (o *observer) registerEvent(ev registrar.Event) {
	if ev.Dropped {
		o.m.RegisterDropped()
		return
	}
	// Outcome stays NoCredentials when the request was refused before
	// authentication (400, 404): no check happened. A real "no
	// credentials" check is always answered with a 401 challenge.
	if ev.Outcome != auth.NoCredentials || ev.Status == 401 {
		scheme := metrics.SchemeDigest
		if ev.Scheme == "bearer" {
			scheme = metrics.SchemeBearer
		}
		o.m.AuthOutcome(scheme, ev.Outcome.String())
	}
	o.m.RegisterHandled(ev.Duration, ev.Added, ev.Refreshed, ev.Removed, ev.Replaced)
}

// bindingExpired is the location table's OnExpire hook.
func (o *observer) bindingExpired(store.Binding) { o.m.BindingExpired() }

// storeOptions adds the commit hooks to the store's options.
func (o *observer) storeOptions(opts store.Options) store.Options {
	opts.OnBindingFlush = func(_ int, d time.Duration, err error) { o.m.StoreCommit(metrics.CommitBindings, d, err) }
	opts.OnCommit = func(d time.Duration, err error) { o.m.StoreCommit(metrics.CommitRecords, d, err) }
	return opts
}

// handler is what an HTTP listener serves: /healthz, /readyz, /metrics
// when withMetrics, and everything else to next when it is not nil.
// /healthz, /readyz and /metrics need no API key.
func (o *observer) handler(next http.Handler, withMetrics, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Live)
	mux.Handle("GET /readyz", o.ready)
	if withMetrics {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.m.Registry(), promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
		}))
		if withPprof {
			mux.HandleFunc("GET /debug/pprof/", pprof.Index)
			mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		}
	}
	if next != nil {
		mux.Handle("/", next)
	}
	return mux
}

// serveHTTP serves the bound API listener and, when http.metrics_listen
// is set, binds and serves the metrics listener. Until o.api is set the
// API answers 503, while /healthz, /readyz and /metrics work: the store
// may take a while to open. Both servers are shut down by s.close.
func (s *server) serveHTTP(o *observer, apiLn net.Listener, logger *slog.Logger) error {
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	ml := s.cfg.HTTP.MetricsListen
	var metricsLn net.Listener
	if ml != "" {
		ln, err := net.Listen("tcp", ml)
		if err != nil {
			return fmt.Errorf("listen http.metrics_listen %s: %w", ml, err)
		}
		metricsLn = ln
		s.addrs["metrics"] = ln.Addr().String()
	}
	var servers []*http.Server
	run := func(h http.Handler, ln net.Listener) {
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
		servers = append(servers, hs)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http server", "addr", ln.Addr().String(), "error", err)
			}
		}()
	}
	run(o.handler(&o.api, metricsLn == nil, s.cfg.HTTP.Pprof), apiLn)
	s.http = servers[0]
	if metricsLn != nil {
		run(o.handler(nil, true, s.cfg.HTTP.Pprof), metricsLn)
	}
	// Shut down first at close (appended again once the API is set, so
	// that no API request runs while the store closes) and at most once.
	s.stopHTTP = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, hs := range servers {
			_ = hs.Shutdown(ctx)
		}
	})
	s.closer = append(s.closer, s.stopHTTP)
	return nil
}

// apiSlot holds the API's handler once the server is wired; until then
// every API route answers 503.
type apiSlot struct{ h atomic.Pointer[http.Handler] }

func (a *apiSlot) set(h http.Handler) { a.h.Store(&h) }

func (a *apiSlot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := a.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(api.Error{Errors: []api.ErrorObject{{
		Code: "unavailable", Title: "Service unavailable", Detail: "the server is starting; GET /readyz tells why it is not ready",
	}}})
}

// openStore opens the store, retrying while it cannot (another process
// still holds the file during a restart, a volume not mounted yet) with
// a growing delay, until ctx ends. Meanwhile /readyz answers 503 with the
// reason and each failure is logged.
func openStore(ctx context.Context, path string, opts store.Options, ready *health.Readiness, logger *slog.Logger) (*store.DB, error) {
	delay := time.Second
	for {
		db, err := store.Open(path, opts)
		if err == nil {
			ready.Ready("store")
			return db, nil
		}
		ready.NotReady("store", err.Error())
		logger.Error("store cannot be opened; retrying", "error", err, "retry_in_s", delay.Seconds())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open store: %w", ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}
