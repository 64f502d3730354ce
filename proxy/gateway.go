package proxy

import (
	"fmt"
	"strings"

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
		host, port, tp, err := sipuri.Hop(g)
		if err != nil {
			p.log.Warn("unusable gateway", "connection_id", c.Connection.ID, "gateway", g, "error", err)
			continue
		}
		u := ru.Clone()
		u.Host, u.Port = host, port
		u.UriParams = sip.HeaderParams{}
		if tp != "udp" {
			u.UriParams.Add("transport", tp)
		}
		ts = append(ts, target{uri: *u, hop: Hop{Host: host, Port: port, Transport: tp}, gwAuth: auth})
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
