package server

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/proxy"
)

// newProxy builds the proxy over the bound listeners, and gives the
// lifecycle keeper its dialogs to end.
func (n *Node) newProxy() error {
	cfg, addrs := n.cfg, n.lis.addrs
	var ls []proxy.Listener
	for _, tp := range []string{"udp", "tcp", "tls", "ws", "wss"} {
		a, ok := addrs[tp]
		if !ok {
			continue
		}
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return fmt.Errorf("listener %s %s: %w", tp, a, err)
		}
		ls = append(ls, proxy.Listener{Transport: tp, Addr: ap, Host: advertisedHost(cfg, ap.Addr())})
	}
	routes := make([]proxy.Route, 0, len(cfg.Proxy.Routes))
	for _, r := range cfg.Proxy.Routes {
		host, port, tp, err := config.GatewayHop(r.Gateway)
		if err != nil {
			return fmt.Errorf("config: proxy.routes %q: gateway: %w", r.Name, err)
		}
		routes = append(routes, proxy.Route{Name: r.Name, Prefix: r.Prefix, Domain: r.Domain,
			Gateway: proxy.Hop{Host: host, Port: port, Transport: tp}, Connections: r.Connections})
	}
	var host string
	if len(ls) > 0 {
		host = ls[0].Host
	}
	client, err := sipgo.NewClient(n.ua, sipgo.WithClientHostname(host))
	if err != nil {
		return fmt.Errorf("sip client: %w", err)
	}
	px, err := proxy.New(proxy.Config{
		Domains:      domains(cfg, addrs),
		Listeners:    ls,
		Trusted:      cfg.Proxy.TrustedPrefixes(),
		TrustedFunc:  n.clusterMember,
		Directory:    n.db,
		Routes:       routes,
		MaxInFlight:  cfg.Proxy.MaxInFlight,
		TimerC:       cfg.Proxy.TimerC.D(),
		MaxDialogAge: cfg.Proxy.MaxCallDuration.D(),
		Server:       cfg.SIP.UserAgent,
		// -1 in the file: no cap (0 for the proxy).
		MaxCallsPerCredential: max(cfg.Proxy.MaxCallsPerCredential, 0),
		MaxCallsPerSource:     max(cfg.Proxy.MaxCallsPerSource, 0),
		CapExempt:             cfg.Guard.ExemptPrefixes(),
		// Anonymous click-to-call, over ws/wss only (proxy/anonymous.go).
		Public:             publicTargets{n.db},
		AnonymousPerMinute: cfg.Proxy.AnonymousCallsPerMinute,
		OnAnonymous:        func(tp, source string) { n.conns.Authenticated(tp, source) },
		OnCall:             n.callEvent, // webhooks
	}, n.auth, n.locator(), n.db, client, n.sip, nil, n.log.With("component", "proxy"))
	if err != nil {
		return err
	}
	n.obs.watchProxy(px)
	n.keeper.SetCalls(px)
	n.proxy = px
	return nil
}

// peerAddr reports whether addr belongs to an active ip connection (the
// guard's live exemption). The guard is built before the store is open:
// until then, none.
func (n *Node) peerAddr(addr netip.Addr) bool {
	db := n.peers.Load()
	if db == nil {
		return false
	}
	_, ok := db.PeerConnection(addr)
	return ok
}

// advertisedHost is what Via and Record-Route carry for a listener bound
// to addr: sip.advertise, else the address itself, else (0.0.0.0 or ::)
// the first non-loopback interface address.
func advertisedHost(cfg config.Config, addr netip.Addr) string {
	if cfg.SIP.Advertise != "" {
		return cfg.SIP.Advertise
	}
	if !addr.IsUnspecified() {
		return addr.String()
	}
	ifs, _ := net.InterfaceAddrs()
	for _, ia := range ifs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && !p.Addr().IsLoopback() && p.Addr().Is4() {
			return p.Addr().String()
		}
	}
	return "127.0.0.1"
}

// callList adapts the proxy's dialog table to the API.
type callList struct{ d *proxy.Dialogs }

func (c callList) ActiveCalls() []api.Call {
	ds := c.d.Calls()
	out := make([]api.Call, 0, len(ds))
	for _, d := range ds {
		out = append(out, api.Call{
			ID: d.CallID + ";" + d.CallerTag + ";" + d.CalleeTag, CallID: d.CallID,
			Caller: d.Caller, Callee: d.Callee,
			CallerCredentialID: d.CallerCredential, CalleeCredentialID: d.CalleeCredential,
			StartedAt: d.Started.UTC(),
		})
	}
	return out
}

// EndCall ends the call with the API's ID (Call-ID;caller tag;callee tag).
func (c callList) EndCall(id string) bool {
	parts := strings.Split(id, ";")
	if len(parts) != 3 {
		return false
	}
	return c.d.EndCall(parts[0], parts[1], parts[2])
}
