package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/console"
	"github.com/sipwarden/sipwarden/health"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/web"
)

// handler is what an HTTP listener serves: /healthz, /readyz, /metrics
// when withMetrics, and, when next is not nil, the test phone at /phone
// and everything else to next. /healthz, /readyz, /metrics and /phone
// need no API key.
func (o *observer) handler(next http.Handler, withMetrics, withPprof bool, phonePorts web.Ports) http.Handler {
	mux := http.NewServeMux()
	get := func(path string, h http.Handler) {
		mux.Handle("GET "+path, h)
		// Any other method: 405 here, where it fell through to the API
		// below, which asked for a key (401) or found no route (404).
		mux.HandleFunc(path, onlyGET)
	}
	get("/healthz", http.HandlerFunc(health.Live))
	get("/readyz", o.ready)
	if withMetrics {
		get("/metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
		}))
		if withPprof {
			mux.HandleFunc("GET /debug/pprof/", pprof.Index)
			mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
			// profile and trace run for ?seconds=N (30 s by default),
			// past the listener's deadlines.
			mux.Handle("GET /debug/pprof/profile", api.LiftDeadlines(http.HandlerFunc(pprof.Profile)))
			mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
			mux.Handle("GET /debug/pprof/trace", api.LiftDeadlines(http.HandlerFunc(pprof.Trace)))
		}
	}
	if next != nil {
		// The test phone (JsSIP over the ws/wss listeners), no API key:
		// it holds no secret and reaches SIP only with credentials.
		phone := web.Phone(phonePorts)
		get("/phone", phone)
		get("/phone/", phone)
		c := console.Handler() // the web console at / (console/)
		mux.Handle("GET /{$}", c)
		mux.Handle("GET "+console.AssetPrefix, c)
		mux.Handle("/", next)
	}
	return mux
}

// phonePorts are the ports of the bound ws and wss listeners, the test
// phone's default server URL's (0 for one not bound).
func (n *Node) phonePorts() web.Ports {
	port := func(tp string) int {
		ap, err := netip.ParseAddrPort(n.lis.addrs[tp])
		if err != nil {
			return 0
		}
		return int(ap.Port())
	}
	return web.Ports{WS: port("ws"), WSS: port("wss")}
}

// onlyGET answers a method other than GET or HEAD on a public path: 405
// with Allow (RFC 9110 section 15.5.6).
func onlyGET(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, r.Method+" is not allowed on "+r.URL.Path+"; allowed: GET, HEAD", http.StatusMethodNotAllowed)
}

// serveHTTP serves the bound API listener and, when http.metrics_listen
// is set, binds and serves the metrics listener. Until n.api is set the
// API answers 503, while /healthz, /readyz and /metrics work: the store
// may take a while to open. Both servers are shut down by Close.
func (n *Node) serveHTTP(apiLn net.Listener) error {
	o, logger := n.obs, n.log
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	ml := n.cfg.HTTP.MetricsListen
	var metricsLn net.Listener
	if ml != "" {
		ln, err := net.Listen("tcp", ml)
		if err != nil {
			return fmt.Errorf("listen http.metrics_listen %s: %w", ml, err)
		}
		metricsLn = ln
		n.addrs["metrics"] = ln.Addr().String()
	}
	var servers []*http.Server
	run := func(h http.Handler, ln net.Listener) {
		capped := capConns(ln, n.cfg.Limits.HTTPMaxConnections, logger)
		ln = capped
		hs := &http.Server{
			ConnState: capped.connState,
			Handler:   h,
			// A client holds a connection (a file descriptor and a
			// goroutine) only while it sends a request promptly, reads
			// the answer promptly, and between requests for
			// http_idle_timeout; the handlers that take longer (backup,
			// export, the profiler) lift the deadlines themselves
			// (LiftDeadlines).
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       httpReadTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       n.cfg.Limits.HTTPIdleTimeout.D(),
			ErrorLog:          errLog,
		}
		servers = append(servers, hs)
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http server", "addr", ln.Addr().String(), "error", err)
			}
		}()
	}
	run(o.handler(&n.api, metricsLn == nil, n.cfg.HTTP.Pprof, n.phonePorts()), apiLn)
	if metricsLn != nil {
		run(o.handler(nil, true, n.cfg.HTTP.Pprof, web.Ports{}), metricsLn)
	}
	// Shut down first at close (appended again once the API is set, so
	// that no API request runs while the store closes) and at most once.
	n.stopHTTP = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, hs := range servers {
			_ = hs.Shutdown(ctx)
		}
	})
	n.closer = append(n.closer, n.stopHTTP)
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
