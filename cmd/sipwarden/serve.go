package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/stateless"
	"github.com/sipwarden/sipwarden/store"
)

func runServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file` (default: embedded defaults; see config/example.yaml)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "sipwarden:", err)
		return 2
	}
	logger := newLogger(cfg.Log, stderr)
	setSIPGlobals(cfg, logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer reloadLogOnHUP(ctx, *cfgPath, logger)()
	if h := cfg.Limits.GCHeadroomMB; h > 0 {
		go tuneGC(ctx, uint64(h)<<20, time.Second, logger) // process-wide: here, not in start
	}
	if err := serve(ctx, cfg, logger); err != nil {
		logger.Error("sipwarden stopped", "error", err)
		return 1
	}
	return 0
}

// setSIPGlobals sets sipgo's package-level message limit and logger. They
// are process globals, so they are set once, before any server starts, and
// never from start (tests start several servers concurrently).
func setSIPGlobals(cfg config.Config, logger *slog.Logger) {
	sip.ParseMaxMessageLength = cfg.SIP.MaxMessageBytes
	// Deliberately no MTU switch to TCP (RFC 3261 18.1.1): a device
	// registered over UDP behind NAT cannot take a TCP connection, so an
	// INVITE with a large SDP goes over UDP, fragmented by IP if need be,
	// as Kamailio does. sipgo would otherwise refuse anything over 1300
	// bytes with ErrUDPMTUCongestion.
	sip.UDPMTUSize = cfg.SIP.MaxMessageBytes + 200
	// Completed transactions linger sip.transaction_linger instead of
	// 64*T1 (32 s): sipgo keeps each with its request and responses, about
	// 20 KB per proxied call, so at 4,000 calls/s the RFC's 32 s held 2.5 GB.
	linger := cfg.SIP.TransactionLinger.D()
	sip.Timer_D, sip.Timer_J, sip.Timer_L, sip.Timer_M = linger, linger, linger, linger
	sip.SetDefaultLogger(slog.New(redactHandler{logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "sipgo")})}))
}

// server holds what serve starts, for tests that start it in-process.
type server struct {
	cfg   config.Config
	db    *store.DB
	loc   *registrar.Location
	sip   *sipgo.Server
	ua    *sipgo.UserAgent
	proxy *proxy.Proxy
	guard *sipGuard // bans, limits (guard.go)
	// stateless answers REGISTERs without sipgo's transactions (nil when
	// registrar.udp_mode and stream_mode are both stateful).
	stateless *stateless.Front
	http      *http.Server
	addrs     map[string]string // transport -> bound address ("http" too)
	closer    []func()

	obs      *observer // metrics, readiness, SIP trace: observe.go
	stopHTTP func()    // shuts the HTTP servers down, once
}

// serve runs the server until ctx ends.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	s, err := start(ctx, cfg, logger)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // stopped while waiting for the store
		}
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	s.obs.ready.NotReady("server", "shutting down")
	s.close()
	return nil
}

// start binds every listener (returning bind errors synchronously),
// serves /healthz, /readyz and /metrics at once, opens the store (waiting
// for it while it cannot be opened, with /readyz telling why), and then
// serves SIP and the API in goroutines.
func start(ctx context.Context, cfg config.Config, logger *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, addrs: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	ctl, logger := logControlOf(logger, cfg.Log)
	obs := newObserver(ctl, logger)
	s.obs = obs
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}

	sg := newSIPGuard(cfg, logger.With("component", "guard"))
	sg.count(obs.m)
	s.guard = sg
	// Bind every listener first.
	lis, err := bindSIP(cfg, logger, sg.conns)
	if err != nil {
		return nil, err
	}
	s.closer = append(s.closer, lis.close)
	for tp, a := range lis.addrs {
		s.addrs[tp] = a
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen http %s: %w", cfg.HTTP.Listen, err)
	}
	s.addrs["http"] = httpLn.Addr().String()
	if err := s.serveHTTP(obs, httpLn, logger); err != nil {
		return nil, err
	}

	db, err := openStore(ctx, filepath.Join(cfg.DataDir, "sipwarden.db"), obs.storeOptions(store.Options{
		BindingFlushInterval: cfg.Registrar.BindingFlushInterval.D(),
		Logger:               logger.With("component", "store"),
	}), obs.ready, logger)
	if err != nil {
		return nil, err
	}
	s.db = db
	s.closer = append(s.closer, func() {
		if err := db.Close(); err != nil {
			logger.Error("close store", "error", err)
		}
	})

	nonceKey, err := loadNonceKey(cfg, logger)
	if err != nil {
		return nil, err
	}
	nonces, err := digest.NewNonces(nonceKey, cfg.Auth.NonceLifetime.D(), nil)
	if err != nil {
		return nil, fmt.Errorf("nonces: %w", err)
	}
	algs := make([]digest.Algorithm, 0, len(cfg.Auth.Algorithms))
	for _, n := range cfg.Auth.Algorithms {
		a, err := digest.ParseAlgorithm(n)
		if err != nil {
			return nil, fmt.Errorf("config: auth.algorithms: %w", err)
		}
		algs = append(algs, a)
	}
	issuer, verifier, err := newTokens(cfg, logger)
	if err != nil {
		return nil, err
	}
	acfg := auth.Config{
		Realm:      cfg.SIP.Realm,
		Algorithms: algs,
		QOP:        cfg.Auth.QOP,
		Nonce:      nonces,
		Count:      digest.NewCounts(cfg.Auth.MaxNonceCounts, nil),
		// Allow-lists of connections (auth/acl.go).
		Connections: db,
	}
	if cfg.JWT.Enabled {
		acfg.Tokens, acfg.BearerScope, acfg.BearerFirst = verifier, cfg.JWT.Scope, cfg.JWT.ChallengeOrder == "bearer_first"
	}
	authn, err := auth.New(acfg, db)
	if err != nil {
		return nil, err
	}

	loc := registrar.NewLocation(db, nil, logger.With("component", "location"))
	s.loc = loc
	loc.OnExpire(obs.bindingExpired)
	obs.m.SetBindings(loc.CountByTransport)
	restoreStart := time.Now()
	bs, err := db.LoadBindings(time.Now())
	if err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	n := loc.Restore(bs)
	bs = nil
	if n >= 100_000 {
		// The decoded slice and Restore's grouping are garbage now, but the
		// heap grew to hold them and the table at once: at a million
		// bindings 450 MB of idle heap stayed resident. Give it back.
		debug.FreeOSMemory()
	}
	logger.Info("bindings restored", "count", n, "duration_s", time.Since(restoreStart).Seconds())

	reg := registrar.New(registrar.Config{
		DefaultExpires: time.Duration(cfg.Registrar.DefaultExpires) * time.Second,
		MinExpires:     time.Duration(cfg.Registrar.MinExpires) * time.Second,
		MaxExpires:     time.Duration(cfg.Registrar.MaxExpires) * time.Second,
		MaxContacts:    cfg.Registrar.MaxContacts,
		JitterPercent:  cfg.Registrar.ExpiryJitterPercent,
		Domains:        domains(cfg, lis.addrs),
		LocalAddrs:     lis.addrs,
		Server:         cfg.SIP.UserAgent,
	}, loc, authn, nil, logger.With("component", "registrar"))
	reg.OnEvent(obs.registerEvent)

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.SIP.UserAgent),
		sipgo.WithUserAgentHostname(cfg.SIP.Domain),
		sipgo.WithUserAgenTLSConfig(lis.tlsConfig),
	)
	if err != nil {
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	s.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger.With("component", "sip")))
	if err != nil {
		return nil, fmt.Errorf("sip server: %w", err)
	}
	s.sip = srv
	srv.OnRegister(obs.sip(sg.wrap(reg.ServeSIP)))
	reg.OnEvent(sg.observe)
	lis.statelessUDP = lis.udp != nil && cfg.Registrar.UDPMode == "stateless"
	lis.statelessStream = (lis.tcp != nil || lis.tls != nil) && cfg.Registrar.StreamMode == "stateless"
	if lis.statelessUDP || lis.statelessStream {
		lis.front = stateless.New(reg, stateless.Config{
			Workers:         runtime.GOMAXPROCS(0),
			MaxMessageBytes: cfg.SIP.MaxMessageBytes,
			Logger:          logger.With("component", "registrar"),
			Observe:         obs.statelessExchange,
			Gate:            sg.gate,
			GateDone:        sg.done,
		})
		s.stateless = lis.front
	}

	px, err := newProxy(cfg, lis.addrs, authn, loc, db, ua, srv, logger.With("component", "proxy"))
	if err != nil {
		return nil, err
	}
	obs.watchProxy(px)
	sg.watchProxy(px)
	// Every other method goes through the proxy: out-of-dialog requests are
	// authenticated and routed, in-dialog ones loose-routed. Over TCP the
	// ACK of our own non-2xx reaches OnAck too; the proxy absorbs it.
	for _, on := range []func(sipgo.RequestHandler){
		srv.OnInvite, srv.OnAck, srv.OnCancel, srv.OnBye, srv.OnOptions, srv.OnMessage,
		srv.OnSubscribe, srv.OnNotify, srv.OnRefer, srv.OnInfo, srv.OnUpdate, srv.OnPrack, srv.OnPublish,
	} {
		on(obs.sip(sg.wrap(px.ServeSIP)))
	}
	srv.OnNoRoute(obs.sip(sg.wrap(px.ServeSIP)))

	keyGuard := apiKeyGuard(cfg)
	apiSrv, err := api.New(api.Config{
		Realm:             cfg.SIP.Realm,
		MinPasswordLength: cfg.HTTP.MinPasswordLength,
		AdminKeyFile:      filepath.Join(cfg.DataDir, "admin.key"),
		AdminKey:          cfg.HTTP.APIKey,
		MaxBodyBytes:      cfg.Limits.APIMaxBodyBytes,
		Bans:              sg.g,
		KeyAttempts:       keyGuard,
	}, db, loc, logger.With("component", "api"))
	if err != nil {
		return nil, err
	}
	apiSrv.SetCalls(callList{px.Dialogs()})
	apiSrv.SetTokens(issuer, verifier)
	apiSrv.OnCredentialRemoved(func(c store.Credential) {
		if n := px.Dialogs().EndCredential(c.ID); n > 0 {
			logger.Info("calls ended for a removed credential", "credential_id", c.ID, "calls", n)
		}
	})
	s.proxy = px
	apiSrv.HandleLogLevel(&ctl.level)
	obs.api.set(apiSrv.Handler())
	s.closer = append(s.closer, s.stopHTTP) // no API request while the rest closes

	runCtx, cancel := context.WithCancel(ctx)
	s.closer = append(s.closer, cancel)
	go loc.Run(runCtx, time.Second)
	go px.Run(runCtx)
	lis.stopped = func(tp string, err error) { obs.ready.NotReady("sip."+tp, "listener stopped: "+err.Error()) }
	go sg.g.Run(runCtx, 10*time.Second)
	go keyGuard.Run(runCtx, 10*time.Second)
	lis.serve(srv, logger)
	obs.ready.Ready("sip")
	logger.Info("sipwarden started", "version", version, "realm", cfg.SIP.Realm, "domain", cfg.SIP.Domain,
		"udp", s.addrs["udp"], "tcp", s.addrs["tcp"], "tls", s.addrs["tls"], "http", s.addrs["http"], "data_dir", cfg.DataDir)
	ok = true
	return s, nil
}

// close stops everything start started, in reverse order.
func (s *server) close() {
	for i := len(s.closer) - 1; i >= 0; i-- {
		s.closer[i]()
	}
	s.closer = nil
	if s.ua != nil {
		_ = s.ua.Close()
	}
}

// listeners are the bound SIP sockets.
type listeners struct {
	udp       *net.UDPConn
	tcp       net.Listener
	tls       net.Listener
	tlsConfig *tls.Config
	addrs     map[string]string
	// front, when set, answers REGISTERs read from the UDP socket
	// (statelessUDP) and the TCP and TLS connections (statelessStream).
	front                         *stateless.Front
	statelessUDP, statelessStream bool
	// stopped, when set, is called when a listener stops serving.
	stopped func(transport string, err error)
}

// bindSIP binds the SIP listeners; TCP and TLS ones accept through lim.
func bindSIP(cfg config.Config, logger *slog.Logger, lim *connlimit.Limiter) (*listeners, error) {
	l := &listeners{addrs: map[string]string{}}
	fail := func(err error) (*listeners, error) { l.close(); return nil, err }
	if a := cfg.SIP.Listen.UDP; a != "-" {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			return fail(fmt.Errorf("sip.listen.udp %s: %w", a, err))
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			return fail(fmt.Errorf("listen udp %s: %w", a, err))
		}
		l.udp = c
		if n := cfg.SIP.UDPBufferBytes; n > 0 {
			// The kernel caps these at net.core.rmem_max/wmem_max.
			if err := c.SetReadBuffer(n); err != nil {
				logger.Warn("set UDP read buffer", "bytes", n, "error", err)
			}
			if err := c.SetWriteBuffer(n); err != nil {
				logger.Warn("set UDP write buffer", "bytes", n, "error", err)
			}
		}
		l.addrs["udp"] = c.LocalAddr().String()
	}
	if a := cfg.SIP.Listen.TCP; a != "-" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("listen tcp %s: %w", a, err))
		}
		l.tcp = lim.Listen(ln, "tcp")
		l.addrs["tcp"] = ln.Addr().String()
	}
	if a := cfg.SIP.Listen.TLS; a != "-" {
		tc, err := loadTLS(cfg, logger)
		if err != nil {
			return fail(err)
		}
		l.tlsConfig = tc
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("listen tls %s: %w", a, err))
		}
		// Limits under TLS, so that they bound the handshake too.
		l.tls = tls.NewListener(lim.Listen(ln, "tls"), tc)
		l.addrs["tls"] = ln.Addr().String()
	}
	return l, nil
}

func (l *listeners) serve(srv *sipgo.Server, logger *slog.Logger) {
	run := func(tp string, f func() error) {
		go func() {
			if err := f(); err != nil && !errors.Is(err, net.ErrClosed) {
				logger.Error("sip listener stopped", "transport", tp, "error", err)
				if l.stopped != nil {
					l.stopped(tp, err)
				}
			}
		}()
	}
	if l.udp != nil {
		pc := net.PacketConn(l.udp)
		if l.statelessUDP {
			pc = l.front.PacketConn(pc)
		}
		run("udp", func() error { return srv.ServeUDP(pc) })
	}
	if l.tcp != nil {
		ln := l.tcp
		if l.statelessStream {
			ln = l.front.Listener(ln, "TCP")
		}
		run("tcp", func() error { return srv.ServeTCP(ln) })
	}
	if l.tls != nil {
		ln := l.tls
		if l.statelessStream {
			ln = l.front.Listener(ln, "TLS")
		}
		run("tls", func() error { return srv.ServeTLS(ln) })
	}
}

func (l *listeners) close() {
	if l.udp != nil {
		_ = l.udp.Close()
	}
	if l.tcp != nil {
		_ = l.tcp.Close()
	}
	if l.tls != nil {
		_ = l.tls.Close()
	}
	if l.front != nil {
		l.front.Close() // after the sockets: nothing is queued any more
	}
}

// domains lists the hosts whose AORs are ours: the configured domain and
// realm, and every address the server listens on (all interface addresses
// for a wildcard bind), since newcomers type the server's IP as domain.
func domains(cfg config.Config, addrs map[string]string) []string {
	out := []string{cfg.SIP.Domain, cfg.SIP.Realm}
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue
		}
		if ap.Addr().IsUnspecified() {
			ifs, _ := net.InterfaceAddrs()
			for _, ia := range ifs {
				if p, err := netip.ParsePrefix(ia.String()); err == nil {
					out = append(out, p.Addr().String())
				}
			}
			continue
		}
		out = append(out, ap.Addr().String())
		if ap.Addr().IsLoopback() {
			out = append(out, "localhost")
		}
	}
	return out
}

// loadNonceKey returns the HMAC key for nonces: from the config or the
// environment, else from DataDir/nonce.key, created on first start.
func loadNonceKey(cfg config.Config, logger *slog.Logger) ([]byte, error) {
	if cfg.Auth.NonceKey != "" {
		k, err := hex.DecodeString(cfg.Auth.NonceKey)
		if err != nil {
			return nil, fmt.Errorf("config: auth.nonce_key: not hex")
		}
		return k, nil
	}
	path := filepath.Join(cfg.DataDir, "nonce.key")
	k, created, err := loadOrCreateSecret(path, 32)
	if err != nil {
		return nil, fmt.Errorf("nonce key: %w", err)
	}
	if created {
		logger.Info("nonce key generated", "path", path)
	}
	return k, nil
}

// redactHandler drops the raw message sipgo attaches to parse errors: it
// may hold Authorization headers, and a flood of garbage would copy every
// byte of it into the log.
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch strings.ToLower(a.Key) {
		case "data", "msg", "message", "raw":
			nr.AddAttrs(slog.String(a.Key, "[redacted]"))
		default:
			nr.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, nr)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return redactHandler{h.Handler.WithAttrs(as)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}
