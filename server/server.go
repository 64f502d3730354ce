// Package server is sipwarden's composition root: it builds and runs one
// node from a config.Config. It binds the listeners, opens the store,
// assembles authentication, the registrar, the proxy, the admission chain
// every SIP request passes through (package admission), the management
// API and the observability around them, and closes them in reverse
// order. It holds wiring, not behaviour: each piece it assembles lives in
// a package of its own (docs/architecture.md draws the picture).
//
// cmd/sipwarden's serve calls Run; tests and other programs call Start.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/stateless"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/webhook"
)

// Options are what a node takes besides its configuration.
type Options struct {
	// Version is the build's version, for logs and sipwarden_build_info.
	Version string
	// Middleware are extra admission rules, placed inside the built-in
	// ones (observation, the guard's gate, the in-flight limit) on every
	// SIP path.
	Middleware []admission.Middleware
}

// Node is one running sipwarden.
type Node struct {
	cfg   config.Config
	opts  Options
	log   *slog.Logger
	obs   *observer // metrics, readiness, SIP trace: observe.go
	addrs map[string]string
	lis   *listeners
	// closer holds what Close undoes, in reverse order.
	closer []func()

	db *store.DB
	// cl is the cluster's Redis, bans the bans shared through it (nil
	// without cluster.redis_url: server/cluster.go).
	cl      *cluster.Cluster
	bans    *cluster.Bans
	records *cluster.Records
	shared  *cluster.Bindings
	jwtSeed []byte // the cluster's Ed25519 JWT seed (nil with hs256)
	// nonceKey is the cluster's nonce key, stored again if Redis loses it
	// (reseeded).
	nonceKey []byte
	// peers is db once open, for the guard's exemption of ip
	// connections, which listeners may consult before (server/proxy.go).
	peers  atomic.Pointer[store.DB]
	auth   *auth.Authenticator
	loc    *registrar.Location
	reg    *registrar.Registrar
	keeper *lifecycle.Keeper
	ua     *sipgo.UserAgent
	sip    *sipgo.Server
	proxy  *proxy.Proxy
	hooks  *webhook.Dispatcher
	guard  *guard.Guard
	conns  *connlimit.Limiter
	gate   *admission.Gate
	limit  *admission.Limit
	// front answers REGISTERs without sipgo's transactions (nil when
	// registrar.udp_mode and stream_mode are both stateful).
	front *stateless.Front
	// flows removes the bindings of closed WebSocket connections (nil
	// without ws and wss listeners).
	flows    *wsFlows
	api      apiSlot
	stopHTTP func() // shuts the HTTP servers down, once
}

// Run runs a node until ctx ends, then drains and closes it.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) error {
	n, err := Start(ctx, cfg, logger, opts)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // stopped while waiting for the store
		}
		return err
	}
	<-ctx.Done()
	n.log.Info("shutting down")
	n.obs.ready.NotReady("server", "shutting down")
	n.Close()
	return nil
}

// Start binds every listener (returning bind errors synchronously),
// serves /healthz, /readyz and /metrics at once, opens the store (waiting
// for it while it cannot be opened, with /readyz telling why), and then
// serves SIP and the API in goroutines until ctx ends or Close.
//
// sipgo's process-wide settings (SetSIPGlobals) must be set before.
func Start(ctx context.Context, cfg config.Config, logger *slog.Logger, opts Options) (*Node, error) {
	ctl, logger := logControlOf(logger, cfg.Log)
	n := &Node{cfg: cfg, opts: opts, log: logger, addrs: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	obs, err := newObserver(ctl, logger, opts.Version)
	if err != nil {
		return nil, err
	}
	n.obs = obs
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	n.newGuard()
	if err := n.listen(); err != nil {
		return nil, err
	}
	if err := n.openStore(ctx); err != nil {
		return nil, err
	}
	if err := n.openCluster(ctx); err != nil {
		return nil, err
	}
	issuer, verifier, err := newTokens(cfg, logger, n.sharedJWTSeed(ctx))
	if err != nil {
		return nil, err
	}
	if err := n.newAuth(ctx, verifier); err != nil {
		return nil, err
	}
	if err := n.newWebhooks(); err != nil {
		return nil, err
	}
	if err := n.newRegistrar(ctx); err != nil {
		return nil, err
	}
	n.watchWebSockets()
	if err := n.newSIP(); err != nil {
		return nil, err
	}
	if err := n.newProxy(); err != nil {
		return nil, err
	}
	n.route()
	if err := n.newAPI(issuer, verifier, ctl); err != nil {
		return nil, err
	}
	n.run(ctx)
	ok = true
	logger.Info("sipwarden started", "version", opts.Version, "realm", cfg.SIP.Realm, "domain", cfg.SIP.Domain,
		"udp", n.addrs["udp"], "tcp", n.addrs["tcp"], "tls", n.addrs["tls"], "ws", n.addrs["ws"], "wss", n.addrs["wss"],
		"http", n.addrs["http"], "data_dir", cfg.DataDir)
	return n, nil
}

// Close stops everything Start started, in reverse order.
func (n *Node) Close() {
	for i := len(n.closer) - 1; i >= 0; i-- {
		n.closer[i]()
	}
	n.closer = nil
	if n.ua != nil {
		_ = n.ua.Close()
		n.ua = nil
	}
}

// Addr returns the bound address of a listener: "udp", "tcp", "tls",
// "ws", "wss", "http", or "metrics" (only with http.metrics_listen); "" when there is
// none.
func (n *Node) Addr(name string) string { return n.addrs[name] }

// Store returns the node's store, for tests and tools that seed data.
func (n *Node) Store() *store.DB { return n.db }

// Gatherer returns the registry of the node's metrics, as /metrics
// exposes them.
func (n *Node) Gatherer() prometheus.Gatherer { return n.obs.reg }

// StatelessHandled returns how many REGISTERs the stateless front
// answered (0 when registrar.udp_mode and stream_mode are stateful).
func (n *Node) StatelessHandled() uint64 {
	if n.front == nil {
		return 0
	}
	return n.front.Handled()
}

// StatelessChallenges returns how many first INVITEs the stateless front
// answered and how many ACKs of those answers it absorbed (0 and 0 with
// proxy.challenge_mode stateful, or without the front).
func (n *Node) StatelessChallenges() (answered, acks uint64) {
	if n.front == nil {
		return 0, 0
	}
	return n.front.Challenged(), n.front.ACKsAbsorbed()
}

// run starts the background loops and serves SIP.
func (n *Node) run(ctx context.Context) {
	runCtx, cancel := context.WithCancel(ctx)
	n.closer = append(n.closer, cancel)
	go n.loc.Run(runCtx, time.Second)
	go n.proxy.Run(runCtx)
	go n.keeper.Run(runCtx)
	go n.guard.Run(runCtx, 10*time.Second)
	go n.hooks.Run(runCtx)
	n.runCluster(runCtx)
	n.lis.stopped = func(tp string, err error) { n.obs.ready.NotReady("sip."+tp, "listener stopped: "+err.Error()) }
	n.lis.serve(n.sip, n.log)
	n.obs.ready.Ready("sip")
}
