package proxy

import (
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/e164"
	"github.com/sipwarden/sipwarden/sipuri"
	"github.com/sipwarden/sipwarden/store"
)

// Directory answers what the proxy asks about connections and numbers on
// every call, from memory (*store.DB: a routing index rebuilt after a
// write, and the connection cache).
type Directory interface {
	// PeerConnection returns the active ip connection whose addresses
	// contain addr.
	PeerConnection(addr netip.Addr) (store.Connection, bool)
	// AssignedNumber returns the assignment of an E.164 number.
	AssignedNumber(number string) (store.Assignment, bool)
	// Connection returns a connection by ID.
	Connection(id string) (store.Connection, error)
}

// Reason phrases of the connection policies' refusals.
const (
	reasonCallerID        = "From User Does Not Match Credential"
	reasonFromDomain      = "From Domain Not Served Here"
	reasonURICalling      = "SIP URI Calls Not Accepted By This Connection"
	reasonNumberNotFound  = "Number Not Assigned"
	reasonNumberNoDevices = "Temporarily Unavailable"
)

// peer returns the ip connection a source address belongs to.
func (p *Proxy) peer(source string) (store.Connection, bool) {
	if p.cfg.Directory == nil {
		return store.Connection{}, false
	}
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return store.Connection{}, false
	}
	return p.cfg.Directory.PeerConnection(ap.Addr())
}

// connection returns a caller's connection (the zero Connection when
// there is no directory or it is gone: default policies apply).
func (p *Proxy) connection(id string) store.Connection {
	if p.cfg.Directory == nil || id == "" {
		return store.Connection{}
	}
	c, err := p.cfg.Directory.Connection(id)
	if err != nil {
		return store.Connection{}
	}
	return c
}

// callerIDAllowed applies the caller's connection's caller ID policy to
// the From user it presents (a PBX on a trunk presents its callers'
// numbers, not its credential's username). A credential may always
// present its username and the numbers assigned to it; under
// connection_numbers also any number of its connection; under any,
// anything. An ip connection's default is any (a carrier presents its
// callers' numbers); connection_numbers or username restrict it to its
// own numbers.
func (p *Proxy) callerIDAllowed(c *caller, fromUser string) bool {
	policy := c.Connection.CallerIDPolicy
	if c.Peer {
		if policy == "" {
			policy = store.CallerIDAny
		}
	} else if fromUser == c.Credential.Username {
		return true
	}
	if policy == store.CallerIDAny {
		return true
	}
	n, ok := e164.FromUser(fromUser)
	if !ok || p.cfg.Directory == nil {
		return false
	}
	a, ok := p.cfg.Directory.AssignedNumber(n)
	if !ok || a.ConnectionID != c.Connection.ID {
		return false
	}
	return c.Peer || a.CredentialID == c.Credential.ID || policy == store.CallerIDConnectionNumbers
}

// uriCallAllowed applies the callee's connection's SIP URI calling
// preference to a call by username (not by an assigned number):
// disabled admits only the connection's own credentials, internal every
// credential of this server, unrestricted (the default) also ip
// connections and trusted peers. Anonymous callers reach only targets a
// connection made public, which is its own decision.
func (p *Proxy) uriCallAllowed(c *caller, calleeConnection string) bool {
	if c.Anonymous {
		return true
	}
	conn := p.connection(calleeConnection)
	switch conn.SIPURICallingPreference {
	case store.URICallingDisabled:
		return !c.Trusted && c.Credential.ConnectionID == calleeConnection
	case store.URICallingInternal:
		return !c.Trusted
	}
	return true
}

// numberTargets routes a call to an assigned number (RFC 3261 16.5): to
// the registered devices of its credential, else to its connection's
// PBX. ok is false when the user is not an assigned number.
func (p *Proxy) numberTargets(req *sip.Request, ru *sip.Uri) (ts []target, status int, reason string, ok bool) {
	if p.cfg.Directory == nil {
		return nil, 0, "", false
	}
	n, isNumber := e164.FromUser(ru.User)
	if !isNumber {
		return nil, 0, "", false
	}
	a, assigned := p.cfg.Directory.AssignedNumber(n)
	if !assigned {
		return nil, 0, "", false
	}
	conn := p.connection(a.ConnectionID)
	if !conn.Active {
		return nil, 480, reasonNumberNoDevices, true
	}
	if a.Username != "" {
		if ts := p.bindingTargets(req, a.Username); len(ts) > 0 {
			for i := range ts {
				ts[i].connection = a.ConnectionID
			}
			return ts, 0, "", true
		}
		return nil, 480, reasonNumberNoDevices, true
	}
	if conn.PBXURI == "" {
		return nil, 480, reasonNumberNoDevices, true
	}
	host, port, tp, err := sipuri.Hop(conn.PBXURI)
	if err != nil {
		p.log.Warn("unusable pbx_uri", "connection_id", conn.ID, "error", err)
		return nil, 480, reasonNumberNoDevices, true
	}
	u := ru.Clone()
	u.Host, u.Port = host, port
	u.UriParams = sip.HeaderParams{}
	if tp != "udp" {
		u.UriParams.Add("transport", tp)
	}
	return []target{{uri: *u, hop: Hop{Host: host, Port: port, Transport: tp}, connection: conn.ID}}, 0, "", true
}

// contactHop is where a device listens for a new stream connection: its
// Contact's address (RFC 3261 18.2.2 / 19.1: port 5060 for tcp and 5061
// for tls when the URI gives none), over transport, when that is the
// address its REGISTER came from (source, ip:port). Another address (a
// device behind NAT names a private one) is not dialled: it would not
// answer, and a registrant must not make the server connect where it
// chooses; neither is a name, which the server would resolve.
func contactHop(u *sip.Uri, transport, source string) (Hop, bool) {
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	src, serr := netip.ParseAddrPort(source)
	if err != nil || serr != nil || ip.Unmap() != src.Addr().Unmap() {
		return Hop{}, false
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if transport == "tls" {
			port = 5061
		}
	}
	return Hop{Host: ip.String(), Port: port, Transport: transport}, true
}

// bindingTargets are the reachable bindings of a local AOR, for req.
func (p *Proxy) bindingTargets(req *sip.Request, aor string) []target {
	var bs []store.Binding
	if rl, ok := p.loc.(RequestLocator); ok {
		bs = rl.LookupFor(req, aor)
	} else {
		bs = p.loc.Lookup(aor)
	}
	if len(bs) == 0 {
		return nil
	}
	ts := make([]target, 0, len(bs))
	for i := range bs {
		b := bs[i]
		t, err := bindingTarget(&b)
		if err != nil {
			p.log.Warn("unusable binding", "aor", b.AOR, "binding", b.ID, "error", err)
			continue
		}
		if tp := t.hop.Transport; (tp == "tcp" || tp == "tls") && p.cfg.Connected != nil && !p.cfg.Connected(tp, t.hop.addr()) {
			if h, ok := contactHop(&t.uri, tp, b.Source); ok && !p.isUs(&t.uri) {
				p.log.Debug("binding's connection gone: reaching its contact", "aor", b.AOR, "source", b.Source, "contact", h.addr(), "transport", tp)
				t.hop = h
			}
		}
		ts = append(ts, t)
	}
	return ts
}

// assertIdentity sets P-Asserted-Identity (RFC 3325 section 9.1) to the
// From identity the proxy verified for an authenticated caller: its own
// username, or a number its connection's caller ID policy lets it
// present. Downstream elements of the trust domain (a carrier gateway)
// read the caller's number from it.
func assertIdentity(req *sip.Request) {
	from := req.From()
	if from == nil {
		return
	}
	user := fromUser(&from.Address)
	if user == "" {
		return
	}
	var b strings.Builder
	b.WriteByte('<')
	if isTel(&from.Address) {
		n, ok := e164.FromUser(user)
		if !ok {
			return
		}
		b.WriteString("tel:" + n)
	} else if n, ok := e164.FromUser(user); ok {
		b.WriteString("sip:" + n + "@" + from.Address.Host + ";user=phone")
	} else {
		b.WriteString("sip:" + from.Address.User + "@" + from.Address.Host)
	}
	b.WriteByte('>')
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", b.String()))
}

// toTrustDomain reports whether every target is a gateway or a PBX (not
// a registered device): the elements P-Asserted-Identity is sent to.
func toTrustDomain(ts []target) bool {
	for i := range ts {
		if ts[i].binding != nil {
			return false
		}
	}
	return len(ts) > 0
}
