package proxy

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/store"
)

// PublicTargets finds the connection whose public_targets list target
// (a username or a number): the callee of an anonymous click-to-call.
// A username must be a credential of that very connection.
type PublicTargets interface {
	PublicTarget(target string) (connectionID string, ok bool)
}

// Results of an anonymous request, Event.Anonymous.
const (
	AnonymousAllowed     = "allowed"
	AnonymousNotPublic   = "not_public"
	AnonymousRateLimited = "rate_limited"
)

// anonymousCaller reports whether req is an anonymous click-to-call the
// proxy considers without a challenge: an INVITE over ws or wss carrying
// no Proxy-Authorization, from the anonymous URI of RFC 3323 section
// 4.1.1.3 (sip:anonymous@anonymous.invalid, as JsSIP's anonymous call
// sends it). Over other transports, with credentials, or from a trusted
// peer, the request is authenticated as any other.
func (p *Proxy) anonymousCaller(req *sip.Request) bool {
	if p.cfg.Public == nil || req.Method != sip.INVITE || p.trustedReq(req) {
		return false
	}
	if _, peer := p.peer(req.Source()); peer {
		return false
	}
	switch strings.ToLower(req.Transport()) {
	case "ws", "wss":
	default:
		return false
	}
	from := req.From()
	if from == nil || !strings.EqualFold(from.Address.User, "anonymous") || !strings.EqualFold(from.Address.Host, "anonymous.invalid") {
		return false
	}
	return len(headerValues(req, "Proxy-Authorization")) == 0
}

// anonymous decides an anonymous request: the caller it proceeds as
// (the target's connection, no credential), or the result that refuses
// it with 403 (the same status for both refusals: a caller learns only
// that it may not call there).
func (p *Proxy) anonymous(req *sip.Request) (caller, string) {
	if !p.anonLimit.allow(req.Source(), p.now()) {
		return caller{}, AnonymousRateLimited
	}
	ru := req.Recipient
	local := p.domains[strings.ToLower(ru.Host)] || p.isUs(&ru)
	if !local || ru.User == "" {
		return caller{}, AnonymousNotPublic
	}
	connID, ok := p.cfg.Public.PublicTarget(ru.User)
	if !ok {
		return caller{}, AnonymousNotPublic
	}
	return caller{Credential: store.Credential{ConnectionID: connID}, Anonymous: true}, AnonymousAllowed
}

// rateWindow counts anonymous calls per source (an IPv4 address or an
// IPv6 /64) in fixed one-minute windows, tracking at most max sources: a
// source that cannot be tracked is refused (fail closed).
type rateWindow struct {
	perMinute int
	max       int
	mu        sync.Mutex
	seen      map[netip.Prefix]*window
}

type window struct {
	start time.Time
	n     int
}

func newRateWindow(perMinute, max int) *rateWindow {
	return &rateWindow{perMinute: perMinute, max: max, seen: map[netip.Prefix]*window{}}
}

// allow counts one call from source (ip:port) at now and reports whether
// it is within the limit.
func (r *rateWindow) allow(source string, now time.Time) bool {
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	key, _ := a.Prefix(bits)
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.seen[key]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if w == nil && len(r.seen) >= r.max {
			for k, x := range r.seen {
				if now.Sub(x.start) >= time.Minute {
					delete(r.seen, k)
				}
			}
			if len(r.seen) >= r.max {
				return false
			}
		}
		w = &window{start: now}
		r.seen[key] = w
	}
	w.n++
	return w.n <= r.perMinute
}
