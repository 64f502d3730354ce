package proxy

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/sipcheck"
)

// The first INVITE of a call carries no credentials: ServeSIP answers it
// with a 407 challenge and nothing else. Through sipgo that answer costs
// a server transaction kept, over UDP, until Timer H and Timer I have run
// (about 20 KB per call for 37 s). Challengeable and ServeChallenge let
// the stateless front (package stateless) answer such an INVITE without
// one, as Kamailio does with sl_send_reply: a stateless UAS (RFC 3261
// section 8.2.7) answers a retransmission with another challenge, sends
// no provisional response and ignores the ACK.

// ByAddress reports whether requests from source (ip:port) are
// authenticated by their address alone, as ServeSIP decides: a trusted
// peer (proxy.trusted_peers) or an ip connection of the directory. They
// are never challenged.
func (p *Proxy) ByAddress(source string) bool {
	if p.trusted(source) {
		return true
	}
	_, ok := p.peer(source)
	return ok
}

// Challengeable reports whether ServeSIP would answer req with its 407
// challenge and do nothing else: an out-of-dialog INVITE (no To tag)
// without Proxy-Authorization or Authorization, from a source not
// authenticated by its address, that passes every check ServeSIP makes
// before authentication (RFC 3261 16.3: the mandatory headers, the CSeq
// method, Proxy-Require, Max-Forwards, loops, a Route only to us, no line
// break to echo) and is not an anonymous click-to-call. Everything else is
// ServeSIP's, which gives it its specific answer.
func (p *Proxy) Challengeable(req *sip.Request) bool {
	if req.Method != sip.INVITE || p.validationFault(req) != nil {
		return false // ServeSIP's 505, 400, 416 or 420
	}
	switch {
	case req.To().Params.Has("tag"):
		return false
	case hasHeader(req, "Proxy-Authorization") || hasHeader(req, "Authorization"):
		return false
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return false
	}
	// preprocessRoute would remove Route values naming us (a phone's
	// outbound proxy setting); any other Route, or a strict router's
	// Request-URI, is ServeSIP's to judge.
	if p.isUs(&req.Recipient) && req.Recipient.UriParams.Has("lr") {
		return false
	}
	for _, h := range req.Headers() {
		if r, ok := h.(*sip.RouteHeader); ok && !p.isUs(&r.Address) {
			return false
		}
	}
	if p.ByAddress(req.Source()) || p.anonymousCaller(req) || p.looped(req) {
		return false
	}
	return !sipcheck.HasLineBreak(req)
}

// ServeChallenge answers a request Challengeable accepted with the 407
// ServeSIP would send (the same challenge builder, headers and Via
// handling) and reports it the same way: the authentication attempt to
// auth.Authenticator's OnAttempt functions (the guard's accounting, the
// metrics), the event to OnEvent's and the log line. It neither checks
// trust again nor forwards: a source that became trusted since
// Challengeable is challenged as if its INVITE had come a moment earlier.
// tx needs only Respond.
func (p *Proxy) ServeChallenge(req *sip.Request, tx sip.ServerTransaction) {
	p.handle(req, tx, p.challenge)
}

func (p *Proxy) challenge(req *sip.Request, tx sip.ServerTransaction, ev *Event) {
	forceRport(req)
	ev.Target = req.Recipient.User
	if res, ok := p.verify(req, tx, ev); ok {
		// Not reached: without credentials the outcome is a challenge.
		p.log.Error("stateless challenge: credentials accepted", "source", req.Source(), "user", res.Username)
		ev.Status = p.reply(req, tx, 500, "Server Internal Error")
	}
}

// hasHeader reports whether req has a header called name (any case),
// without sipgo's GetHeader allocation.
func hasHeader(req *sip.Request, name string) bool {
	for _, h := range req.Headers() {
		if strings.EqualFold(h.Name(), name) {
			return true
		}
	}
	return false
}

// Refusal returns the answer ServeSIP gives req, an INVITE, before it
// authenticates anyone or forwards anything (RFC 3261 16.3: 505, 400,
// 416, 420 Bad Extension, 483 Too Many Hops, 482 Loop Detected; 481 for
// a To tag of no dialog; 403 Preloaded Route Denied); nil when ServeSIP
// would go further. The stateless front
// sends it without a transaction, as it sends the 407: through sipgo's
// INVITE transaction each was sent 11 times over 32 s to a source that
// never ACKed, a reflection of 3 KB for a spoofed 300-byte INVITE (a
// probe). It does not change req (newResponse copies the Via it fills).
func (p *Proxy) Refusal(req *sip.Request) *sip.Response {
	if req.Method != sip.INVITE || sipcheck.HasLineBreak(req) {
		return nil
	}
	if res := p.validationFault(req); res != nil {
		return res
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return p.newResponse(req, 483, "Too Many Hops")
	}
	if p.looped(req) {
		return p.newResponse(req, 482, "Loop Detected")
	}
	if req.To().Params.Has("tag") {
		if d, _ := p.dialogs.match(req); d == nil {
			return p.newResponse(req, 481, "Call/Transaction Does Not Exist")
		}
		return nil
	}
	if p.isUs(&req.Recipient) && req.Recipient.UriParams.Has("lr") {
		return nil // a strict router's: preprocessRoute rewrites it
	}
	for _, h := range req.Headers() {
		if r, ok := h.(*sip.RouteHeader); ok && !p.isUs(&r.Address) {
			return p.newResponse(req, 403, "Preloaded Route Denied")
		}
	}
	return nil
}

// ServeRefusal answers a request Refusal refuses with that answer, and
// reports it as ServeSIP would (the event, the log line). tx needs only
// Respond. A request Refusal no longer refuses (a dialog made since)
// gets 500: the front's tx cannot forward it.
func (p *Proxy) ServeRefusal(req *sip.Request, tx sip.ServerTransaction) {
	p.handle(req, tx, func(req *sip.Request, tx sip.ServerTransaction, ev *Event) {
		ev.Target = req.Recipient.User
		ev.InDialog = req.To() != nil && req.To().Params.Has("tag")
		ev.Stateless = true
		res := p.Refusal(req)
		if res == nil {
			res = p.newResponse(req, 500, "Server Internal Error")
		}
		ev.Status = p.respond(tx, res)
	})
}
