package stateless

import (
	"bytes"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
)

// A REGISTER sipgo's parser refuses (a CSeq of "abc", an empty Call-ID, a
// Contact of "<<<>>>", a header line without a colon) is answered 400
// with a reason phrase naming what is wrong, as RFC 3261 section 21.4.1
// has a server do, rather than dropped: a phone that sent it learns why,
// where silence looked like a dead server. The answer is made from the
// raw header lines, since there is no parsed request to answer: the Vias,
// From, To, Call-ID and CSeq as sent (section 8.2.6.2), even when one of
// them is the malformed one, and a To tag. A message without a Via has
// nobody to answer (section 18.2.2); one without the end of its header
// section is not known to be a whole SIP request; one with a CR or LF
// inside a value the answer copies would have it echoed: those are still
// dropped. A request line that is not three parts, or whose version is
// not SIP, is answered when a Via says where from. The admission gate is
// asked first (Config.Admit), so that a banned source or a denied
// User-Agent gets nothing.

// canonicalName is the canonical name of a header sipgo parses into a
// type (the only ones its parser refuses), given its lower-case full or
// compact form; "" for the others.
func canonicalName(lower string) string {
	switch lower {
	case "via", "v":
		return "Via"
	case "from", "f":
		return "From"
	case "to", "t":
		return "To"
	case "call-id", "i":
		return "Call-ID"
	case "cseq":
		return "CSeq"
	case "contact", "m":
		return "Contact"
	case "content-length", "l":
		return "Content-Length"
	case "content-type", "c":
		return "Content-Type"
	case "max-forwards":
		return "Max-Forwards"
	case "route":
		return "Route"
	case "record-route":
		return "Record-Route"
	case "refer-to", "r":
		return "Refer-To"
	case "referred-by", "b":
		return "Referred-By"
	}
	return ""
}

// malformed is what diagnose found of a REGISTER sipgo refused: why, and
// the header values (as sent) that an answer copies and that the
// admission gate reads.
type malformed struct {
	code                 int // 0: 400
	reason               string
	vias                 []string
	from, to, callID, cs string
	gate                 []sip.Header // User-Agent, Authorization
}

// diagnose finds why sipgo refused msg, a REGISTER, and the headers an
// answer needs. false: no answer (no Via or an empty one, no end of the
// header section, a CR or LF in a value the answer copies).
func diagnose(msg []byte) (malformed, bool) {
	var m malformed
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return m, false
	}
	lines := unfold(strings.Split(string(msg[:end]), "\r\n"))
	parts := strings.SplitN(lines[0], " ", 3)
	var uri sip.Uri
	switch {
	case len(parts) != 3 || strings.ContainsAny(parts[2], " \t") || !sipVersion([]byte(parts[2])):
		// RFC 3261 7.1: three parts with single spaces (none in the
		// Request-URI, none after the version), the last a SIP-Version.
		// Answered when a Via says where from: that makes it SIP.
		m.reason = "Malformed Request Line"
	case sip.ParseUri(parts[1], &uri) != nil:
		m.reason = "Malformed Request-URI"
		if rfc3986Scheme(parts[1]) && !schemeOK([]byte(parts[1])) {
			// RFC 3261 21.4.14: a well-formed scheme sipgo does not read
			// ("soap.beep:", RFC 4475's novelsc).
			m.code, m.reason = 416, "Unsupported URI Scheme"
		}
	}
	parse := sip.HeadersParser(sip.DefaultHeadersParser())
	length := -1
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.IndexByte(line, '\r') >= 0 {
			// No colon, or a CR inside the line (only a value the
			// answer copies must not hold one: lineBreak).
			if m.reason == "" {
				m.reason = "Malformed Header Line"
			}
			if !ok {
				continue
			}
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		canonical := canonicalName(strings.ToLower(name))
		if canonical != "" && m.reason == "" {
			if _, err := parse.ParseHeader(nil, []byte(line)); err != nil {
				m.reason = "Malformed " + canonical + " Header"
			}
		}
		switch canonical {
		case "Via":
			m.vias = append(m.vias, value)
		case "From":
			m.from = value
		case "To":
			m.to = value
		case "Call-ID":
			m.callID = value
		case "CSeq":
			m.cs = value
		case "Content-Length":
			if n, err := strconv.Atoi(value); err == nil {
				length = n
			}
		}
		if l := strings.ToLower(name); l == "user-agent" || l == "authorization" {
			m.gate = append(m.gate, sip.NewHeader(name, value))
		}
	}
	if m.reason == "" && length > len(msg)-end-4 {
		m.reason = "Message Shorter Than Content-Length" // RFC 3261 18.3
	}
	if m.reason == "" && m.cs == "" {
		m.reason = "Missing CSeq Header"
	}
	if m.reason == "" {
		m.reason = "Bad Request"
	}
	if m.lineBreak() {
		return m, false // an answer would echo it, as sipcheck.HasLineBreak guards
	}
	return m, len(m.vias) > 0 && m.vias[0] != ""
}

// rfc3986Scheme reports whether uri starts with a scheme as RFC 3986
// section 3.1 has it: a letter, then letters, digits, "+", "-" or ".",
// then a colon.
func rfc3986Scheme(uri string) bool {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok || scheme == "" || !isLetter(scheme[0]) {
		return false
	}
	for i := 1; i < len(scheme); i++ {
		if c := scheme[i]; !isLetter(c) && !('0' <= c && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// lineBreak reports whether a value an answer copies holds a CR or LF (a
// lone LF stays in a line, as in sipgo's parser).
func (m *malformed) lineBreak() bool {
	for _, v := range append([]string{m.from, m.to, m.callID, m.cs}, m.vias...) {
		if strings.ContainsAny(v, "\r\n") {
			return true
		}
	}
	return false
}

// unfold joins folded header lines (RFC 3261 section 7.3.1) to the line
// they continue.
func unfold(lines []string) []string {
	out := lines[:1]
	for _, l := range lines[1:] {
		if l != "" && (l[0] == ' ' || l[0] == '\t') && len(out) > 1 {
			out[len(out)-1] += " " + strings.TrimSpace(l)
			continue
		}
		out = append(out, l)
	}
	return out
}

// request is what the admission gate reads of the message: its source
// and the headers it checks.
func (m *malformed) request(source, transport string) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{})
	for _, h := range m.gate {
		req.AppendHeader(h)
	}
	req.SetSource(source)
	req.SetTransport(transport)
	return req
}

// response is the 400 answering the message, back to source: its Vias,
// From, To (with a tag of ours when it had none), Call-ID and CSeq as
// sent (RFC 3261 section 8.2.6.2), those absent left out.
func (m *malformed) response(source, transport string) *sip.Response {
	code := m.code
	if code == 0 {
		code = sip.StatusBadRequest
	}
	res := sip.NewResponse(code, m.reason)
	for i, v := range m.vias {
		if i == 0 {
			v = rported(v, source)
		}
		res.AppendHeader(sip.NewHeader("Via", v))
	}
	to := m.to
	if to != "" && !strings.Contains(strings.ToLower(to), ";tag=") {
		to += ";tag=" + strconv.FormatUint(rand.Uint64(), 36)
	}
	for _, h := range [...]struct{ name, value string }{{"From", m.from}, {"To", to}, {"Call-ID", m.callID}, {"CSeq", m.cs}} {
		if h.value != "" {
			res.AppendHeader(sip.NewHeader(h.name, h.value))
		}
	}
	res.AppendHeader(sip.NewHeader("Content-Length", "0"))
	res.SetTransport(transport)
	res.SetDestination(source)
	return res
}

// rported returns v, the raw value of a request's first Via line, with
// the empty rport of its first via filled from the packet's source, and
// received added (RFC 3581 section 4), as reply.FromRequest does for a
// parsed Via; v itself when it has no empty rport or source is not
// host:port.
func rported(v, source string) string {
	host, port, err := net.SplitHostPort(source)
	if err != nil {
		return v
	}
	first, rest, more := strings.Cut(v, ",")
	params := strings.Split(first, ";")
	received := false
	for i := 1; i < len(params); i++ {
		switch p := strings.TrimSpace(params[i]); {
		case strings.EqualFold(p, "rport"):
			params[i] = "rport=" + port
			out := strings.Join(params, ";") + ";received=" + host
			if more {
				out += "," + rest
			}
			return out
		case len(p) >= 9 && strings.EqualFold(p[:9], "received="):
			received = true
		}
	}
	// RFC 3261 18.2.1: a sent-by host that is a name, or another address
	// than the packet's, gets received.
	if !received && !reply.SameHost(sentByHost(params[0]), host) {
		out := first + ";received=" + host
		if more {
			out += "," + rest
		}
		return out
	}
	return v
}

// sentByHost returns the host of a Via value's sent-by ("SIP/2.0/UDP
// host:port", before any parameter), brackets kept on an IPv6 address.
func sentByHost(protoAndSentBy string) string {
	fields := strings.Fields(protoAndSentBy)
	if len(fields) < 2 {
		return ""
	}
	sentBy := strings.Join(fields[1:], "")
	if h, _, err := net.SplitHostPort(sentBy); err == nil {
		return h
	}
	return sentBy
}

// badRequest answers msg, a REGISTER sipgo's parser refused, 400 with what
// is malformed (diagnose); nothing when it cannot be answered or the gate
// would not admit its source.
func (f *Front) badRequest(dg *datagrams, box *outbox, msg []byte, source string, j job) {
	m, ok := diagnose(msg)
	if !ok {
		f.log.Debug("unparsable REGISTER dropped: no Via or request line to answer", "source", source, "transport", j.transport)
		return
	}
	if !f.admits(m.request(source, j.transport)) {
		return
	}
	f.log.Debug("malformed REGISTER answered", "source", source, "transport", j.transport, "reason", m.reason)
	f.send(dg, box, m.response(source, j.transport), j)
}
