package sipcheck

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Unsupported returns the option tags the request requires in header
// (Require, or Proxy-Require) that are not among supported, in the order
// given; nil when it requires nothing else. RFC 3261 8.2.2.3 (a UAS, the
// registrar: 10.3 step 2) and 16.3 step 5 (a proxy, for Proxy-Require)
// answer such a request with 420 Bad Extension and list them in an
// Unsupported header. Option tags compare case-insensitively.
func Unsupported(req *sip.Request, header string, supported ...string) []string {
	var out []string
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), header) {
			continue
		}
		for tag := range strings.SplitSeq(h.Value(), ",") {
			tag = strings.TrimSpace(tag)
			if tag == "" || len(out) >= 16 {
				continue
			}
			known := false
			for _, s := range supported {
				if strings.EqualFold(s, tag) {
					known = true
					break
				}
			}
			if !known {
				out = append(out, tag)
			}
		}
	}
	return out
}

// BadExtension returns the 420 answer to req for the unsupported option
// tags (RFC 3261 20.40: Unsupported lists them).
func BadExtension(res *sip.Response, tags []string) *sip.Response {
	res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(tags, ", ")))
	return res
}
