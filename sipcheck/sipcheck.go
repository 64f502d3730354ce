// Package sipcheck holds checks on parsed SIP messages that both the
// registrar and the proxy apply before they copy anything from a request
// into a message they send.
package sipcheck

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// HasLineBreak reports whether any header of m carries a CR or LF inside its
// value. sipgo splits header lines on CRLF only, so a bare LF stays inside
// the value; copying such a header into a response or a forwarded request
// would let the sender inject header lines (RFC 3261 section 7.3.1 allows
// no bare CR or LF in a header value). Such a message cannot be answered
// without echoing it, so callers drop it. A NUL, which no header field may
// hold either, and a header without a name count as line breaks.
//
// It reads the parsed fields of sipgo's typed headers rather than
// formatting them, so that it costs no allocation on the REGISTER path.
func HasLineBreak(m interface{ Headers() []sip.Header }) bool {
	for _, h := range m.Headers() {
		if headerHasBreak(h) {
			return true
		}
	}
	return false
}

func headerHasBreak(h sip.Header) bool {
	switch v := h.(type) {
	case *sip.ToHeader:
		return brk(v.DisplayName) || uriBreak(&v.Address) || paramsBreak(v.Params)
	case *sip.FromHeader:
		return brk(v.DisplayName) || uriBreak(&v.Address) || paramsBreak(v.Params)
	case *sip.ContactHeader:
		return brk(v.DisplayName) || uriBreak(&v.Address) || paramsBreak(v.Params)
	case *sip.ReferredByHeader:
		return brk(v.DisplayName) || uriBreak(&v.Address) || paramsBreak(v.Params)
	case *sip.ViaHeader:
		return brk(v.ProtocolName) || brk(v.ProtocolVersion) || brk(v.Transport) || brk(v.Host) || paramsBreak(v.Params)
	case *sip.RouteHeader:
		return uriBreak(&v.Address)
	case *sip.RecordRouteHeader:
		return uriBreak(&v.Address)
	case *sip.ReferToHeader:
		return uriBreak(&v.Address)
	case *sip.CallIDHeader:
		return brk(string(*v))
	case *sip.ContentTypeHeader:
		return brk(string(*v))
	case *sip.CSeqHeader:
		return brk(string(v.MethodName))
	case *sip.MaxForwardsHeader, *sip.ExpiresHeader, *sip.ContentLengthHeader:
		return false // numbers
	default: // generic headers keep their raw value: Value does not allocate
		return h.Name() == "" || brk(h.Name()) || brk(h.Value())
	}
}

// brk reports whether s holds a CR, LF or NUL (no header field may hold
// a NUL either, RFC 3261 section 25.1, and echoing one back confuses
// C peers): one pass, one comparison per byte in the usual case (header
// values are short: several IndexByte calls cost more there).
func brk(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= '\r' && (c == '\n' || c == '\r' || c == 0) {
			return true
		}
	}
	return false
}

func uriBreak(u *sip.Uri) bool {
	return brk(u.Scheme) || brk(u.Raw()) || brk(u.User) || brk(u.Password) || brk(u.Host) ||
		paramsBreak(u.UriParams) || paramsBreak(u.Headers)
}

func paramsBreak(ps sip.HeaderParams) bool {
	for _, kv := range ps {
		if brk(kv.K) || brk(kv.V) {
			return true
		}
	}
	return false
}

// Duplicate returns the name of the first header field that m carries
// more than once although it may appear only once (From, To, Call-ID,
// CSeq, Max-Forwards, Content-Length: RFC 3261 section 7.3.1 allows
// repeating a field only when its value is a comma-separated list), ""
// when there is none. Such a message is malformed, and sipgo's accessors
// would give the last of the copies while whoever reads the message
// further may take the first: a second From would pass the caller-ID
// check with one identity and reach the callee with another. No
// allocation.
func Duplicate(m interface{ Headers() []sip.Header }) string {
	var seen uint8
	for _, h := range m.Headers() {
		var bit uint8
		switch h.(type) {
		case *sip.FromHeader:
			bit = 1
		case *sip.ToHeader:
			bit = 2
		case *sip.CallIDHeader:
			bit = 4
		case *sip.CSeqHeader:
			bit = 8
		case *sip.MaxForwardsHeader:
			bit = 16
		case *sip.ContentLengthHeader:
			bit = 32
		default:
			continue
		}
		if seen&bit != 0 {
			return h.Name()
		}
		seen |= bit
	}
	return ""
}

// Version reports whether req is a SIP/2.0 request (RFC 3261 section
// 7.1: the version is case-insensitive, but sent in upper case, as our
// responses and forwarded requests do). Any other version is answered
// 505 Version Not Supported (RFC 3261 section 21.5.6). It does not write
// req: sipgo's transaction may read it meanwhile.
func Version(req *sip.Request) bool {
	return req.SipVersion == "SIP/2.0" || strings.EqualFold(req.SipVersion, "SIP/2.0")
}
