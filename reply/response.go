package reply

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// FromRequest returns the response code/reason to req with the header
// fields RFC 3261 section 8.2.6.2 copies from a request: every Via (the
// first with received and rport filled in when the client asked for rport,
// RFC 3581 section 4), From, To (with a tag of ours when it had none),
// Call-ID and CSeq, and Content-Length 0. It goes back to req's source
// address.
//
// It is sip.NewResponseFromRequest for the responses this server makes
// itself, without what made that a tenth of a REGISTER's CPU (profile at
// 26,000 REGISTER flows/s, issue 18): two lower-casing passes over every
// header to find the Vias, a clone of every copied header, and a UUID read
// from crypto/rand for the tag. From, Call-ID and CSeq are shared with
// req, not cloned: a response is serialized and dropped, and nothing
// changes a request's From, Call-ID or CSeq. (The stateless front relies
// on it: it reuses a REGISTER's memory once the answer is serialized,
// sipparse.Parser; a response kept longer, in a cache or a trace written
// later, must clone what it shares.) The Vias and To, which the
// response changes, are copies. Responses that must also copy
// Record-Route or Timestamp (a 1xx, or a 2xx to anything but a REGISTER:
// RFC 3261 section 12.1.1) and requests whose headers were not parsed
// into sipgo's types go through sip.NewResponseFromRequest.
func FromRequest(req *sip.Request, code int, reason string) *sip.Response {
	if code < 200 || (code < 300 && req.Method != sip.REGISTER) {
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		Received(res.Via(), req.Source()) // RFC 3261 18.2.1 too, which sipgo leaves undone
		return res
	}
	from, to, callID, cseq := req.From(), req.To(), req.CallID(), req.CSeq()
	res := sip.NewResponse(code, reason) // SIP/2.0, whatever req says
	p := &parts{}                        // the headers the response changes, in one allocation
	vias := 0
	for _, h := range req.Headers() {
		v, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		if vias == 0 {
			v = p.firstVia(v)
			Received(v, req.Source())
		} else {
			v = v.Clone()
		}
		res.AppendHeader(v)
		vias++
	}
	if vias == 0 && req.Via() != nil {
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		Received(res.Via(), req.Source())
		return res
	}
	if from != nil {
		res.AppendHeader(from)
	}
	if to != nil {
		p.to = *to
		t := &p.to
		t.Params = p.params(5, 8, to.Params, 1)
		if t.Params == nil {
			t.Params = p.kv[5:5:8] // a tag follows
		}
		if !t.Params.Has("tag") {
			// RFC 3261 section 19.3: at least 32 random bits. The
			// runtime's generator (ChaCha8, seeded by the system) costs
			// no system call, unlike crypto/rand on kernels before 6.11.
			t.Params = append(t.Params, sip.HeaderKV{K: "tag", V: strconv.FormatUint(rand.Uint64(), 36)})
		}
		res.AppendHeader(t)
	}
	if callID != nil {
		res.AppendHeader(callID)
	}
	if cseq != nil {
		res.AppendHeader(cseq)
	}
	res.AppendHeader(&p.length) // 0: as SetBody(nil) makes it
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}

// parts are the headers FromRequest makes for a response: copies of the
// first Via and of To, whose parameters it changes, and Content-Length,
// with room for their parameters (a longer list grows out of its part of
// kv). One allocation, where a clone of each and of their parameter
// lists were six.
type parts struct {
	via    sip.ViaHeader
	to     sip.ToHeader
	length sip.ContentLengthHeader
	kv     [8]sip.HeaderKV
}

// firstVia returns a copy of v, as v.Clone makes it.
func (p *parts) firstVia(v *sip.ViaHeader) *sip.ViaHeader {
	p.via = sip.ViaHeader{ProtocolName: v.ProtocolName, ProtocolVersion: v.ProtocolVersion, Transport: v.Transport,
		Host: v.Host, Port: max(v.Port, 0), Params: p.params(0, 5, v.Params, 2)}
	return &p.via
}

// params copies ps into kv[from:to] when it fits with room for more, else
// into a slice of its own; nil stays nil.
func (p *parts) params(from, to int, ps sip.HeaderParams, more int) sip.HeaderParams {
	if ps == nil {
		return nil
	}
	if len(ps)+more > to-from {
		return append(make(sip.HeaderParams, 0, len(ps)+more), ps...)
	}
	return append(p.kv[from:from:to], ps...)
}

// Received sets the received and rport parameters of v, a request's top
// Via, from the packet's source: both when the client sent an empty rport
// (RFC 3581 section 4), as sip.NewResponseFromRequest does, and received
// alone when its sent-by host is a name or another address (RFC 3261
// 18.2.1, which sipgo v1.7.4 leaves as a TODO). FromRequest applies it to
// a response's copy; the proxy, to a request's own Via before forwarding
// it, so that the responses coming back carry the address too.
func Received(v *sip.ViaHeader, source string) {
	if v == nil {
		return
	}
	host, port, err := net.SplitHostPort(source)
	if err != nil {
		return
	}
	if val, ok := v.Params.Get("rport"); ok && val == "" {
		v.Params.Add("rport", port)
		v.Params.Add("received", host)
		return
	}
	if !v.Params.Has("received") && !SameHost(v.Host, host) {
		v.Params.Add("received", host)
	}
}

// SameHost reports whether a Via's sent-by host is the IP address ip (a
// packet's source): false for a host name, or another address.
func SameHost(sentBy, ip string) bool {
	if sentBy == ip {
		return true
	}
	if len(sentBy) > 1 && sentBy[0] == '[' && sentBy[len(sentBy)-1] == ']' {
		sentBy = sentBy[1 : len(sentBy)-1]
	}
	a, err1 := netip.ParseAddr(sentBy)
	b, err2 := netip.ParseAddr(ip)
	return err1 == nil && err2 == nil && a.Unmap() == b.Unmap()
}
