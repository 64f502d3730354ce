package sipparse

import (
	"maps"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SipgoParser returns sipgo's parser with the header parsers this server
// corrects, for every place that parses with sipgo (its user agent, the
// stateless front's fallbacks), so that they and Request agree. RFC 3261
// section 25.1 allows blanks (LWS) where sipgo keeps them in the value:
//   - CSeq: 1*DIGIT LWS Method, where LWS may be several blanks; sipgo
//     kept the blanks after the first in the method ("CSeq: 1   INVITE"
//     made "  INVITE", which then did not match the request's method: 400
//     CSeq Method Does Not Match).
//   - The parameters of From, To, Contact and Via: SEMI and EQUAL are
//     SWS ";" SWS and SWS "=" SWS; sipgo kept the blanks in the names and
//     values ("; tag = 1" made a parameter " tag " of " 1": a request
//     without a From tag, which sipgo's transaction layer then refused
//     400, RFC 4475's wsinv), and the blanks before a parameter list in
//     an address without angle brackets in its host. They are trimmed,
//     and an empty name dropped.
func SipgoParser() *sip.Parser {
	m := maps.Clone(sip.DefaultHeadersParser()) // sipgo's own map: never changed in place
	cseq := m["cseq"]
	m["cseq"] = func(name []byte, text string) (sip.Header, error) {
		h, err := cseq(name, text)
		if c, ok := h.(*sip.CSeqHeader); ok && err == nil {
			c.MethodName = sip.RequestMethod(strings.TrimLeft(string(c.MethodName), " \t"))
		}
		return h, err
	}
	for _, name := range []string{"from", "f", "to", "t", "contact", "m", "via", "v"} {
		parse := m[name]
		m[name] = func(name []byte, text string) (sip.Header, error) {
			h, err := parse(name, text)
			trimLWS(h) // also before a comma error: the header is kept, the rest parsed next
			return h, err
		}
	}
	return sip.NewParser(sip.WithHeadersParsers(m))
}

// trimLWS trims the blanks sipgo leaves in h's parameters and host
// (SipgoParser).
func trimLWS(h sip.Header) {
	switch h := h.(type) {
	case *sip.FromHeader:
		h.Address.Host, h.Params = trimBlanks(h.Address.Host), trimParams(h.Params)
	case *sip.ToHeader:
		h.Address.Host, h.Params = trimBlanks(h.Address.Host), trimParams(h.Params)
	case *sip.ContactHeader:
		h.Address.Host, h.Params = trimBlanks(h.Address.Host), trimParams(h.Params)
	case *sip.ViaHeader:
		h.Host, h.Params = trimBlanks(h.Host), trimParams(h.Params)
		if i := strings.IndexAny(h.Host, " \t"); h.Transport == "" && i > 0 {
			// "SIP / 2.0 / TCP host": sipgo took the blank after the
			// last slash for the end of the transport.
			h.Transport, h.Host = strings.ToUpper(h.Host[:i]), trimBlanks(h.Host[i:])
		}
	}
}

// blankParams reports whether a parameter's name or value starts or ends
// with a blank, or a name is empty: what trimParams changes.
func blankParams(ps sip.HeaderParams) bool {
	for _, p := range ps {
		if p.K == "" || blankEnds(p.K) || blankEnds(p.V) {
			return true
		}
	}
	return false
}

// blankEnds reports whether s starts or ends with a blank, without
// trimBlanks' cost (the REGISTER path asks for every parameter).
func blankEnds(s string) bool {
	return s != "" && (isBlank(s[0]) || isBlank(s[len(s)-1]))
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// trimParams trims the blanks around each name and value of ps, in place,
// and drops the parameters whose name is then empty.
func trimParams(ps sip.HeaderParams) sip.HeaderParams {
	if !blankParams(ps) {
		return ps
	}
	out := ps[:0]
	for _, p := range ps {
		p.K, p.V = trimBlanks(p.K), trimBlanks(p.V)
		if p.K != "" {
			out = append(out, p)
		}
	}
	return out
}

func trimBlanks(s string) string { return strings.Trim(s, " \t") }
