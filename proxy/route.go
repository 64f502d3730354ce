package proxy

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// branchPrefix marks Via branches this proxy created: the RFC 3261 magic
// cookie, "sw", then 16 hex digits of the loop hash, a dot and randomness.
const branchPrefix = "z9hG4bKsw"

// loopHash hashes the fields RFC 3261 16.6 step 8 names for loop
// detection, taken from the request as received: Request-URI, From tag,
// To tag, Call-ID, CSeq number and Proxy-Require. A request that comes
// back with all of them unchanged has looped; a spiral changes the
// Request-URI.
func loopHash(req *sip.Request) string {
	h := fnv.New64a()
	req.Recipient.StringWrite(h2w{h})
	if f := req.From(); f != nil {
		tag, _ := f.Params.Get("tag")
		h.Write([]byte("\x00" + tag))
	}
	if t := req.To(); t != nil {
		tag, _ := t.Params.Get("tag")
		h.Write([]byte("\x00" + tag))
	}
	if c := req.CallID(); c != nil {
		h.Write([]byte("\x00" + string(*c)))
	}
	if c := req.CSeq(); c != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], c.SeqNo)
		h.Write(b[:])
	}
	for _, v := range headerValues(req, "Proxy-Require") {
		h.Write([]byte("\x00" + v))
	}
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], h.Sum64())
	return hex.EncodeToString(sum[:])
}

type h2w struct {
	w interface{ Write([]byte) (int, error) }
}

func (x h2w) WriteString(s string) (int, error) { return x.w.Write([]byte(s)) }

// looped implements RFC 3261 16.3 step 4: a Via of ours whose branch
// carries the loop hash of this very request means it has been here
// before unchanged.
func (p *Proxy) looped(req *sip.Request) bool {
	var cur string
	for _, h := range req.Headers() {
		via, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		branch, _ := via.Params.Get("branch")
		if !strings.HasPrefix(branch, branchPrefix) || !p.ours[strings.ToLower(via.Host)+":"+strconv.Itoa(via.Port)] {
			continue
		}
		if cur == "" {
			cur = loopHash(req)
		}
		if strings.HasPrefix(branch[len(branchPrefix):], cur) {
			return true
		}
	}
	return false
}

// newBranch returns a Via branch for a request forwarded with loop hash lh.
func newBranch(lh string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], rand.Uint64())
	return branchPrefix + lh + "." + hex.EncodeToString(b[:])
}

// preprocessRoute implements RFC 3261 16.4: it undoes a strict router's
// rewrite, then removes the Route values that name us. It reports whether
// the request was routed to us by a Route header (a Record-Route of ours).
func (p *Proxy) preprocessRoute(req *sip.Request) bool {
	ours := false
	// A strict router put our Record-Route into the Request-URI: the real
	// Request-URI is the last Route value.
	if p.isUs(&req.Recipient) && req.Recipient.UriParams.Has("lr") {
		routes := req.GetHeaders("Route")
		if n := len(routes); n > 0 {
			if last, ok := routes[n-1].(*sip.RouteHeader); ok {
				req.Recipient = *last.Address.Clone()
				removeHeader(req, last)
				ours = true
			}
		}
	}
	for {
		r := firstRoute(req)
		if r == nil || !p.isUs(&r.Address) {
			return ours
		}
		removeHeader(req, r)
		ours = true
	}
}

func firstRoute(req *sip.Request) *sip.RouteHeader {
	for _, h := range req.Headers() {
		if r, ok := h.(*sip.RouteHeader); ok {
			return r
		}
	}
	return nil
}

// removeHeader removes the header h (by identity).
func removeHeader(req *sip.Request, h sip.Header) {
	hs := req.Headers()
	for i, x := range hs {
		if x == h {
			// Rebuild from the remaining headers: sipgo's RemoveHeader
			// removes the first header of a name, not a given one.
			rest := make([]sip.Header, 0, len(hs)-1)
			rest = append(rest, hs[:i]...)
			rest = append(rest, hs[i+1:]...)
			replaceHeaders(req, rest)
			return
		}
	}
}

// replaceHeaders swaps req's headers for hs, keeping sipgo's parsed
// references (Via, Route ...) coherent.
func replaceHeaders(req *sip.Request, hs []sip.Header) {
	for _, name := range uniqueNames(req.Headers()) {
		for req.RemoveHeader(name) {
		}
	}
	for _, h := range hs {
		req.AppendHeader(h)
	}
}

func uniqueNames(hs []sip.Header) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		n := h.Name()
		dup := false
		for _, x := range out {
			if x == n {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, n)
		}
	}
	return out
}

// listenerFor returns our listener for a transport, or false.
func (p *Proxy) listenerFor(tp string) (Listener, bool) {
	l, ok := p.byTp[strings.ToLower(tp)]
	return l, ok
}

// recordRoute returns our Record-Route URI for a transport (RFC 3261
// 16.6 step 4; lr for loose routing, RFC 5658 transport parameter).
func (p *Proxy) recordRoute(tp string) (*sip.RecordRouteHeader, bool) {
	l, ok := p.listenerFor(tp)
	if !ok {
		return nil, false
	}
	u := sip.Uri{Scheme: "sip", Host: l.Host, Port: int(l.Addr.Port()), UriParams: sip.HeaderParams{}}
	if tp != "udp" {
		u.UriParams.Add("transport", tp)
	}
	u.UriParams.Add("lr", "")
	return &sip.RecordRouteHeader{Address: u}, true
}

// addRecordRoute adds our Record-Route for a request arriving over in and
// leaving over out: two entries when the transports differ (RFC 5658
// section 4), the outbound one on top (the callee's side).
func (p *Proxy) addRecordRoute(req *sip.Request, in, out string) {
	in, out = strings.ToLower(in), strings.ToLower(out)
	if rr, ok := p.recordRoute(in); ok {
		req.PrependHeader(rr)
	}
	if out != in {
		if rr, ok := p.recordRoute(out); ok {
			req.PrependHeader(rr)
		}
	}
}

// via returns our Via for a request leaving over tp.
func (p *Proxy) via(tp, branch string) (*sip.ViaHeader, bool) {
	l, ok := p.listenerFor(tp)
	if !ok {
		return nil, false
	}
	v := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(tp),
		Host: l.Host, Port: int(l.Addr.Port()), Params: sip.HeaderParams{},
	}
	v.Params.Add("branch", branch)
	v.Params.Add("rport", "")
	return v, true
}

// setLocalAddr makes a UDP request leave from our listener's socket
// (sipgo issue #303: otherwise an unknown peer gets it from a fresh
// ephemeral socket, and its answers never reach the listener).
func (p *Proxy) setLocalAddr(req *sip.Request, tp string) {
	if tp != "udp" {
		return
	}
	l, ok := p.listenerFor(tp)
	if !ok {
		return
	}
	req.Laddr = sip.Addr{IP: l.Addr.Addr().AsSlice(), Port: int(l.Addr.Port())}
}

// hopFromURI is the next hop a URI names (RFC 3263 without DNS SRV:
// host, port or the default port, transport parameter or UDP).
func hopFromURI(u *sip.Uri) Hop {
	tp := "udp"
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		tp = strings.ToLower(t)
	}
	if u.IsEncrypted() {
		tp = "tls"
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if tp == "tls" {
			port = 5061
		}
	}
	if mu, ok := u.UriParams.Get("maddr"); ok && mu != "" {
		return Hop{Host: mu, Port: port, Transport: tp}
	}
	return Hop{Host: u.Host, Port: port, Transport: tp}
}

// loopHashString hashes s into 16 hex digits.
func loopHashString(s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], h.Sum64())
	return hex.EncodeToString(sum[:])
}

// headerValues returns the values of every header called name, without
// sipgo's GetHeaders, which lower-cases (allocates) every header name.
func headerValues(req *sip.Request, name string) []string {
	var out []string
	for _, h := range req.Headers() {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h.Value())
		}
	}
	return out
}
