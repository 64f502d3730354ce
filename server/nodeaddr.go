package server

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/sipwarden/sipwarden/store"
)

// bindingAddrs is what a binding records as the listener it came through
// (store.Binding.LocalAddr), by transport. On a single node these are the
// listeners' addresses. In a cluster they also name the node holding the
// binding's connection (the other nodes forward calls for it there), so
// they must differ between nodes: a listener on an unspecified address
// (0.0.0.0:5060 on every node of a cluster) is named by the host of
// cluster.advertise with the listener's port instead.
func (n *Node) bindingAddrs() map[string]string {
	if n.cfg.Cluster.RedisURL == "" {
		return n.lis.addrs
	}
	host, _, err := net.SplitHostPort(n.cfg.Cluster.Advertise)
	if err != nil {
		return n.lis.addrs // config validation requires host:port
	}
	out := make(map[string]string, len(n.lis.addrs))
	for tp, a := range n.lis.addrs {
		out[tp] = nodeAddr(a, host)
	}
	return out
}

// nodeAddr is listen with an unspecified host (0.0.0.0, ::) replaced by
// host.
func nodeAddr(listen, host string) string {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil || !ap.Addr().IsUnspecified() {
		return listen
	}
	return net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
}

// holdsBinding reports whether this node reports b's expiry (metrics,
// the registration.expired webhook): in a cluster every node sweeps every
// binding from its copy of the table, and only the node b was registered
// through reports it, or every node when that node is gone (or b does not
// say), so that the expiry is not lost with it.
func (n *Node) holdsBinding(b store.Binding) bool {
	if n.cl == nil || b.LocalAddr == "" {
		return true
	}
	for _, a := range n.bindingAddrs() {
		if a == b.LocalAddr {
			return true
		}
	}
	_, alive := n.cl.PeerAt(b.LocalAddr)
	return !alive
}
