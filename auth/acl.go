package auth

import (
	"net/netip"

	"github.com/sipwarden/sipwarden/store"
)

// Connections looks up a credential's connection, for its allow-list
// (seed 002: credentials AND a whitelisted address). *store.DB satisfies it.
type Connections interface {
	Connection(id string) (store.Connection, error)
}

// checkACL returns OK when the credential may authenticate from source
// (ip:port, or a bare ip), Inactive when its connection is deactivated
// (active: false), ACLDenied otherwise. A connection without
// allowed_cidrs accepts every address. It fails closed: a connection that
// cannot be read, or a source that is not an address, is denied.
func (a *Authenticator) checkACL(cred store.Credential, source string) Outcome {
	if a.cfg.Connections == nil {
		return OK
	}
	conn, err := a.cfg.Connections.Connection(cred.ConnectionID)
	if err != nil {
		return ACLDenied
	}
	if !conn.Active {
		return Inactive
	}
	if len(conn.AllowedCIDRs) == 0 || SourceAllowed(conn.AllowedCIDRs, source) {
		return OK
	}
	return ACLDenied
}

// SourceAllowed reports whether source (ip:port or ip) lies in one of
// cidrs (as the API stores them: "192.0.2.0/24", "2001:db8::/32").
// Entries that do not parse match nothing.
func SourceAllowed(cidrs []string, source string) bool {
	addr, ok := sourceAddr(source)
	if !ok {
		return false
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

func sourceAddr(source string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(source); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(source); err == nil {
		return a.Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
