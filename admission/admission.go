// Package admission is the one shape every SIP request passes through
// before a handler sees it, whatever path it took: sipgo's transactions
// (UDP, TCP, TLS, WebSocket) or the stateless REGISTER front. A rule is a
// Middleware, a function from the next Handler to a Handler (CoreDNS's
// plugin chain): added once to the chain, it applies on every transport
// and to every method.
//
// The rules of this package: Gate (the User-Agent deny list, bans and
// slowdowns of package guard, fed by authentication outcomes) and Limit
// (a bound on requests being handled at once).
package admission

import (
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
	"github.com/sipwarden/sipwarden/sipcheck"
)

// Handler handles one request and answers it through tx: sipgo's server
// transaction, or the stateless front's answer to the request's source
// (stateless.Front). It is sipgo.RequestHandler's shape. A handler must
// not keep tx after it returns.
type Handler = func(req *sip.Request, tx sip.ServerTransaction)

// Middleware wraps a Handler with one rule.
type Middleware func(next Handler) Handler

// Chain returns h behind mws, the first outermost: Chain(h, a, b) runs a,
// then b, then h.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Counter counts refusals: *metrics.Metrics.
type Counter interface {
	// Rejected counts a request or connection refused before
	// authentication, by reason (metrics.Reject*).
	Rejected(reason string)
}

// refuse answers req with code/reason (and Retry-After when given),
// unless req is an ACK (which has no answer) or holds a line break that
// the answer would echo (sipcheck.HasLineBreak): those are dropped.
func refuse(b reply.Builder, req *sip.Request, tx sip.ServerTransaction, code int, reason, retryAfter string) error {
	if req.Method == sip.ACK || sipcheck.HasLineBreak(req) {
		return nil
	}
	res := b.New(req, code, reason)
	if retryAfter != "" {
		res.AppendHeader(sip.NewHeader("Retry-After", retryAfter))
	}
	return tx.Respond(res)
}
