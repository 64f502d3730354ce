package main

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/sipcheck"
)

// sipGuard is what stands between sipgo and the SIP handlers: the
// User-Agent deny list, the ban and slowdown check of package guard, the
// bound on requests in flight, and the TCP/TLS connection limits. Its
// wrap applies to any handler (the registrar's and, next, the proxy's);
// authentication outcomes come back through observe (registrar events) or
// Outcome (any other caller, such as the proxy).
type sipGuard struct {
	g           *guard.Guard
	conns       *connlimit.Limiter
	drop        bool
	uaDeny      []string
	maxInFlight int64
	inFlight    atomic.Int64
	server      string
	log         *slog.Logger
	m           *metrics.Metrics // nil: not counted
}

// count feeds the guard's refusals and bans to the metrics.
func (s *sipGuard) count(m *metrics.Metrics) {
	s.m = m
	m.SetBansActive(func() int { return len(s.g.Bans()) })
	m.SetConnectionsOpen(s.conns.OpenBy)
	s.conns.OnRefused(func(r connlimit.Reason) {
		switch r {
		case connlimit.RefusedBanned:
			m.Rejected(metrics.RejectBanned)
		case connlimit.RefusedTotal:
			m.Rejected(metrics.RejectConnections)
		case connlimit.RefusedPerIP:
			m.Rejected(metrics.RejectConnectionsPerIP)
		}
	})
}

func (s *sipGuard) rejected(reason string) {
	if s.m != nil {
		s.m.Rejected(reason)
	}
}

func newSIPGuard(cfg config.Config, logger *slog.Logger) *sipGuard {
	gc := cfg.Guard
	g := guard.New(guard.Config{
		MaxFailures:     gc.MaxFailures,
		Window:          gc.Window.D(),
		BanDuration:     gc.BanDuration.D(),
		Drop:            gc.BanAction == "drop",
		UserMaxFailures: gc.UserMaxFailures,
		UserWindow:      gc.UserWindow.D(),
		UserSlowdown:    gc.UserSlowdown.D(),
		Exempt:          gc.ExemptPrefixes(),
		MaxTracked:      gc.MaxTracked,
	})
	s := &sipGuard{
		g:           g,
		drop:        gc.BanAction == "drop",
		maxInFlight: int64(cfg.Limits.MaxInFlight),
		server:      cfg.SIP.UserAgent,
		log:         logger,
	}
	for _, u := range gc.UserAgentDeny {
		s.uaDeny = append(s.uaDeny, strings.ToLower(strings.TrimSpace(u)))
	}
	lc := connlimit.Config{
		MaxConns:                 cfg.Limits.MaxConnections,
		MaxPerIP:                 cfg.Limits.MaxConnectionsPerIP,
		Exempt:                   g.Exempt,
		IdleTimeout:              cfg.Limits.IdleTimeout.D(),
		AuthenticatedIdleTimeout: cfg.Limits.IdleTimeoutAuthenticated.D(),
		Logger:                   logger,
	}
	if s.drop {
		lc.Refuse = func(a netip.Addr) bool { _, banned := g.Banned(a); return banned }
	}
	s.conns = connlimit.New(lc)
	return s
}

// wrap returns next behind the guard.
func (s *sipGuard) wrap(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !s.admit(req, tx) {
			return
		}
		defer s.done()
		next(req, tx)
	}
}

// admit decides about one request and answers it when it is refused. On
// true the caller must call done when finished.
func (s *sipGuard) admit(req *sip.Request, tx sip.ServerTransaction) bool {
	refusal, ok := s.gate(req)
	if refusal != nil {
		if err := tx.Respond(refusal); err != nil {
			s.log.Debug("send refusal", "source", req.Source(), "status", refusal.StatusCode, "error", err)
		}
	}
	return ok
}

// gate is admit without a transaction (the stateless UDP REGISTER path):
// ok true admits the request (call done when finished); otherwise refusal
// is the answer to send, or nil to drop it silently.
func (s *sipGuard) gate(req *sip.Request) (refusal *sip.Response, ok bool) {
	if s.deniedAgent(req) {
		s.log.Debug("request dropped: User-Agent denied", "source", req.Source(), "method", string(req.Method))
		s.rejected(metrics.RejectUserAgent)
		return nil, false
	}
	addr, _ := sourceAddr(req.Source())
	user := ""
	if s.g.Attacked() {
		user = claimedUser(req)
	}
	switch s.g.Check(addr, user) {
	case guard.Drop:
		s.rejected(metrics.RejectBanned)
		return nil, false
	case guard.Reject:
		s.rejected(metrics.RejectBanned)
		return s.refusal(req, 403, "Forbidden", ""), false
	case guard.Throttle:
		s.log.Debug("request slowed: username under attack", "source", req.Source(), "user", user)
		s.rejected(metrics.RejectThrottled)
		return s.refusal(req, 403, "Too Many Failed Attempts", ""), false
	}
	if s.inFlight.Add(1) > s.maxInFlight {
		s.inFlight.Add(-1)
		s.rejected(metrics.RejectInFlight)
		return s.refusal(req, 503, "Service Unavailable", "5"), false
	}
	return nil, true
}

// done ends a request gate admitted.
func (s *sipGuard) done() { s.inFlight.Add(-1) }

// refusal builds the answer to a refused request, or nil for an ACK
// (which has no answer) or a request holding a line break that the answer
// would echo (sipcheck.HasLineBreak).
func (s *sipGuard) refusal(req *sip.Request, code int, reason, retryAfter string) *sip.Response {
	if req.Method == sip.ACK || sipcheck.HasLineBreak(req) {
		return nil
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if s.server != "" {
		res.AppendHeader(sip.NewHeader("Server", s.server))
	}
	if retryAfter != "" {
		res.AppendHeader(sip.NewHeader("Retry-After", retryAfter))
	}
	if _, ok := sourceAddr(req.Source()); ok {
		res.SetDestination(req.Source()) // as the registrar does, for clients without rport
	}
	return res
}

// deniedAgent reports whether the User-Agent holds a denied substring,
// without allocating.
func (s *sipGuard) deniedAgent(req *sip.Request) bool {
	if len(s.uaDeny) == 0 {
		return false
	}
	// Not GetHeader: it lowercases the name, an allocation per request.
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "User-Agent") {
			continue
		}
		ua := h.Value()
		for _, d := range s.uaDeny {
			if containsFold(ua, d) {
				return true
			}
		}
	}
	return false
}

// containsFold reports whether s contains the lowercase ASCII sub,
// ignoring the case of s.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], sub) {
			return true
		}
	}
	return false
}

// claimedUser is the username of the request's first Digest credentials.
func claimedUser(req *sip.Request) string {
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		for _, h := range req.GetHeaders(name) {
			if c, err := digest.ParseCredentials(h.Value()); err == nil && c.Username != "" {
				return c.Username
			}
		}
	}
	return ""
}

func sourceAddr(source string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// observe accounts a registrar event: failures count towards bans and
// slowdowns, a success clears its source's failures for the username and
// gives its TCP/TLS connection the long idle timeout.
func (s *sipGuard) observe(ev registrar.Event) {
	if ev.Dropped {
		return
	}
	s.Outcome(ev.Source, ev.Transport, ev.Username, ev.Outcome)
	if ev.Authenticated && ev.Status >= 200 && ev.Status < 300 && (ev.Transport == "tcp" || ev.Transport == "tls") {
		s.conns.Authenticated(ev.Transport, ev.Source)
	}
}

// Outcome accounts one authentication outcome of a request from source
// (ip:port) over transport for the claimed user. The proxy calls it after
// its own authentication.
func (s *sipGuard) Outcome(source, transport, user string, o auth.Outcome) {
	addr, ok := sourceAddr(source)
	if !ok {
		return
	}
	switch {
	case o.Failure():
		if !s.g.Failure(addr, user, o.String()) {
			return
		}
		until, _ := s.g.Banned(addr)
		if s.m != nil {
			s.m.BanIssued()
		}
		s.log.Warn("source banned", "source", addr.String(), "outcome", o.String(), "until", until.UTC().Format(time.RFC3339))
		if s.drop {
			if n := s.conns.CloseFrom(addr); n > 0 {
				s.log.Info("connections of a banned source closed", "source", addr.String(), "count", n)
			}
		}
	case o == auth.OK:
		s.g.Success(addr, user)
	}
}

// watchProxy accounts the proxy's authentication outcomes like the
// registrar's: failures count towards bans, and an authenticated trunk's
// TCP/TLS connection gets the long idle timeout.
func (s *sipGuard) watchProxy(px *proxy.Proxy) {
	px.OnEvent(func(ev proxy.Event) {
		if !ev.Checked {
			return
		}
		s.Outcome(ev.Source, ev.Transport, ev.Username, ev.Outcome)
		if ev.Authenticated && (ev.Transport == "tcp" || ev.Transport == "tls") {
			s.conns.Authenticated(ev.Transport, ev.Source)
		}
	})
}

// apiKeyGuard limits failed API key attempts per address.
func apiKeyGuard(cfg config.Config) *guard.Guard {
	return guard.New(guard.Config{
		MaxFailures: cfg.Limits.APIKeyFailures,
		Window:      time.Minute,
		BanDuration: cfg.Limits.APIKeyBlock.D(),
		MaxTracked:  4096,
	})
}
