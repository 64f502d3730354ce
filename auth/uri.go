package auth

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// uriMatches reports whether the digest uri names the Request-URI ruri.
//
// RFC 7616 section 3.4.6 has the server check that the digest uri names
// the requested resource, and RFC 3261 22.4 takes the digest uri from the
// Request-URI: without the check an answer captured for one request
// (an INVITE to alice, a REGISTER of one Contact) authenticates another
// whose response covers only method and uri. SIP clients (sipp, baresip,
// linphonec, JsSIP, sipgo) copy the Request-URI as sent, so the common
// case is a byte-for-byte match of ruri's parts; otherwise the scheme,
// user, host (case-insensitively) and port must agree, the default port
// counting as none, and parameters and headers are ignored, since
// clients differ in which of those they repeat (transport=, ob).
// Non-SIP URIs (tel:) are compared as written.
//
// One exception, for sipp: its [authentication] keyword answers with the
// server's address (sip:host:port) as the uri, whatever the Request-URI.
// A SIP uri with no user part naming this server (server reports whether
// a host is one of its names or addresses) is accepted: it cannot move an
// answer from one callee or Contact to another within the names the
// server answers for, and the nonce count (qop is required) still
// refuses the replay of a captured answer.
func uriMatches(du string, ruri *sip.Uri, server func(host string) bool) bool {
	if sameSpelling(du, ruri) {
		return true // the common case, without parsing (no allocation)
	}
	var u sip.Uri
	if err := sip.ParseUri(du, &u); err != nil {
		return false
	}
	if !strings.EqualFold(u.Scheme, ruri.Scheme) {
		return isSIP(u.Scheme) && isSIP(ruri.Scheme) && u.User == "" && server != nil && server(u.Host)
	}
	if !isSIP(u.Scheme) {
		return u.Raw() == ruri.Raw()
	}
	if u.User == ruri.User &&
		strings.EqualFold(u.Host, ruri.Host) &&
		port(u.Scheme, u.Port) == port(ruri.Scheme, ruri.Port) {
		return true
	}
	return u.User == "" && server != nil && server(u.Host)
}

// sameSpelling reports whether du spells ruri's scheme, user, host and
// port as ruri has them, followed by nothing or by parameters or headers.
func sameSpelling(du string, r *sip.Uri) bool {
	n := len(r.Scheme)
	if n == 0 || len(du) <= n || !strings.EqualFold(du[:n], r.Scheme) || du[n] != ':' {
		return false
	}
	s := du[n+1:]
	if r.User != "" {
		u := len(r.User)
		if len(s) <= u || s[:u] != r.User || s[u] != '@' {
			return false
		}
		s = s[u+1:]
	}
	h := len(r.Host)
	if h == 0 || len(s) < h || !strings.EqualFold(s[:h], r.Host) {
		return false
	}
	s = s[h:]
	if r.Port != 0 {
		var buf [8]byte
		p := strconv.AppendInt(append(buf[:0], ':'), int64(r.Port), 10)
		if len(s) < len(p) || s[:len(p)] != string(p) {
			return false
		}
		s = s[len(p):]
	}
	return s == "" || s[0] == ';' || s[0] == '?'
}

func isSIP(scheme string) bool {
	return strings.EqualFold(scheme, "sip") || strings.EqualFold(scheme, "sips")
}

// port returns p, or the scheme's default port (RFC 3261 19.1.2) for 0.
func port(scheme string, p int) int {
	if p != 0 {
		return p
	}
	if strings.EqualFold(scheme, "sips") {
		return 5061
	}
	return 5060
}
