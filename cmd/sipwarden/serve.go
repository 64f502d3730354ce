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
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"sipwarden/api"
	"sipwarden/auth"
	"sipwarden/config"
	"sipwarden/connlimit"
	"sipwarden/digest"
	"sipwarden/registrar"
	"sipwarden/store"
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
	sip.SetDefaultLogger(slog.New(redactHandler{logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "sipgo")})}))
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// server holds what serve starts, for tests that start it in-process.
type server struct {
	cfg    config.Config
	db     *store.DB
	loc    *registrar.Location
	sip    *sipgo.Server
	ua     *sipgo.UserAgent
	http   *http.Server
	guard  *sipGuard         // bans, limits (guard.go)
	addrs  map[string]string // transport -> bound address ("http" too)
	closer []func()
}

// serve runs the server until ctx ends.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	s, err := start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	s.close()
	return nil
}

// start opens the store, binds every listener (returning bind errors
// synchronously) and serves in goroutines.
func start(ctx context.Context, cfg config.Config, logger *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, addrs: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "sipwarden.db"), store.Options{
		BindingFlushInterval: cfg.Registrar.BindingFlushInterval.D(),
		Logger:               logger.With("component", "store"),
	})
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
	authn, err := auth.New(auth.Config{
		Realm:      cfg.SIP.Realm,
		Algorithms: algs,
		QOP:        cfg.Auth.QOP,
		Nonce:      nonces,
		Count:      digest.NewCounts(cfg.Auth.MaxNonceCounts, nil),
		// Allow-lists of connections (auth/acl.go).
		Connections: db,
	}, db)
	if err != nil {
		return nil, err
	}

	loc := registrar.NewLocation(db, nil, logger.With("component", "location"))
	s.loc = loc
	restoreStart := time.Now()
	bs, err := db.LoadBindings(time.Now())
	if err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	n := loc.Restore(bs)
	logger.Info("bindings restored", "count", n, "duration_s", time.Since(restoreStart).Seconds())

	sg := newSIPGuard(cfg, logger.With("component", "guard"))
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
	srv.OnRegister(sg.wrap(reg.ServeSIP))
	reg.OnEvent(sg.observe)
	// Over TCP the ACK for our own non-2xx final response reaches the
	// handler; without one sipgo would answer the ACK with 405.
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnOptions(sg.wrap(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		_ = tx.Respond(res)
	}))
	srv.OnNoRoute(sg.wrap(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		_ = tx.Respond(res)
	}))

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
	s.http = &http.Server{Handler: apiSrv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}

	runCtx, cancel := context.WithCancel(ctx)
	s.closer = append(s.closer, cancel)
	go loc.Run(runCtx, time.Second)
	go sg.g.Run(runCtx, 10*time.Second)
	go keyGuard.Run(runCtx, 10*time.Second)
	lis.serve(srv, logger)
	go func() {
		if err := s.http.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", "error", err)
		}
	}()
	s.closer = append(s.closer, func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = s.http.Shutdown(sctx)
	})
	logger.Info("sipwarden started", "version", version, "realm", cfg.SIP.Realm, "domain", cfg.SIP.Domain,
		"udp", s.addrs["udp"], "tcp", s.addrs["tcp"], "tls", s.addrs["tls"], "http", s.addrs["http"], "data_dir", cfg.DataDir)
	ok = true
	return s, nil
}

const allowed = "REGISTER, OPTIONS, ACK"

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
			}
		}()
	}
	if l.udp != nil {
		run("udp", func() error { return srv.ServeUDP(l.udp) })
	}
	if l.tcp != nil {
		run("tcp", func() error { return srv.ServeTCP(l.tcp) })
	}
	if l.tls != nil {
		run("tls", func() error { return srv.ServeTLS(l.tls) })
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
