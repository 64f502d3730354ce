package proxy

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/sipwarden/sipwarden/e164"
	"github.com/sipwarden/sipwarden/sipuri"
)

// gatewayAuth answers a gateway's digest challenge for a connection.
type gatewayAuth struct {
	username, password string
}

// connectionRoute finds the caller's connection's outbound route for the
// Request-URI user (longest prefix; the user compared as it is and in its
// E.164 form) and returns its gateways as one target whose failover
// alternates are the others (RFC 3261 16.6 sequential search: the next
// gateway is tried when one answers 503 or 408 or does not answer). ok is
// false when no route matches. A gateway URI that no longer parses is
// skipped (logged).
func (p *Proxy) connectionRoute(ru *sip.Uri, c *caller) (target, bool) {
	routes := c.Connection.OutboundRoutes
	if len(routes) == 0 {
		return target{}, false
	}
	user := ru.User
	num, _ := e164.FromUser(user)
	best := -1
	for i, r := range routes {
		if !strings.HasPrefix(user, r.Prefix) && (num == "" || !strings.HasPrefix(num, r.Prefix)) {
			continue
		}
		if best < 0 || len(r.Prefix) > len(routes[best].Prefix) {
			best = i
		}
	}
	if best < 0 {
		return target{}, false
	}
	var auth *gatewayAuth
	if c.Connection.GatewayUsername != "" {
		auth = &gatewayAuth{username: c.Connection.GatewayUsername, password: c.Connection.GatewayPassword}
	}
	var ts []target
	for _, g := range routes[best].Gateways {
		h, err := sipuri.ParseHop(g)
		if err != nil {
			p.log.Warn("unusable gateway", "connection_id", c.Connection.ID, "gateway", g, "error", err)
			continue
		}
		for _, hop := range p.resolveHop(h) {
			u := ru.Clone()
			u.Host, u.Port = h.Host, 0
			if h.ExplicitPort {
				u.Port = h.Port
			}
			u.UriParams = sip.HeaderParams{}
			if hop.Transport != "udp" {
				u.UriParams.Add("transport", hop.Transport)
			}
			ts = append(ts, target{uri: *u, hop: hop, gwAuth: auth})
		}
	}
	if len(ts) == 0 {
		return target{}, false
	}
	first := ts[0]
	first.next = ts[1:]
	return first, true
}

// failover reports whether a gateway's final answer sends the call to
// the next gateway: overloaded or unavailable (503), no answer in time
// (408, Timer C or transaction timeout), or unreachable (our 502).
func failover(code int) bool { return code == 503 || code == 408 || code == 502 }

// retryTarget decides what a branch's non-2xx final response leads to:
// the same gateway again with credentials (a 401/407 challenge, answered
// once per gateway, RFC 3261 22.2 and 22.3), the next gateway (failover),
// or nothing. extra is the header carrying the credentials.
func (p *Proxy) retryTarget(b *branch, res *sip.Response) (t target, extra sip.Header, ok bool) {
	code := res.StatusCode
	if b.t.binding != nil {
		return target{}, nil, false
	}
	if (code == 401 || code == 407) && b.t.gwAuth != nil && !b.t.authTried {
		h, err := answerChallenge(b.fwd, res, b.t.gwAuth)
		if err != nil {
			p.log.Warn("gateway challenge not answered", "gateway", b.t.hop.addr(), "error", err)
		} else {
			t = b.t
			t.authTried = true
			return t, h, true
		}
	}
	if failover(code) && len(b.t.next) > 0 {
		t = b.t.next[0]
		t.next = b.t.next[1:]
		return t, nil, true
	}
	return target{}, nil, false
}

// answerChallenge computes the Authorization (for 401) or
// Proxy-Authorization (for 407) of the forwarded request fwd for the
// challenge in res, with icholy/digest (the client implementation sipgo
// uses).
func answerChallenge(fwd *sip.Request, res *sip.Response, a *gatewayAuth) (sip.Header, error) {
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(chName)
	if h == nil {
		return nil, fmt.Errorf("%d without %s", res.StatusCode, chName)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", chName, err)
	}
	cred, err := digest.Digest(chal, digest.Options{
		Method: string(fwd.Method), URI: fwd.Recipient.String(), Count: 1,
		Username: a.username, Password: a.password,
	})
	if err != nil {
		return nil, fmt.Errorf("answer %s: %w", chName, err)
	}
	return sip.NewHeader(authName, cred.String()), nil
}

// SRVResolver looks up DNS SRV and address records: *net.Resolver.
type SRVResolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// srvTimeout bounds one SRV lookup on the INVITE path.
const srvTimeout = 2 * time.Second

// maxSRVTargets bounds the hops one gateway name expands to.
const maxSRVTargets = 8

// resolveHop applies RFC 3263 section 4.2 to a gateway: a host name
// without a port is looked up as _sip._udp, _sip._tcp or _sips._tcp
// (by transport) and each SRV target, in the order of priority and
// weight (RFC 2782, as net.Resolver sorts them), becomes a hop to fail
// over to; without SRV records (or for an address, or a port given) the
// host itself on the port (its address records are resolved when the
// request is sent). Each SRV target's first address (A or AAAA, with the
// same resolver) is the hop; a target without one is kept by name. The
// Request-URI keeps the gateway's name (RFC 3263
// section 4: the URI is not rewritten).
func (p *Proxy) resolveHop(h sipuri.NextHop) []Hop {
	direct := []Hop{{Host: h.Host, Port: h.Port, Transport: h.Transport}}
	if h.ExplicitPort || !h.IsName() {
		return direct
	}
	service, proto := "sip", "udp"
	switch h.Transport {
	case "tcp":
		proto = "tcp"
	case "tls":
		service, proto = "sips", "tcp"
	}
	r := p.cfg.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(context.Background(), srvTimeout)
	defer cancel()
	_, srvs, err := r.LookupSRV(ctx, service, proto, h.Host)
	if err != nil || len(srvs) == 0 {
		p.log.Debug("no SRV records", "gateway", h.Host, "error", err)
		return direct
	}
	var out []Hop
	for _, s := range srvs {
		if s.Target == "." || len(out) == maxSRVTargets { // "." : the service is not offered here
			break
		}
		host := strings.TrimSuffix(s.Target, ".")
		if addrs, err := r.LookupHost(ctx, host); err == nil && len(addrs) > 0 {
			host = addrs[0]
		}
		out = append(out, Hop{Host: host, Port: int(s.Port), Transport: h.Transport})
	}
	if len(out) == 0 {
		return direct
	}
	return out
}
