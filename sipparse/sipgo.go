package sipparse

import (
	"maps"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// SipgoParser returns sipgo's parser with the header parsers this server
// corrects, for every place that parses with sipgo (its user agent, the
// stateless front's fallbacks), so that they and Request agree:
//   - CSeq: RFC 3261 section 25.1 has 1*DIGIT LWS Method, where LWS may be
//     several blanks; sipgo keeps the blanks after the first in the
//     method ("CSeq: 1   INVITE" made "  INVITE", which then did not
//     match the request's method: 400 CSeq Method Does Not Match).
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
	return sip.NewParser(sip.WithHeadersParsers(m))
}
