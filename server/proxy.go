package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/cluster"
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
	locator := n.locator()
	var relayed func(*sip.Request) bool
	if o, ok := locator.(ownFlows); ok {
		relayed = o.relayed // a cluster's: a signed relay from a live node
	}
	px, err := proxy.New(proxy.Config{
		Domains:      domains(cfg, addrs),
		Listeners:    ls,
		Trusted:      cfg.Proxy.TrustedPrefixes(),
		TrustedFunc:  n.clusterMember,
		TrustedRelay: relayed,
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
		Connected: func(tp, addr string) bool {
			_, err := n.ua.TransportLayer().GetConnection(tp, addr)
			return err == nil
		},
	}, n.auth, locator, n.db, client, n.sip, nil, n.log.With("component", "proxy"))
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

// callList adapts the proxy's dialog table to the API. In a cluster it
// lists the other nodes' calls too (their snapshots in Redis, at most a
// second old) and ends a call through the node relaying it.
type callList struct {
	d    *proxy.Dialogs
	cl   *cluster.Cluster // nil: a single node
	node string           // cluster.node_name
}

func (n *Node) callList() callList {
	c := callList{d: n.proxy.Dialogs()}
	if n.cl != nil {
		c.cl, c.node = n.cl, n.cfg.Cluster.NodeName
	}
	return c
}

// endOwn ends a call of this node's that another node was asked to end.
func (c callList) endOwn(id string) {
	if parts := strings.Split(id, ";"); len(parts) == 3 {
		c.d.EndCall(parts[0], parts[1], parts[2])
	}
}

// own returns this node's calls, sorted by ID.
func (c callList) own() []api.Call {
	ds := c.d.Calls()
	out := make([]api.Call, 0, len(ds))
	for _, d := range ds {
		out = append(out, api.Call{
			ID: d.CallID + ";" + d.CallerTag + ";" + d.CalleeTag, CallID: d.CallID,
			Caller: d.Caller, Callee: d.Callee,
			CallerCredentialID: d.CallerCredential, CalleeCredentialID: d.CalleeCredential,
			StartedAt: d.Started.UTC(), Node: c.node,
		})
	}
	slices.SortFunc(out, func(a, b api.Call) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// snapshot is this node's calls as the other nodes read them (JSON).
func (c callList) snapshot() []byte {
	b, err := json.Marshal(c.own())
	if err != nil { // strings and times: cannot fail
		return []byte("[]")
	}
	return b
}

func (c callList) ActiveCalls(ctx context.Context) ([]api.Call, error) {
	out := c.own()
	if c.cl == nil {
		return out, nil
	}
	peers, err := c.peers(ctx)
	if err != nil {
		return nil, err
	}
	for _, calls := range peers {
		out = append(out, calls...)
	}
	return mergeCalls(out), nil
}

// mergeCalls returns calls with one entry per ID. A call between devices
// registered on two nodes is a dialog on both (the node that
// authenticated the caller relays to the node holding the callee's
// connection): it was listed twice, and a page boundary between the two
// made the cursor return the same page for ever (call list --all hung).
// The entry kept is the one that knows the caller's credential (the node
// that authenticated it, the one relaying the call), with what the other
// knows filled in, and the earlier start.
func mergeCalls(calls []api.Call) []api.Call {
	slices.SortStableFunc(calls, func(a, b api.Call) int { return strings.Compare(a.ID, b.ID) })
	out := calls[:0]
	for _, c := range calls {
		if n := len(out); n > 0 && out[n-1].ID == c.ID {
			k := &out[n-1]
			if k.CallerCredentialID == "" && c.CallerCredentialID != "" {
				c, *k = *k, c // keep the relaying node's entry
			}
			if k.CalleeCredentialID == "" {
				k.CalleeCredentialID = c.CalleeCredentialID
			}
			if c.StartedAt.Before(k.StartedAt) {
				k.StartedAt = c.StartedAt
			}
			continue
		}
		out = append(out, c)
	}
	return out
}

// peers returns the other live nodes' calls, by node.
func (c callList) peers(ctx context.Context) (map[string][]api.Call, error) {
	snaps, err := c.cl.PeerCalls(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the other nodes' calls: %w", err)
	}
	out := make(map[string][]api.Call, len(snaps))
	for node, b := range snaps {
		var calls []api.Call
		if json.Unmarshal(b, &calls) != nil {
			continue // a node of another version, say: its calls unlisted
		}
		for i := range calls {
			calls[i].Node = node
		}
		out[node] = calls
	}
	return out, nil
}

// EndCall ends the call with the API's ID (Call-ID;caller tag;callee tag):
// here, or through the node relaying it, which is asked to (the BYEs
// follow within milliseconds of the answer).
func (c callList) EndCall(ctx context.Context, id string) (bool, error) {
	parts := strings.Split(id, ";")
	if len(parts) != 3 {
		return false, nil
	}
	if c.d.EndCall(parts[0], parts[1], parts[2]) {
		return true, nil
	}
	if c.cl == nil {
		return false, nil
	}
	peers, err := c.peers(ctx)
	if err != nil {
		return false, err
	}
	for node, calls := range peers {
		if slices.ContainsFunc(calls, func(x api.Call) bool { return x.ID == id }) {
			if err := c.cl.EndCallOn(ctx, node, id); err != nil {
				return false, fmt.Errorf("end the call through node %s: %w", node, err)
			}
			return true, nil
		}
	}
	return false, nil
}
