package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/health"
	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
)

// observer is one node's observability: its metrics (on a registry of
// its own), its readiness, the SIP trace, and the HTTP handlers that
// expose them.
type observer struct {
	reg   *prometheus.Registry
	m     *metrics.Metrics
	ready *health.Readiness
	ctl   *logControl
	trace *slog.Logger // SIP message trace, at debug
}

func newObserver(ctl *logControl, logger *slog.Logger, version string) (*observer, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m, err := metrics.New(reg, metrics.Options{Version: version})
	if err != nil {
		return nil, err
	}
	return &observer{
		reg:   reg,
		m:     m,
		ready: health.NewReadiness("store", "not open yet", "sip", "listeners not serving yet"),
		ctl:   ctl,
		trace: logger.With("component", "sip_trace"),
	}, nil
}

// middleware is the outermost admission rule: it counts the request and
// the responses the handler sends (through its transaction), keeps the
// in-flight gauge while the handler runs, and traces both when the trace
// is on. Every request on every path goes through it.
func (o *observer) middleware(h admission.Handler) admission.Handler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		method := string(req.Method)
		o.m.RequestReceived(method, req.Transport())
		defer o.m.RequestDone()
		if o.tracing() {
			o.traceMessage("SIP request received", req, slog.String("source", req.Source()))
		}
		// An ACK gets no response (and one for a 2xx comes without a
		// transaction): hand it over untouched.
		if req.Method != sip.ACK {
			tx = &observedTx{ServerTransaction: tx, o: o, method: method}
		}
		h(req, tx)
	}
}

// watchProxy feeds the proxy's events and dialog count to the metrics.
func (o *observer) watchProxy(px *proxy.Proxy) {
	o.m.SetActiveDialogs(px.Dialogs().Count)
	px.OnEvent(func(ev proxy.Event) {
		if ev.Forwarded {
			o.m.Forwarded(ev.Method)
		}
		if ev.Anonymous != "" {
			o.m.AnonymousCall(ev.Anonymous) // the proxy's results are the metric's
		}
		if ev.Method == string(sip.INVITE) && !ev.InDialog && ev.Forwarded {
			o.m.CallAttempted()
			if ev.FirstResponse > 0 {
				o.m.FirstResponse(ev.FirstResponse)
			}
			if ev.Status >= 200 {
				o.m.CallFinished(ev.Status)
			}
		}
	})
}

// observedTx counts (and traces) the responses sent through a server
// transaction. Responses sipgo sends by itself (100 Trying to an INVITE,
// 200 to a CANCEL and the INVITE's 487) do not pass here.
type observedTx struct {
	sip.ServerTransaction
	o      *observer
	method string
}

// Respond counts and traces res before it is sent, so that a peer acting
// on the response finds it counted and logged (and also when sending
// fails: the handler's answer is what is counted). Counting after the
// send let a scrape racing the peer miss it (issue 15's flaky
// TestMetricsAfterRegistrations).
func (t *observedTx) Respond(res *sip.Response) error {
	if t.o.tracing() {
		t.o.traceMessage("SIP response sending", res, slog.String("destination", res.Destination()))
	}
	t.o.m.ResponseSent(t.method, res.StatusCode)
	return t.ServerTransaction.Respond(res)
}

// Defer forwards to the transaction when it can defer its answer
// (registrar.Deferrer): the answer still passes through Respond here.
func (t *observedTx) Defer(finish func()) bool {
	d, ok := t.ServerTransaction.(registrar.Deferrer)
	return ok && d.Defer(finish)
}

func (o *observer) tracing() bool {
	return o.ctl.trace.Load() && o.trace.Enabled(context.Background(), slog.LevelDebug)
}

// tracedMessage is what the trace reads of a request or a response.
type tracedMessage interface {
	StartLine() string
	Headers() []sip.Header
	Body() []byte
	Transport() string
}

func (o *observer) traceMessage(what string, m tracedMessage, peer slog.Attr) {
	o.trace.LogAttrs(context.Background(), slog.LevelDebug, what,
		slog.String("transport", strings.ToLower(m.Transport())), peer,
		slog.String("message", redactedMessage(m)))
}

// redactedMessage renders a SIP message as it is on the wire, except that
// the values of Authorization and Proxy-Authorization headers are
// replaced by [redacted]: they hold digest responses (from which an
// offline dictionary attack on the password starts) and bearer tokens.
func redactedMessage(m tracedMessage) string {
	var b strings.Builder
	b.WriteString(m.StartLine())
	b.WriteString("\r\n")
	for _, h := range m.Headers() {
		name := h.Name()
		b.WriteString(name)
		b.WriteString(": ")
		if secretHeader(name) {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(h.Value())
		}
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(m.Body())
	return b.String()
}

// secretHeader reports whether a header's value must never be logged.
// Header names are case-insensitive (RFC 3261 7.3.1).
func secretHeader(name string) bool {
	return strings.EqualFold(name, "Authorization") || strings.EqualFold(name, "Proxy-Authorization")
}

// registerEvent feeds one handled REGISTER to the metrics.
func (o *observer) registerEvent(ev registrar.Event) {
	if ev.Dropped {
		o.m.RegisterDropped()
		return
	}
	o.m.RegisterHandled(ev.Duration, ev.Added, ev.Refreshed, ev.Removed, ev.Replaced)
}

// authAttempt counts one checked request's outcome, by scheme; a
// request refused before authentication (400, 404) was not checked.
func (o *observer) authAttempt(at auth.Attempt) {
	scheme := metrics.SchemeDigest
	if at.Scheme == "bearer" {
		scheme = metrics.SchemeBearer
	}
	o.m.AuthOutcome(scheme, at.Outcome.String())
}

// watchGuard feeds the guard's bans and the connection limits' refusals
// and open connections to the metrics.
func (o *observer) watchGuard(g *guard.Guard, conns *connlimit.Limiter) {
	m := o.m
	m.SetBansActive(func() int { return len(g.Bans()) })
	m.SetConnectionsOpen(conns.OpenBy)
	conns.OnRefused(func(r connlimit.Reason) {
		switch r {
		case connlimit.RefusedBanned:
			m.Rejected(metrics.RejectBanned)
		case connlimit.RefusedTotal:
			m.Rejected(metrics.RejectConnections)
		case connlimit.RefusedPerIP:
			m.Rejected(metrics.RejectConnectionsPerIP)
		}
	})
}

// bindingExpired is the location table's OnExpire hook.
func (o *observer) bindingExpired(store.Binding) { o.m.BindingExpired() }

// storeOptions adds the commit hooks to the store's options: the metrics,
// and readiness, which a failed commit takes away until one of its kind
// succeeds again (a full disk failed every write while /readyz said ready).
func (o *observer) storeOptions(opts store.Options) store.Options {
	opts.OnBindingFlush = func(_ int, d time.Duration, err error) {
		o.m.StoreCommit(metrics.CommitBindings, d, err)
		o.commitReady("store.bindings", err)
	}
	opts.OnCommit = func(d time.Duration, err error) {
		o.m.StoreCommit(metrics.CommitRecords, d, err)
		o.commitReady("store.records", err)
	}
	return opts
}

// commitReady marks component not ready after a failed commit; any
// successful commit (both kinds write the same file) makes both ready
// again: records are committed only on API writes, and a freed disk left
// /readyz at 503 until the next one.
func (o *observer) commitReady(component string, err error) {
	if err != nil {
		o.ready.NotReady(component, "the last commit failed: "+err.Error())
		return
	}
	o.ready.Ready("store.records")
	o.ready.Ready("store.bindings")
}
