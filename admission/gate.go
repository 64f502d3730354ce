package admission

import (
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/reply"
)

// GateCounter counts what the Gate refuses and bans: *metrics.Metrics.
type GateCounter interface {
	Counter
	BanIssued()
}

// Gate is the rule of package guard: requests from a banned source are
// refused (403 Forbidden) or dropped, a source slowed for the username
// it claims gets 403 Too Many Failed Attempts, and a User-Agent on the
// deny list is dropped. Its Attempt method feeds it the authentication
// outcomes (auth.Authenticator.OnAttempt), whichever handler checked them.
type Gate struct {
	g       *guard.Guard
	conns   *connlimit.Limiter // nil: no TCP/TLS connections to manage
	drop    bool
	uaDeny  []string // lowercase
	replies reply.Builder
	count   GateCounter
	log     *slog.Logger
}

// GateConfig configures a Gate.
type GateConfig struct {
	// Drop answers nothing to a banned source (and closes its TCP/TLS
	// connections when it is banned); otherwise 403 Forbidden.
	Drop bool
	// UserAgentDeny lists substrings of User-Agent (any case) whose
	// requests are dropped.
	UserAgentDeny []string
	Replies       reply.Builder
	// Conns, when set, gets the long idle timeout for a connection that
	// authenticated, and closes a banned source's connections under Drop.
	Conns *connlimit.Limiter
	// Count, when set, counts refusals and bans.
	Count  GateCounter
	Logger *slog.Logger
}

// NewGate returns the Gate of g.
func NewGate(g *guard.Guard, cfg GateConfig) *Gate {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gt := &Gate{g: g, conns: cfg.Conns, drop: cfg.Drop, replies: cfg.Replies, count: cfg.Count, log: log}
	for _, u := range cfg.UserAgentDeny {
		gt.uaDeny = append(gt.uaDeny, strings.ToLower(strings.TrimSpace(u)))
	}
	return gt
}

// Middleware is the rule.
func (gt *Gate) Middleware(next Handler) Handler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		code, reason, ok := gt.check(req)
		if ok {
			next(req, tx)
			return
		}
		if code != 0 {
			if err := refuse(gt.replies, req, tx, code, reason, ""); err != nil {
				gt.log.Debug("send refusal", "source", req.Source(), "status", code, "error", err)
			}
		}
	}
}

// Admits reports whether the gate would let req through, counting and
// logging a refusal as Middleware does. An overloaded stateless front
// asks before its cheap 503s (stateless.Config.Admit): a request the gate
// refuses gets nothing from it.
func (gt *Gate) Admits(req *sip.Request) bool {
	_, _, ok := gt.check(req)
	return ok
}

// check admits req (ok), or returns the refusal to send (code 0: drop).
func (gt *Gate) check(req *sip.Request) (code int, reason string, ok bool) {
	if gt.deniedAgent(req) {
		gt.log.Debug("request dropped: User-Agent denied", "source", req.Source(), "method", string(req.Method))
		gt.rejected(metrics.RejectUserAgent)
		return 0, "", false
	}
	addr, _ := sourceAddr(req.Source())
	user := ""
	if gt.g.Attacked() {
		user = claimedUser(req)
	}
	switch gt.g.Check(addr, user) {
	case guard.Drop:
		gt.rejected(metrics.RejectBanned)
		return 0, "", false
	case guard.Reject:
		gt.rejected(metrics.RejectBanned)
		return 403, "Forbidden", false
	case guard.Throttle:
		gt.log.Debug("request slowed: username under attack", "source", req.Source(), "user", user)
		gt.rejected(metrics.RejectThrottled)
		return 403, "Too Many Failed Attempts", false
	}
	return 0, "", true
}

func (gt *Gate) rejected(reason string) {
	if gt.count != nil {
		gt.count.Rejected(reason)
	}
}

// Attempt accounts one authentication outcome: failures count towards
// bans and slowdowns, a success clears its source's failures for the
// username and gives its TCP/TLS/WS connection the long idle timeout.
func (gt *Gate) Attempt(at auth.Attempt) {
	addr, ok := sourceAddr(at.Source)
	if !ok {
		return
	}
	switch {
	case at.Outcome.Failure():
		if !gt.g.Failure(addr, at.Username, at.Outcome.String()) {
			return
		}
		until, _ := gt.g.Banned(addr)
		if gt.count != nil {
			gt.count.BanIssued()
		}
		gt.log.Warn("source banned", "source", addr.String(), "outcome", at.Outcome.String(), "until", until.UTC().Format(time.RFC3339))
		if gt.drop && gt.conns != nil {
			if n := gt.conns.CloseFrom(addr); n > 0 {
				gt.log.Info("connections of a banned source closed", "source", addr.String(), "count", n)
			}
		}
	case at.Outcome == auth.OK:
		gt.g.Success(addr, at.Username)
		if gt.conns != nil && at.Transport != "udp" {
			gt.conns.Authenticated(at.Transport, at.Source)
		}
	}
}

// deniedAgent reports whether the User-Agent holds a denied substring,
// without allocating.
func (gt *Gate) deniedAgent(req *sip.Request) bool {
	if len(gt.uaDeny) == 0 {
		return false
	}
	// Not GetHeader: it lowercases the name, an allocation per request.
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "User-Agent") {
			continue
		}
		ua := h.Value()
		for _, d := range gt.uaDeny {
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
