package admission

import (
	"log/slog"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/reply"
)

// Limit bounds the requests being handled at once: over Max, a request is
// answered 503 Service Unavailable with Retry-After (RFC 3261 21.5.4)
// instead of being handled. A slot is held while the next handler runs.
//
// Only REGISTERs take a slot. A forwarded request holds its handler until
// its final answer: a ringing INVITE up to Timer C (minutes), so sharing
// the budget let 40 ringing calls refuse every REGISTER and OPTIONS
// (issue 15); a MESSAGE or OPTIONS to a device that never answers 32 s
// (Timer F), so one account's 5,000 of them refused every REGISTER for
// 32 s (a probe). The proxy has budgets of its own: proxy.max_in_flight
// for forwarded transactions, and the per-credential and per-source caps
// on calls and on other requests.
type Limit struct {
	max     int64
	n       atomic.Int64
	replies reply.Builder
	count   Counter
	log     *slog.Logger
}

// NewLimit returns a Limit of n requests (at least 1). count may be nil.
func NewLimit(n int, replies reply.Builder, count Counter, logger *slog.Logger) *Limit {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Limit{max: int64(max(n, 1)), replies: replies, count: count, log: logger}
}

// InFlight returns how many requests hold a slot.
func (l *Limit) InFlight() int64 { return l.n.Load() }

// Middleware is the rule.
func (l *Limit) Middleware(next Handler) Handler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if req.Method != sip.REGISTER {
			next(req, tx)
			return
		}
		if l.n.Add(1) > l.max {
			l.n.Add(-1)
			if l.count != nil {
				l.count.Rejected(metrics.RejectInFlight)
			}
			if err := refuse(l.replies, req, tx, 503, "Service Unavailable", "5"); err != nil {
				l.log.Debug("send refusal", "source", req.Source(), "status", 503, "error", err)
			}
			return
		}
		defer l.n.Add(-1)
		next(req, tx)
	}
}
