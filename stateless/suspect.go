package stateless

import (
	"bytes"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// Malformed requests other than REGISTER. sipgo's transport drops a
// datagram its parser refuses, and closes a stream connection on such a
// message (with the registration that may ride on it); the client never
// learns why. RFC 3261 section 21.4.1 has a server answer 400 with a
// reason phrase naming what is malformed, as the front does for
// REGISTERs (malformed.go). Parsing every request twice (here to know, in
// sipgo to handle) would cost every call, so the front scans each request
// it hands to sipgo for the faults of sipgo's parser that can be seen
// cheaply (BenchmarkSuspect): a request line that is not three parts
// with single spaces or whose version is not SIP, a URI scheme sipgo
// does not read (in the Request-URI or an address), a header line
// without a colon or with a CR inside it, an empty Via, a CSeq,
// Max-Forwards or Content-Length that is not a number, an empty Call-ID,
// a body shorter than its Content-Length, unbalanced brackets in an
// address, a Via value that is not a protocol. Only a request the scan
// suspects is parsed, to be sure, then answered 400 (416 for a
// Request-URI of a well-formed scheme sipgo does not read) instead of
// being handed on. A malformation the scan does not see (a Via or From
// sipgo's parser refuses in a subtler way) is still sipgo's to drop. An
// ACK is never answered (RFC 3261 section 17.2.1), nor is a response.

// answerMalformed answers msg 400 when it is a request, not an ACK, that
// sipgo's parser would refuse (suspect, then parsed to be sure), 501 when
// its method has a lower-case letter (lowerMethod), drops such a request
// when it cannot be answered (no request line or Via), and a request
// without a Via, or a datagram without the end of a header section; it
// reports whether it took msg. A stream keeps its connection: msg was
// framed by its Content-Length, the next message starts after it.
func (f *Front) answerMalformed(msg []byte, j job) bool {
	code, reason, ok := refusal(msg)
	if ok && f.answerHead(msg, j, code, reason) {
		return true
	}
	if ok || (j.conn == nil && headless(msg)) {
		// A request sipgo refuses (its parser, or its transaction layer
		// for want of a Via; a datagram without the blank line that ends
		// a header section, RFC 3261 section 7) with nobody to answer:
		// sipgo dropped it too, logging an ERROR for each, so that a
		// scanner's garbage on port 5060 woke whoever alerts on errors.
		// Counted instead (guard_rejected_total) and logged at debug. A
		// stream's message was framed by its Content-Length: the next
		// one starts after it.
		f.unanswerable(j.source(), j.transport, len(msg))
		return true
	}
	return false
}

// headless reports whether msg, a datagram, has no end of a header
// section and is not a keep-alive.
func headless(msg []byte) bool {
	return !bytes.Contains(msg, []byte("\r\n\r\n")) && !keepAlive(msg)
}

// keepAlive reports whether msg is CRLFs only (RFC 5626 section 3.5.1:
// sipgo's to answer).
func keepAlive(msg []byte) bool {
	for _, c := range msg {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// Refuse is answerMalformed for a request read whole by a transport the
// front does not wrap (sipgo's WebSocket): it returns the answer to send
// on msg's connection (nil when the admission gate would not answer
// source, or nobody can be answered: msg is dropped) and whether msg was
// taken; false: sipgo gets msg.
func (f *Front) Refuse(msg []byte, source, transport string) (*sip.Response, bool) {
	upperVersion(msg)
	if headless(msg) && !bytes.HasPrefix(msg, []byte("SIP/")) {
		// A WebSocket message is a whole SIP message (RFC 7118 section
		// 5): without the end of a header section it is garbage, which
		// sipgo logged at ERROR ("failed to parse"), as a datagram's.
		f.unanswerable(source, transport, len(msg))
		return nil, true
	}
	code, reason, ok := refusal(msg)
	if !ok {
		return nil, false
	}
	if res, taken := f.headAnswer(msg, source, transport, code, reason); taken {
		return res, true
	}
	f.unanswerable(source, transport, len(msg))
	return nil, true
}

// unanswerable counts a request dropped because it cannot be answered
// (answerMalformed), and logs it at debug.
func (f *Front) unanswerable(source, transport string, size int) {
	if f.cfg.OnShed != nil {
		f.cfg.OnShed(ShedUnparsable) // not shed: no overload to warn of
	}
	f.log.Debug("unanswerable request dropped", "source", source, "transport", transport, "bytes", size)
}

// refusal reports whether the front answers msg itself instead of handing
// it to sipgo, and with what: 501 for a method with a lower-case letter,
// code 0 (diagnose's 400 or 416) for a request sipgo's parser refuses. A
// response or an ACK is never answered.
func refusal(msg []byte) (code int, reason string, refuse bool) {
	if bytes.HasPrefix(msg, []byte("SIP/")) || bytes.HasPrefix(msg, []byte("ACK ")) || keepAlive(msg) {
		return 0, "", false
	}
	if lowerMethod(msg) {
		return 501, "Not Implemented", true
	}
	sus, via, cseq := scan(msg)
	if !sus {
		// Without a Via, nobody to answer: sipgo's transaction layer
		// refuses it (with an ERROR in the log), answerMalformed drops it.
		// Without a CSeq it has no transaction key either (sipgo answered
		// 400 Bad Request and logged an ERROR): every request has one
		// (RFC 3261 8.1.1), and the answer names what is missing, as the
		// registrar's does.
		if via && !cseq {
			return 400, "Missing CSeq Header", true
		}
		return 0, "", !via
	}
	if _, err := sip.ParseMessage(msg); err == nil {
		return 0, "", false // well-formed after all: sipgo's
	}
	return 0, "", true
}

// answerHead answers msg, made from its raw headers (headAnswer): code
// and reason, or with code 0 the 400 (or 416) and reason diagnose found.
// It reports whether it took msg: answered, or dropped because the
// admission gate would not answer its source; false for a response or an
// ACK, and for a request without a Via or the end of its header section
// (nobody to answer). msg may be the header section alone (a stream's
// message whose body has not come).
func (f *Front) answerHead(msg []byte, j job, code int, reason string) bool {
	res, taken := f.headAnswer(msg, j.source(), j.transport, code, reason)
	if res != nil {
		f.sendNow(res, j)
	}
	return taken
}

// headAnswer returns answerHead's answer to msg from source, nil when the
// gate would not answer it, and whether msg is taken.
func (f *Front) headAnswer(msg []byte, source, transport string, code int, reason string) (*sip.Response, bool) {
	if bytes.HasPrefix(msg, []byte("SIP/")) || bytes.HasPrefix(msg, []byte("ACK ")) {
		return nil, false
	}
	m, ok := diagnose(msg)
	if !ok {
		return nil, false
	}
	if !f.admits(m.request(source, transport)) {
		return nil, true
	}
	if code != 0 {
		m.code, m.reason = code, reason
	}
	res := m.response(source, transport)
	f.log.Debug("request answered from its header section", "source", source, "transport", transport,
		"status", res.StatusCode, "reason", res.Reason, "bytes", len(msg))
	return res, true
}

// lowerMethod reports whether the method of msg, a request, has a
// lower-case letter. Methods are case-sensitive (RFC 3261 section 7.1):
// "options" is not OPTIONS but an extension method this server does not
// implement (501, RFC 3261 section 8.2.1, as for any unknown method).
// sipgo's parser upper-cases the method: left to it, "options" was served
// as OPTIONS, or refused as 400 CSeq Method Does Not Match when its CSeq
// said "options" too, and a proxied "bye" would go on as BYE.
func lowerMethod(msg []byte) bool {
	for _, c := range msg {
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return false // the method's end, or a request line without a space (scan)
		case 'a' <= c && c <= 'z':
			return true
		}
	}
	return false
}

// suspect reports whether sipgo's parser may refuse msg, a request, for a
// fault a scan of its header section sees without allocating. false for a
// message without the end of its header section (on a stream the framer
// only hands on whole messages; a datagram without one is not answerable,
// diagnose).
func suspect(msg []byte) bool {
	s, _, _ := scan(msg)
	return s
}

// scan is suspect, and reports as well whether msg has a Via line and a
// CSeq line (when the scan got that far: both are true whenever msg is
// suspect or has no end of its header section).
func scan(msg []byte) (suspect, via, cseq bool) {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return false, true, true
	}
	head := msg[:end+2] // every line with its CRLF
	nl := bytes.Index(head, []byte("\r\n"))
	if !requestLineOK(head[:nl]) {
		return true, true, true
	}
	length := -1
	for rest := head[nl+2:]; len(rest) > 0; {
		nl := bytes.Index(rest, []byte("\r\n"))
		line := rest[:nl]
		rest = rest[nl+2:]
		if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			return true, true, true // folded (RFC 3261 7.3.1): rare, let the parser tell
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 || bytes.IndexByte(line, '\r') >= 0 {
			// No colon, or a CR that does not end the line: sipgo's
			// parser refuses both ("line has no CRLF").
			return true, true, true
		}
		name, value := bytes.TrimSpace(line[:colon]), bytes.TrimSpace(line[colon+1:])
		switch canonicalName(lowerName(name)) {
		case "CSeq":
			cseq = true
			if !cseqOK(value) {
				return true, true, true
			}
		case "Max-Forwards":
			if _, err := strconv.ParseUint(string(value), 10, 32); err != nil {
				return true, true, true
			}
		case "Content-Length":
			n, err := strconv.ParseUint(string(value), 10, 32)
			if err != nil {
				return true, true, true
			}
			length = int(n)
		case "Call-ID", "Content-Type":
			if len(value) == 0 {
				return true, true, true
			}
		case "From", "To":
			if !bracketsOK(value) || !schemeOK(addrURI(value)) {
				return true, true, true
			}
		case "Contact", "Route", "Record-Route", "Refer-To", "Referred-By":
			if !bracketsOK(value) || (string(value) != "*" && !schemeOK(addrURI(value))) {
				return true, true, true
			}
		case "Via":
			via = true
			if !viasOK(value) {
				return true, true, true
			}
		}
	}
	return length > len(msg)-end-4, via, cseq // RFC 3261 18.3: shorter than it says
}

// requestLineOK reports whether a request line is three parts, each
// separated by one space (RFC 3261 section 7.1: no space in the
// Request-URI, none after the version: RFC 4475's lwsruri and trws), with
// a Request-URI whose scheme sipgo reads and a SIP-Version.
func requestLineOK(line []byte) bool {
	sp := bytes.IndexByte(line, ' ')
	if sp < 1 {
		return false
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp < 1 || sp == len(rest)-1 || bytes.IndexByte(rest[sp+1:], ' ') >= 0 {
		return false
	}
	return schemeOK(rest[:sp]) && sipVersion(rest[sp+1:])
}

// sipVersion reports whether v is a SIP-Version: "SIP/", digits, a dot,
// digits (RFC 3261 section 25.1; "SIP" in any case, section 7.1). sipgo's
// parser refused "HTTP/1.1" with an ERROR in the log, and "Sip/2.0"
// (upperVersion writes it "SIP/2.0" first) too.
func sipVersion(v []byte) bool {
	if len(v) < 7 || !bytes.EqualFold(v[:4], []byte("SIP/")) {
		return false
	}
	major, minor, ok := bytes.Cut(v[4:], []byte("."))
	return ok && digits(major) && digits(minor)
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// upperVersion writes a request line's SIP-Version "SIP/2.0" in upper
// case, in place, when it came in another case: RFC 3261 section 7.1 has
// the version case-insensitive, but implementations MUST send upper case,
// and sipgo copied the request's into its answers ("sip/2.0 200 OK") or,
// for "Sip/2.0", refused the request (an ERROR in the log, no answer).
func upperVersion(msg []byte) {
	nl := bytes.IndexByte(msg, '\r')
	if nl < 8 || msg[nl-8] != ' ' {
		return
	}
	v := msg[nl-7 : nl]
	if string(v) != "SIP/2.0" && bytes.EqualFold(v, []byte("SIP/2.0")) {
		copy(v, "SIP/2.0")
	}
}

// schemeOK is sipgo's rule for a URI's scheme: letters only, then a
// colon (it refuses "soap.beep:", which RFC 3986 allows, and "<sip:" or
// " sip:": RFC 4475's ltgtruri and badaspec).
func schemeOK(uri []byte) bool {
	colon := bytes.IndexByte(uri, ':')
	if colon < 1 {
		return false
	}
	for _, c := range uri[:colon] {
		if !isLetter(c) {
			return false
		}
	}
	return true
}

// addrURI returns the URI of an address header's value, its first one for
// a list: what follows the first angle bracket outside a quoted display
// name, or the value itself when it has none.
func addrURI(v []byte) []byte {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '<':
			return v[i+1:]
		}
	}
	return v
}

// viasOK reports whether each comma-separated value of a Via line starts
// with a protocol name (RFC 4475's badinv01: sipgo's parser refuses
// "SIP/2.0/UDP 192.0.2.15;;,;,,").
func viasOK(v []byte) bool {
	if len(v) == 0 {
		return false // an empty Via: sipgo's parser refuses it too
	}
	for len(v) > 0 {
		part, rest, _ := bytes.Cut(v, []byte(","))
		part = bytes.TrimLeft(part, " \t")
		if len(part) < 3 || !bytes.EqualFold(part[:3], []byte("SIP")) {
			return false
		}
		v = rest
	}
	return true
}

// cseqOK is sipgo's CSeq rule: a number up to 2^31-1, whitespace, a
// method.
func cseqOK(v []byte) bool {
	ws := bytes.IndexAny(v, " \t")
	if ws < 1 || len(v)-ws < 2 {
		return false
	}
	n, err := strconv.ParseUint(string(v[:ws]), 10, 32)
	return err == nil && n <= 1<<31-1
}

// bracketsOK reports whether an address header's angle and square
// brackets (an IPv6 host's) pair up outside quoted strings, one level
// deep each.
func bracketsOK(v []byte) bool {
	angle, square, quoted := false, false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"' && !angle:
			quoted = !quoted
		case quoted:
		case c == '<' || c == '[':
			open := &angle
			if c == '[' {
				open = &square
			}
			if *open {
				return false
			}
			*open = true
		case c == '>' || c == ']':
			open := &angle
			if c == ']' {
				open = &square
			}
			if !*open {
				return false
			}
			*open = false
		}
	}
	return !angle && !square && !quoted
}

// lowerName returns a header name in lower case, without allocating for
// the names the scan looks for (at most 14 bytes); "" for longer ones.
func lowerName(name []byte) string {
	if len(name) > 14 {
		return ""
	}
	var b [14]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return string(b[:len(name)]) // only compared (canonicalName): BenchmarkSuspect shows no allocation
}
