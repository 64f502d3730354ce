package server

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/sipparse"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/reply"
	"github.com/sipwarden/sipwarden/stateless"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/token"
)

// The constructors Start calls in order. Each builds one piece from the
// configuration and the pieces before it, and registers what Close must
// undo.

// newGuard builds the brute-force guard, the TCP/TLS connection limits
// and the admission rules that apply them (package admission).
func (n *Node) newGuard() {
	cfg, gc := n.cfg, n.cfg.Guard
	log := n.log.With("component", "guard")
	drop := gc.BanAction == "drop"
	n.guard = guard.New(guard.Config{
		MaxFailures:     gc.MaxFailures,
		Window:          gc.Window.D(),
		BanDuration:     gc.BanDuration.D(),
		LongMaxFailures: gc.LongMaxFailures,
		LongWindow:      gc.LongWindow.D(),
		Drop:            drop,
		UserMaxFailures: gc.UserMaxFailures,
		UserWindow:      gc.UserWindow.D(),
		UserSlowdown:    gc.UserSlowdown.D(),
		// Trusted peers are exempt without being listed twice: a carrier's
		// gateway must never be banned for its callers' failures.
		Exempt: append(gc.ExemptPrefixes(), cfg.Proxy.TrustedPrefixes()...),
		// And so are the ip connections of the store, as they change, and
		// the cluster's other live nodes: a ban of a node's address (its
		// failures forged over UDP) would refuse every call it relays.
		ExemptFunc: func(a netip.Addr) bool { return n.peerAddr(a) || n.clusterMember(a) },
		MaxTracked: gc.MaxTracked,
	})
	lc := connlimit.Config{
		MaxConns:                 cfg.Limits.MaxConnections,
		MaxPerIP:                 cfg.Limits.MaxConnectionsPerIP,
		Exempt:                   n.guard.Exempt,
		IdleTimeout:              cfg.Limits.IdleTimeout.D(),
		AuthenticatedIdleTimeout: cfg.Limits.IdleTimeoutAuthenticated.D(),
		Logger:                   log,
	}
	if drop {
		lc.Refuse = func(a netip.Addr) bool { _, banned := n.guard.Banned(a); return banned }
	}
	n.conns = connlimit.New(lc)
	n.obs.watchGuard(n.guard, n.conns)
	replies := reply.Builder{Server: cfg.SIP.UserAgent}
	n.gate = admission.NewGate(n.guard, admission.GateConfig{
		Drop: drop, UserAgentDeny: gc.UserAgentDeny, Replies: replies, Conns: n.conns, Count: n.obs.m, Logger: log,
	})
	n.limit = admission.NewLimit(cfg.Limits.MaxInFlight, replies, n.obs.m, log)
}

// listen binds the SIP and HTTP listeners and serves /healthz, /readyz
// and /metrics at once.
func (n *Node) listen() error {
	lis, err := bindSIP(n.cfg, n.log, n.conns, n.obs.wsRefused)
	if err != nil {
		return err
	}
	n.lis = lis
	n.closer = append(n.closer, lis.close)
	maps.Copy(n.addrs, lis.addrs)
	ln, err := net.Listen("tcp", n.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", n.cfg.HTTP.Listen, err)
	}
	n.addrs["http"] = ln.Addr().String()
	if err := n.serveHTTP(ln); err != nil {
		ln.Close()
		return err
	}
	return nil
}

// openStore opens the bbolt store, waiting while it cannot be opened.
func (n *Node) openStore(ctx context.Context) error {
	db, err := openStore(ctx, filepath.Join(n.cfg.DataDir, store.FileName), n.obs.storeOptions(store.Options{
		BindingFlushInterval: n.cfg.Registrar.BindingFlushInterval.D(),
		Logger:               n.log.With("component", "store"),
	}), n.obs.ready, n.log)
	if err != nil {
		return err
	}
	n.db = db
	n.peers.Store(db)
	n.closer = append(n.closer, func() {
		if err := db.Close(); err != nil {
			n.log.Error("close store", "error", err)
		}
	})
	return nil
}

// newAuth builds the authenticator the registrar and the proxy share,
// reporting every outcome to the guard's gate and the metrics.
func (n *Node) newAuth(ctx context.Context, tokens *token.Verifier) error {
	cfg := n.cfg
	key, err := loadNonceKey(cfg, n.log)
	if err != nil {
		return err
	}
	var (
		nonces auth.Nonces
		counts auth.Counter
	)
	if n.cl != nil {
		// The cluster's key; the counts on this node or in Redis
		// (cluster.nonce_counts, server/cluster.go).
		nonces, counts, err = n.clusterNonces(ctx, key)
		if err != nil {
			return err
		}
	} else {
		dn, err := digest.NewNonces(key, cfg.Auth.NonceLifetime.D(), nil)
		if err != nil {
			return fmt.Errorf("nonces: %w", err)
		}
		nonces, counts = dn, auth.LocalCounts(digest.NewCountsFor(dn, cfg.Auth.MaxNonceCounts, nil))
	}
	algs := make([]digest.Algorithm, 0, len(cfg.Auth.Algorithms))
	for _, name := range cfg.Auth.Algorithms {
		a, err := digest.ParseAlgorithm(name)
		if err != nil {
			return fmt.Errorf("config: auth.algorithms: %w", err)
		}
		algs = append(algs, a)
	}
	byTransport := map[string][]digest.Algorithm{}
	for tp, names := range cfg.Auth.TransportAlgorithms {
		for _, name := range names {
			a, err := digest.ParseAlgorithm(name)
			if err != nil {
				return fmt.Errorf("config: auth.transport_algorithms.%s: %w", tp, err)
			}
			byTransport[tp] = append(byTransport[tp], a)
		}
	}
	acfg := auth.Config{
		Realm:               cfg.SIP.Realm,
		Algorithms:          algs,
		TransportAlgorithms: byTransport,
		QOP:                 cfg.Auth.QOP,
		Nonce:               nonces,
		Count:               counts,
		Connections:         n.db, // allow-lists (auth/acl.go)
		ServerHost:          serverHosts(cfg, n.lis.addrs),
		// Tokens this server minted are accepted on every transport;
		// jwt.enabled only advertises the Bearer challenge.
		Tokens:      tokens,
		QuietBearer: !cfg.JWT.Enabled,
		BearerScope: cfg.JWT.Scope,
		BearerFirst: cfg.JWT.ChallengeOrder == "bearer_first",
	}
	a, err := auth.New(acfg, n.db)
	if err != nil {
		return err
	}
	a.OnAttempt(n.gate.Attempt)
	if n.bans != nil {
		a.OnAttempt(n.clusterAttempt)
	}
	a.OnAttempt(n.obs.authAttempt)
	n.auth = a
	return nil
}

// newRegistrar restores the location table from the store and builds the
// registrar over it, and the lifecycle keeper that ends what credentials
// hold when they stop being valid.
func (n *Node) newRegistrar(ctx context.Context) error {
	cfg := n.cfg
	var saver registrar.BindingSaver = setSaver{n.db}
	var loc *registrar.Location
	if n.cl != nil {
		// In a cluster the bindings live in Redis, not in bbolt
		// (server/cluster.go).
		n.shared = n.cl.Bindings(func(aor string, up []store.Binding, del []string) { loc.Merge(aor, up, del) })
		saver = n.shared
		// Subscribed before the load: a set another node saves
		// meanwhile is applied after the loaded ones, not missed.
		if err := n.shared.Subscribe(ctx); err != nil {
			return fmt.Errorf("subscribe to the cluster's bindings: %w", err)
		}
	}
	loc = registrar.NewLocation(saver, nil, n.log.With("component", "location"))
	loc.OnExpire(n.bindingExpired) // metrics, webhooks
	loc.OnRemove(n.bindingRemoved) // webhooks
	n.obs.m.SetBindings(loc.CountByTransport)
	start := time.Now()
	bs, err := n.loadBindings(ctx, start)
	if err != nil {
		return err
	}
	wsDropped := 0
	if n.cl == nil {
		if bs, wsDropped, err = withoutWebSocketBindings(n.db, bs); err != nil {
			return err
		}
	}
	bs, dropped, err := restorable(n.db, bs, start)
	if err != nil {
		return err
	}
	dropped += wsDropped
	restored := loc.Restore(bs)
	bs = nil
	if restored >= 100_000 {
		// The decoded slice and Restore's grouping are garbage now, but the
		// heap grew to hold them and the table at once: at a million
		// bindings 450 MB of idle heap stayed resident. Give it back.
		debug.FreeOSMemory()
	}
	n.log.Info("bindings restored", "count", restored, "dropped", dropped, "duration_s", time.Since(start).Seconds())
	n.loc = loc
	n.keeper = lifecycle.New(loc, nil, n.db, nil, n.log.With("component", "lifecycle"))
	n.keeper.OnEnded(n.credentialEnded) // webhooks
	if err := n.watchExpiries(); err != nil {
		return err
	}
	n.reg = registrar.New(registrar.Config{
		DefaultExpires: time.Duration(cfg.Registrar.DefaultExpires) * time.Second,
		MinExpires:     time.Duration(cfg.Registrar.MinExpires) * time.Second,
		MaxExpires:     time.Duration(cfg.Registrar.MaxExpires) * time.Second,
		MaxContacts:    cfg.Registrar.MaxContacts,
		JitterPercent:  cfg.Registrar.ExpiryJitterPercent,
		Domains:        domains(cfg, n.lis.addrs),
		LocalAddrs:     n.bindingAddrs(),
		Server:         cfg.SIP.UserAgent,
		Connections:    n.db, // max_registrations
	}, loc, n.auth, nil, n.log.With("component", "registrar"))
	n.reg.OnEvent(n.obs.registerEvent)
	n.reg.OnEvent(n.registrationEvent)
	return nil
}

// watchExpiries hands every credential with an expiry to the keeper.
func (n *Node) watchExpiries() error {
	p := store.Page{Limit: 1000}
	for {
		cs, next, err := n.db.Credentials(store.CredentialFilter{}, p)
		if err != nil {
			return fmt.Errorf("list credentials: %w", err)
		}
		for _, c := range cs {
			n.keeper.Watch(c)
		}
		if next == "" {
			return nil
		}
		p.After = next
	}
}

// newSIP builds sipgo's user agent and server.
func (n *Node) newSIP() error {
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(n.cfg.SIP.UserAgent),
		sipgo.WithUserAgentHostname(n.cfg.SIP.Domain),
		sipgo.WithUserAgenTLSConfig(n.lis.tlsConfig),
		sipgo.WithUserAgentParser(sipparse.SipgoParser()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(n.refuseWS)),
	)
	if err != nil {
		return fmt.Errorf("sip user agent: %w", err)
	}
	n.ua = ua
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(n.log.With("component", "sip")))
	if err != nil {
		return fmt.Errorf("sip server: %w", err)
	}
	n.sip = srv
	return nil
}

// refuseWS is sipgo's read filter. Over WebSocket, which the stateless
// front does not read, a request the front answers itself over the other
// transports (a method with a lower-case letter, or a request sipgo's
// parser refuses: stateless.Front.Refuse) is answered on its connection
// and kept from sipgo, which upper-cased the method, or dropped the
// message without a word. Every other transport's messages pass: the
// front has seen them.
func (n *Node) refuseWS(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if n.front == nil || (info.Transport != "WS" && info.Transport != "WSS") || info.RemoteAddr == nil {
		return data, nil
	}
	source := info.RemoteAddr.String()
	res, taken := n.front.Refuse(data, source, info.Transport)
	if !taken {
		return data, nil
	}
	if res != nil {
		conn, err := n.ua.TransportLayer().GetConnection(info.Transport, source)
		if err == nil {
			err = conn.WriteMsg(res)
		}
		if err != nil {
			n.log.Debug("answer over websocket not sent", "source", source, "status", res.StatusCode, "error", err)
		}
	}
	return nil, nil // empty: sipgo reads the next message
}

// route puts the registrar and the proxy behind one admission chain, on
// every path a request can take: sipgo's handlers (every method) and the
// stateless REGISTER front (UDP, TCP and TLS). A rule added to the chain
// applies everywhere.
func (n *Node) route() {
	mws := append([]admission.Middleware{n.obs.middleware, n.gate.Middleware, n.limit.Middleware}, n.opts.Middleware...)
	if n.cl != nil {
		mws = append(mws, n.clusterGate) // 503 while Redis is down (server/cluster.go)
	}
	register := admission.Chain(n.reg.ServeSIP, mws...)
	proxied := admission.Chain(n.proxy.ServeSIP, mws...)
	n.sip.OnRegister(register)
	// Every other method goes through the proxy: out-of-dialog requests are
	// authenticated and routed, in-dialog ones loose-routed. Over TCP the
	// ACK of our own non-2xx reaches OnAck too; the proxy absorbs it.
	for _, on := range []func(sipgo.RequestHandler){
		n.sip.OnInvite, n.sip.OnAck, n.sip.OnCancel, n.sip.OnBye, n.sip.OnOptions, n.sip.OnMessage,
		n.sip.OnSubscribe, n.sip.OnNotify, n.sip.OnRefer, n.sip.OnInfo, n.sip.OnUpdate, n.sip.OnPrack, n.sip.OnPublish,
	} {
		on(proxied)
	}
	n.sip.OnNoRoute(proxied)

	l := n.lis
	// The front reads UDP, TCP and TLS in either registrar mode: with
	// stateful it hands REGISTERs to sipgo, and still answers what sipgo
	// would refuse or drop, and challenges first INVITEs.
	if l.udp != nil || l.tcp != nil || l.tls != nil {
		workers := runtime.GOMAXPROCS(0)
		if n.cl != nil {
			// A cluster node's REGISTER waits for its binding to be in
			// Redis (and, with cluster.nonce_counts: cluster, for its nonce
			// count): with one worker per core the round trips, not the
			// CPU, bound the node's rate (docs/bench.md, cluster). The
			// waiting workers share pipelines (cluster/bindings_commit.go,
			// cluster/nonces_batch.go).
			if n.cfg.Cluster.NonceCounts == config.NonceCountsCluster {
				workers *= clusterCountsWorkersPerCPU
			} else {
				workers *= clusterWorkersPerCPU
			}
		}
		l.front = stateless.New(register, stateless.Config{
			Workers:         workers,
			MaxMessageBytes: n.cfg.SIP.MaxMessageBytes,
			// A message must be whole within the idle timeout of its
			// first byte (threat model: slowloris).
			MessageTimeout: n.cfg.Limits.IdleTimeout.D(),
			MaxQueueDelay:  max(n.cfg.Limits.MaxQueueDelay.D(), 0),
			// A cluster node's REGISTERs wait for Redis: never on the
			// socket's reader (stateless/inline.go).
			Inline:         n.cl == nil,
			StatefulUDP:    n.cfg.Registrar.UDPMode == "stateful",
			StatefulStream: n.cfg.Registrar.StreamMode == "stateful",
			OnShed:         n.obs.m.Rejected,
			OnQueueDelay:   n.obs.m.QueueDelay,
			Admit:          n.gate.Admits,
			Logger:         n.log.With("component", "registrar"),
		})
		if n.cfg.Proxy.ChallengeMode == "stateless" {
			// The first INVITE of a call gets its 407 there, through the
			// same chain as the proxy's own handler (proxy/challenge.go).
			l.front.ChallengeInvites(admission.Chain(n.proxy.ServeChallenge, mws...),
				admission.Chain(n.proxy.ServeRefusal, mws...), n.proxy)
		}
		n.front = l.front
	}
}

// newAPI builds the management API and puts it behind the HTTP listener
// (which answered 503 until now).
func (n *Node) newAPI(issuer *token.Issuer, verifier *token.Verifier, ctl *logControl) error {
	cfg := n.cfg
	keyGuard := guard.New(guard.Config{ // failed API keys per address
		MaxFailures: cfg.Limits.APIKeyFailures,
		Window:      time.Minute,
		BanDuration: cfg.Limits.APIKeyBlock.D(),
		// Only the two limits keys: the guard's slow-guessing tier (50
		// failures in an hour block for an hour by default) would
		// override them, whatever they say. API keys are 256-bit random:
		// slow guessing is hopeless, a threshold per minute is enough.
		LongMaxFailures: -1,
		// guard.exempt_cidrs is how an operator makes sure he is never
		// locked out: a blocked address gets 429 whatever key it sends.
		Exempt:     cfg.Guard.ExemptPrefixes(),
		MaxTracked: 4096,
	})
	var bans api.Bans = api.LocalBans{Guard: n.guard}
	if n.bans != nil {
		bans = clusterBans{n.bans} // lifted through any node, lifted on all
	}
	srv, err := api.New(api.Config{
		Realm:             cfg.SIP.Realm,
		MinPasswordLength: cfg.HTTP.MinPasswordLength,
		AdminKeyFile:      filepath.Join(cfg.DataDir, "admin.key"),
		AdminKey:          cfg.HTTP.APIKey,
		MaxBodyBytes:      cfg.Limits.APIMaxBodyBytes,
		Bans:              bans,
		KeyAttempts:       keyGuard,
		Lifecycle:         n.keeper,
	}, n.db, n.loc, n.log.With("component", "api"))
	if err != nil {
		return err
	}
	srv.SetCalls(n.callList())
	srv.SetTokens(issuer, verifier)
	srv.SetWebhookLog(n.hooks)
	srv.HandleLogLevel(&ctl.level)
	n.api.set(srv.Handler())
	n.closer = append(n.closer, n.stopHTTP) // no API request while the rest closes
	ctx, cancel := context.WithCancel(context.Background())
	n.closer = append(n.closer, cancel)
	go keyGuard.Run(ctx, 10*time.Second)
	return nil
}

// setSaver saves the location table's changes to the bbolt store, which
// keeps each AOR's whole set (registrar.BindingSaver).
type setSaver struct{ db *store.DB }

func (s setSaver) SaveBindings(aor string, _, next []store.Binding) { s.db.SaveBindings(aor, next) }

// FlushBindings commits the saves now (registrar.Location.Sync).
func (s setSaver) FlushBindings() error { return s.db.FlushBindings() }
