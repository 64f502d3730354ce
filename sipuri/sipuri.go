// Package sipuri parses the SIP URIs of next hops in configuration and
// API records, and decodes the escapes of a URI's user part, without
// sipgo.
package sipuri

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Hop splits the URI of a next hop (a gateway, a PBX: "sip:host:port;transport=tcp",
// sips: for TLS; no user part) into host, port and transport, with the
// default port of the transport (RFC 3263 section 4.2 without DNS: the
// host is used as it is).
func Hop(uri string) (host string, port int, transport string, err error) {
	h, err := ParseHop(uri)
	return h.Host, h.Port, h.Transport, err
}

// NextHop is a parsed next-hop URI.
type NextHop struct {
	Host      string
	Port      int // the URI's, else the transport's default
	Transport string
	// ExplicitPort: the URI gave a port. A host name without one is
	// resolved with DNS SRV (RFC 3263 section 4.2).
	ExplicitPort bool
}

// IsName reports whether the host is a DNS name rather than an address.
func (h NextHop) IsName() bool {
	_, err := netip.ParseAddr(h.Host)
	return err != nil
}

// ParseHop is Hop with whether the port was given.
func ParseHop(uri string) (NextHop, error) {
	host, port, transport, explicit, err := parseHop(uri)
	return NextHop{Host: host, Port: port, Transport: transport, ExplicitPort: explicit}, err
}

func parseHop(uri string) (host string, port int, transport string, explicit bool, err error) {
	s := strings.TrimSpace(uri)
	scheme := "sip"
	switch {
	case strings.HasPrefix(s, "sips:"):
		scheme, s = "sips", s[5:]
	case strings.HasPrefix(s, "sip:"):
		s = s[4:]
	default:
		return "", 0, "", false, fmt.Errorf("want a sip: or sips: URI")
	}
	transport = "udp"
	if scheme == "sips" {
		transport = "tls"
	}
	hostport, params, _ := strings.Cut(s, ";")
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "transport") {
			transport = strings.ToLower(v)
		}
	}
	switch transport {
	case "udp", "tcp", "tls":
	default:
		return "", 0, "", false, fmt.Errorf("transport %q: want udp, tcp or tls", transport)
	}
	if strings.Contains(hostport, "@") {
		return "", 0, "", false, fmt.Errorf("a gateway URI has no user part")
	}
	port = 5060
	if transport == "tls" {
		port = 5061
	}
	host, p, hasPort, ok := splitHostPort(hostport)
	if !ok || host == "" || strings.ContainsAny(host, " \"<>[]\r\n") {
		return "", 0, "", false, fmt.Errorf("host %q", hostport)
	}
	if hasPort {
		if port, ok = portNumber(p); !ok {
			return "", 0, "", false, fmt.Errorf("port %q: want 1 to 65535", p)
		}
		explicit = true
	}
	return host, port, transport, explicit, nil
}

// splitHostPort splits "host", "host:port", "[v6]", "[v6]:port" or a
// bare IPv6 address; ok is false for a bracket that does not close on an
// IPv6 address, or anything after it but a port.
func splitHostPort(hp string) (host, port string, hasPort, ok bool) {
	if rest, isV6 := strings.CutPrefix(hp, "["); isV6 {
		addr, after, closed := strings.Cut(rest, "]")
		if a, err := netip.ParseAddr(addr); !closed || err != nil || !a.Is6() {
			return "", "", false, false
		}
		if after == "" {
			return addr, "", false, true
		}
		port, hasPort = strings.CutPrefix(after, ":")
		return addr, port, true, hasPort
	}
	if a, err := netip.ParseAddr(hp); err == nil && a.Is6() {
		return hp, "", false, true // unbracketed: every colon is the address's
	}
	host, port, hasPort = strings.Cut(hp, ":")
	return host, port, hasPort, true
}

// portNumber reads a port: digits only, 1 to 65535 ("5060abc", "+5060"
// and 0 were taken before).
func portNumber(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, n >= 1 && n <= 65535
}

// UnescapeUser returns a SIP URI's user part (a Request-URI's, a
// REGISTER's To) with its escapes decoded (RFC 3261 section 19.1.4:
// sip:%2B15551110001@ is +15551110001, sip:%62ob@ is bob; sipgo keeps
// the escapes, and the lookups missed such a callee, the registrar such
// an AOR), when every character decoded may stand
// unescaped in a user part (section 25.1: unreserved, user-unreserved);
// otherwise user as it is. The decoded user goes on into the URIs of
// gateways and PBXs: a decoded CR, LF, space or '@' would let a caller
// write lines or another host into the request a trunk receives.
func UnescapeUser(user string) string {
	if !strings.Contains(user, "%") {
		return user
	}
	u, err := url.PathUnescape(user)
	if err != nil {
		return user
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0) {
			return user
		}
	}
	return u
}
