// Package sipparse parses the common shape of a SIP request into sipgo's
// types with about a quarter of the allocations of sipgo's parser.
//
// Why: on the stateless REGISTER path sipgo's parser was 14% of the
// server's CPU and half of the 8.7 KB allocated per REGISTER flow (issue
// 18): a string per header line, a struct per header, a parameter slice
// per header and per URI, the header list grown twice. Here the header
// section becomes one string that every value is a substring of, and the
// request with its usual typed headers and their parameters is one
// allocation. Values are found by sipgo's own exported parsers
// (sip.ParseUri, sip.ParseAddressValue, sip.UnmarshalHeaderParams) or by
// code that follows sipgo's step by step (the request line, Via, CSeq), so
// that a request parsed here is the request sipgo's parser makes of the
// same bytes (SipgoParser's, which corrects a few of sipgo's header
// parsers); FuzzRequest checks that.
//
// Anything else (a response, folded header lines, a Via, Contact or Route
// line with several comma-separated values, more than one Via or Route, a
// body, a header sipgo parses into a type not handled here: Record-Route,
// Content-Type, Refer-To, Referred-By; and every error) is not parsed
// here: Request reports false, and the caller hands the bytes to sipgo's
// parser, which gives the answer it always gave.
//
// Every string of the request shares the memory of the header section:
// whoever keeps one for long (a binding's Call-ID, a map key) keeps a
// copy (strings.Clone), not a substring that would pin the whole message.
package sipparse

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// maxMessage is sipgo's default bound (sip.ParseMaxMessageLength).
const maxMessage = 65535

// request is a request and its usual headers in one allocation.
type request struct {
	req     sip.Request
	via     sip.ViaHeader
	from    sip.FromHeader
	to      sip.ToHeader
	callID  sip.CallIDHeader
	cseq    sip.CSeqHeader
	maxFwd  sip.MaxForwardsHeader
	length  sip.ContentLengthHeader
	contact sip.ContactHeader // the first; more are allocated apart
	route   sip.RouteHeader   // a phone's outbound proxy (baresip's outbound=)
	// params backs the parameter lists of Via, From and the first contact
	// (paramSlot; a longer list grows out of its slot). The request stays
	// within a 1,536-byte size class.
	params [10]sip.HeaderKV
}

// Slots of request.params.
const (
	slotNone    = iota // none: nil
	slotVia            // branch, rport, received...
	slotFrom           // tag
	slotContact        // expires, +sip.instance, reg-id, +sip.ice, q...
)

// Request parses data, one whole request (a datagram, or a message framed
// on a stream). false: data is not of the shape handled here (see the
// package comment); parse it with sipgo's parser.
func Request(data []byte) (*sip.Request, bool) {
	return (&request{}).parse(data)
}

// Parser is Request with memory reused: the request it returned last,
// once its caller has said nobody refers to it any more (Recycle), is
// cleared and becomes the next one. At 10,000 REGISTER flows a second
// the request's 1,536 bytes were 41% of what the server allocated (issue
// 18), which sets how often the GC runs and how much memory its headroom
// takes. Only the request's own allocation is reused: its strings (parts
// of the header section) and URIs' parameters are not, so whoever keeps
// one of those is safe; the typed headers, their parameter lists and the
// header list's entries are in the reused memory. The zero Parser is ready; it is
// not safe for concurrent use (one per worker).
type Parser struct {
	spare *request // cleared, ready for the next request
	last  *request // what Request returned last
}

// Request is the package's Request.
func (p *Parser) Request(data []byte) (*sip.Request, bool) {
	r := p.spare
	p.spare, p.last = nil, nil
	if r == nil {
		r = &request{}
	}
	req, ok := r.parse(data)
	if !ok {
		*r = request{}
		p.spare = r
		return nil, false
	}
	p.last = r
	return req, true
}

// Recycle says that the request Request returned last is referred to by
// nobody any more: not the caller, not its response, not a deferred
// finish. Its memory is cleared at once, so that a reference kept by
// mistake finds an empty request, never another client's, and is reused
// by the next Request. Without a request not yet recycled it does
// nothing.
func (p *Parser) Recycle() {
	if p.last == nil {
		return
	}
	*p.last = request{}
	p.spare, p.last = p.last, nil
}

// parse parses data into r, which must be zero.
func (r *request) parse(data []byte) (*sip.Request, bool) {
	if len(data) > maxMessage {
		return nil, false
	}
	end := headerEnd(data)
	if end < 0 {
		return nil, false
	}
	s := string(data[:end]) // every string of the request is a part of s
	rest := data[end+2:]    // after the empty line: the body
	line, s, ok := nextLine(s)
	if !ok || !r.startLine(line) {
		return nil, false
	}
	var order [24]sip.Header
	hs := order[:0]
	contacts := 0
	var seen uint16 // the kinds met, of those that have one slot in r
	for s != "" {
		line, s, ok = nextLine(s)
		if !ok || (s != "" && (s[0] == ' ' || s[0] == '\t')) {
			return nil, false // folded lines (RFC 3261 7.3.1): sipgo's
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, false
		}
		name := strings.TrimSpace(line[:colon])
		value := strings.TrimSpace(line[colon+1:])
		var h sip.Header
		k := headerKind(name)
		if k != kindGeneric && k != kindContact {
			// One slot each in r: a second header of the kind would
			// overwrite the first. Two Vias are also ordered apart:
			// sipgo keeps the first as the request's Via, where
			// PrependHeader (below) keeps the last. Rare shapes for a
			// REGISTER (or malformed ones): sipgo's.
			if seen&(1<<k) != 0 {
				return nil, false
			}
			seen |= 1 << k
		}
		switch k {
		case kindGeneric:
			h = sip.NewHeader(name, value)
		case kindVia:
			if !r.parseVia(value) {
				return nil, false
			}
			h = &r.via
		case kindFrom:
			if !r.address(value, &r.from.DisplayName, &r.from.Address, &r.from.Params, slotFrom) || r.from.Address.Wildcard {
				return nil, false
			}
			h = &r.from
		case kindTo:
			if !r.address(value, &r.to.DisplayName, &r.to.Address, &r.to.Params, slotNone) || r.to.Address.Wildcard {
				return nil, false
			}
			h = &r.to
		case kindContact:
			c, slot := &r.contact, slotContact
			if contacts > 0 {
				c, slot = new(sip.ContactHeader), slotNone
			}
			if hasTopComma(value) || !r.address(value, &c.DisplayName, &c.Address, &c.Params, slot) {
				return nil, false
			}
			contacts++
			h = c
		case kindRoute:
			if !parseRoute(value, &r.route.Address) {
				return nil, false
			}
			h = &r.route
		case kindCallID:
			if value == "" {
				return nil, false
			}
			r.callID = sip.CallIDHeader(value)
			h = &r.callID
		case kindCSeq:
			if !parseCSeq(value, &r.cseq) {
				return nil, false
			}
			h = &r.cseq
		case kindMaxForwards:
			v, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return nil, false
			}
			r.maxFwd = sip.MaxForwardsHeader(v)
			h = &r.maxFwd
		case kindContentLength:
			v, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return nil, false
			}
			r.length = sip.ContentLengthHeader(v)
			h = &r.length
		default: // typed by sipgo, not here
			return nil, false
		}
		hs = append(hs, h)
	}
	// A body is sipgo's: it copies it and sets Content-Length from it.
	// Without Content-Length a datagram's body is what follows the
	// headers; with one, what follows it is ignored (RFC 3261 18.3).
	if hasLength := seen&(1<<kindContentLength) != 0; (hasLength && r.length != 0) || (!hasLength && len(rest) > 0) {
		return nil, false
	}
	// One allocation for the header list, exactly as long. PrependHeader
	// sets the typed references as AppendHeader does, but for Via (the
	// last, not the first): there is one here.
	r.req.PrependHeader(hs...)
	return &r.req, true
}

// headerEnd returns the index of the CRLF CRLF ending data's header
// section, -1 when there is none.
func headerEnd(data []byte) int {
	i := bytes.Index(data, []byte{'\r', '\n', '\r', '\n'})
	if i < 0 {
		return -1
	}
	return i + 2
}

// nextLine splits off s's first line, which must end with CRLF (sipgo
// refuses a CR without LF; a lone LF stays in the line, as in sipgo).
func nextLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\r')
	if i < 0 || i+1 >= len(s) || s[i+1] != '\n' {
		return "", "", false
	}
	return s[:i], s[i+2:], true
}

// startLine parses a request line as sipgo's parseLine does: three parts
// split at the first two spaces, the version a "SIP..." token without
// spaces, the method upper-cased, the URI by sip.ParseUri, never "*".
func (r *request) startLine(line string) bool {
	i := strings.IndexByte(line, ' ')
	if i < 0 {
		return false
	}
	method, line := line[:i], line[i+1:]
	i = strings.IndexByte(line, ' ')
	if i < 0 {
		return false
	}
	uri, version := line[:i], line[i+1:]
	if len(version) < 3 || strings.IndexByte(version, ' ') >= 0 || !sip.UriIsSIP(version[:3]) {
		return false // a response, or not SIP
	}
	if sip.ParseUri(uri, &r.req.Recipient) != nil || r.req.Recipient.Wildcard {
		return false
	}
	r.req.Method = sip.RequestMethod(strings.ToUpper(method))
	r.req.SipVersion = version
	return true
}

// paramSlot returns the empty parameter list backed by slot of r.params.
func (r *request) paramSlot(slot int) sip.HeaderParams {
	switch slot {
	case slotVia:
		return r.params[0:0:4]
	case slotFrom:
		return r.params[4:4:6]
	case slotContact:
		return r.params[6:6:10]
	}
	return nil
}

// address parses a From, To or Contact value with sipgo's
// sip.ParseAddressValue, its parameters into slot (paramSlot).
func (r *request) address(value string, display *string, uri *sip.Uri, params *sip.HeaderParams, slot int) bool {
	*params = r.paramSlot(slot)
	d, err := sip.ParseAddressValue(value, uri, params)
	if err != nil || blankParams(*params) || blankEnds(uri.Host) {
		return false // blanks around ";" or "=": SipgoParser trims them
	}
	*display = d
	if len(*params) == 0 {
		*params = nil // as sipgo leaves it
	}
	return true
}

// hasTopComma reports whether a Contact value holds a comma outside
// quotes and angle brackets: several contacts, which sipgo splits.
func hasTopComma(v string) bool {
	inBrackets, inQuotes := false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '<' && !inQuotes:
			inBrackets = true
		case c == '>' && !inQuotes:
			inBrackets = false
		case c == '"':
			inQuotes = !inQuotes
		case c == ',' && !inQuotes && !inBrackets:
			return true
		}
	}
	return false
}

// parseRoute follows sipgo's parseRouteAddress for one Route value (a
// Route with two, which sipgo splits, is left to it): the address ends at
// the last character outside angle brackets and quotes, counted in runes
// as sipgo counts them, and its header parameters are dropped. Like
// sipgo it leaves the address empty, without an error, when it never
// finds that end (an unclosed bracket, a last character of several
// bytes).
func parseRoute(v string, addr *sip.Uri) bool {
	inBrackets, inQuotes := false, false
	end := len(v) - 1
	for i, c := range v {
		if c == '<' && !inQuotes {
			inBrackets = true
			continue
		}
		if c == '>' && !inQuotes {
			inBrackets = false
		} else if c == '"' {
			inQuotes = !inQuotes
		}
		if inQuotes || inBrackets {
			continue
		}
		switch {
		case c == ',':
			return false // a list: sipgo's
		case i == end:
			_, err := sip.ParseAddressValue(v, addr, nil)
			return err == nil
		}
	}
	return true
}

// parseCSeq follows sipgo's parseCSeqHeader, as SipgoParser corrects it.
func parseCSeq(v string, h *sip.CSeqHeader) bool {
	i := strings.IndexAny(v, " \t")
	if i < 1 || len(v)-i < 2 {
		return false
	}
	n, err := strconv.ParseUint(v[:i], 10, 32)
	if err != nil || n > 2147483647 { // RFC 3261 8.1.1.5: below 2**31
		return false
	}
	// The blanks after the first are LWS too (SipgoParser).
	h.SeqNo, h.MethodName = uint32(n), sip.RequestMethod(strings.TrimLeft(v[i+1:], " \t"))
	return true
}

// parseVia follows sipgo's parseViaHeader for a value without a comma
// (one Via value): protocol name, version and transport split at '/' and
// the first blank, then host, port and parameters.
func (r *request) parseVia(v string) bool {
	if strings.IndexByte(v, ',') >= 0 {
		return false
	}
	h := &r.via
	i := strings.IndexByte(v, '/')
	if i < 0 {
		return false
	}
	h.ProtocolName, v = strings.TrimSpace(v[:i]), v[i+1:]
	if i = strings.IndexByte(v, '/'); i < 0 {
		return false
	}
	h.ProtocolVersion, v = strings.TrimSpace(v[:i]), v[i+1:]
	if i = strings.IndexAny(v, " \t"); i < 0 {
		return false
	}
	h.Transport, v = strings.TrimSpace(v[:i]), v[i+1:]
	if h.Transport == "" || strings.HasPrefix(v, "[") {
		return false // "/ UDP", an IPv6 host: sipgo's own path (SipgoParser)
	}
	end := strings.IndexByte(v, ';')
	if end < 0 {
		end = len(v)
	}
	if colon := strings.LastIndexByte(v[:end], ':'); colon > 0 {
		port, err := strconv.Atoi(v[colon+1 : end])
		if err != nil {
			return false // sipgo keeps what Atoi gave and no parameters
		}
		h.Port, h.Host = port, strings.TrimSpace(v[:colon])
	} else {
		h.Host = strings.TrimSpace(v[:end])
	}
	if end == len(v) {
		return true
	}
	h.Params = r.paramSlot(slotVia)
	if _, err := sip.UnmarshalHeaderParams(v[end+1:], ';', '\r', &h.Params); err != nil || blankParams(h.Params) {
		return false // blanks around ";" or "=": SipgoParser trims them
	}
	if len(h.Params) == 0 {
		h.Params = nil
	}
	return true
}

type kind uint8

const (
	kindGeneric kind = iota
	kindVia
	kindFrom
	kindTo
	kindContact
	kindCallID
	kindCSeq
	kindMaxForwards
	kindContentLength
	kindRoute
	kindOtherTyped // parsed into a type by sipgo, not here
)

// headerKind classifies a header name as sipgo's parser map does: by its
// ASCII lower case, compact forms included (RFC 3261 7.3.3).
func headerKind(name string) kind {
	if len(name) == 1 {
		switch name[0] | 0x20 {
		case 'v':
			return kindVia
		case 'f':
			return kindFrom
		case 't':
			return kindTo
		case 'm':
			return kindContact
		case 'i':
			return kindCallID
		case 'l':
			return kindContentLength
		case 'c':
			return kindOtherTyped // Content-Type
		}
		return kindGeneric
	}
	switch {
	case foldEq(name, "via"):
		return kindVia
	case foldEq(name, "from"):
		return kindFrom
	case foldEq(name, "to"):
		return kindTo
	case foldEq(name, "contact"):
		return kindContact
	case foldEq(name, "call-id"):
		return kindCallID
	case foldEq(name, "cseq"):
		return kindCSeq
	case foldEq(name, "max-forwards"):
		return kindMaxForwards
	case foldEq(name, "content-length"):
		return kindContentLength
	case foldEq(name, "route"):
		return kindRoute
	case foldEq(name, "content-type"), foldEq(name, "record-route"),
		foldEq(name, "refer-to"), foldEq(name, "referred-by"):
		return kindOtherTyped
	}
	return kindGeneric
}

// foldEq reports whether s is lower, ignoring ASCII case only (sipgo
// lower-cases ASCII letters alone: strings.EqualFold would also match
// the Kelvin sign for a "k"). digest has the same helper; that package
// imports only the standard library (its deps_test), so it is not shared.
func foldEq(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
