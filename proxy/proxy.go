// Package proxy is sipwarden's stateful proxy (RFC 3261 section 16): it
// authenticates out-of-dialog requests with the registrar's authenticator
// (407 Proxy-Authenticate), routes them to the registered devices of a
// local AOR over their own flows or to an outbound gateway, record-routes
// so that in-dialog requests come back through it, and tracks the dialogs
// it established so that they can be listed and ended.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/e164"
	"github.com/sipwarden/sipwarden/reply"
	"github.com/sipwarden/sipwarden/sipcheck"
	"github.com/sipwarden/sipwarden/sipuri"
	"github.com/sipwarden/sipwarden/store"
)

// Authenticator is the authentication path shared with the registrar:
// *auth.Authenticator.
type Authenticator interface {
	CheckSIP(req *sip.Request, side auth.Side) auth.Result
	Refuse(b reply.Builder, req *sip.Request, side auth.Side, res auth.Result, user string) *sip.Response
}

// Locator finds the live bindings of an AOR.
type Locator interface {
	Lookup(aor string) []store.Binding
}

// RequestLocator is a Locator whose answer depends on the request: a
// cluster node's (server.ownFlows) reaches a binding over another node's
// connection through that node, except for a request another node relayed
// to it, which goes to this node's own connections only (never relayed
// again). When the Locator implements it, the proxy calls LookupFor.
type RequestLocator interface {
	LookupFor(req *sip.Request, aor string) []store.Binding
}

// Credentials tells a local user without a binding (480) from no such
// user (404).
type Credentials interface {
	CredentialByUsername(username string) (store.Credential, error)
}

// Sender sends requests: *sipgo.Client.
type Sender interface {
	TransactionRequest(ctx context.Context, req *sip.Request, options ...sipgo.ClientRequestOption) (sip.ClientTransaction, error)
	WriteRequest(req *sip.Request, options ...sipgo.ClientRequestOption) error
}

// ResponseWriter sends a response outside of a server transaction (2xx
// retransmissions after the transaction ended): *sipgo.Server.
type ResponseWriter interface {
	WriteResponse(res *sip.Response) error
}

// Listener is one SIP listener of this server.
type Listener struct {
	// Transport is "udp", "tcp" or "tls".
	Transport string
	// Addr is the bound address.
	Addr netip.AddrPort
	// Host is what Via and Record-Route carry: the advertised address.
	Host string
}

// Route is an outbound route: requests whose Request-URI user starts with
// Prefix, or whose host is Domain, go to Gateway.
type Route struct {
	Name   string
	Prefix string
	Domain string
	// Gateway is the next hop: host, port and transport.
	Gateway Hop
	// Connections lists the connection ids allowed to use the route; empty
	// allows every authenticated caller and trusted peers.
	Connections []string
}

// Hop is a next-hop address.
type Hop struct {
	Host      string
	Port      int
	Transport string // "udp", "tcp", "tls"
}

func (h Hop) addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// Config configures a Proxy.
type Config struct {
	// Domains whose users are local (the registrar's list).
	Domains []string
	// Listeners are the server's SIP listeners, one per transport.
	Listeners []Listener
	// Trusted peers are not challenged (proxy.trusted_peers).
	Trusted []netip.Prefix
	// TrustedFunc, when set, reports the addresses of a cluster's live
	// nodes, which relay calls to the node holding the callee's
	// connection, over UDP. Without TrustedRelay, a request over UDP from
	// such an address is trusted as Trusted's are; with it, only the
	// relays it vouches for, and for ringing this node's devices only
	// (caller.Relay). It runs for every out-of-dialog request: it must be
	// cheap and must not block.
	TrustedFunc func(netip.Addr) bool
	// TrustedRelay, when set, tells whether a request over UDP from an
	// address TrustedFunc reports is a relay of the cluster's (signed:
	// the address alone is forged too easily over UDP).
	TrustedRelay func(*sip.Request) bool
	// Directory, when set, gives the ip connections (trusted peers
	// managed through the API), assigned numbers and connection policies
	// (connection.go). Nil: none.
	Directory Directory
	Routes    []Route
	// MaxInFlight bounds concurrent proxy transactions; over it, 503.
	MaxInFlight int
	// TimerC is how long a branch may ring (RFC 3261 16.6 step 11, > 3 min).
	TimerC time.Duration
	// MaxDialogAge drops a tracked dialog whose BYE never came.
	MaxDialogAge time.Duration
	// MaxCallsPerCredential and MaxCallsPerSource cap the concurrent calls
	// (ringing or answered) of one caller credential and from one source
	// address; over them an INVITE gets 503 with a reason phrase naming
	// the cap. 0: no cap. Trusted peers and CapExempt addresses have no
	// per-source cap.
	MaxCallsPerCredential, MaxCallsPerSource int
	CapExempt                                []netip.Prefix
	// Server is the Server header value of our own responses.
	Server string
	// Public, when set, allows anonymous click-to-call over ws/wss to the
	// targets it lists (anonymous.go); nil: every caller authenticates.
	Public PublicTargets
	// AnonymousPerMinute bounds the anonymous calls of one source per
	// minute. Default 10.
	AnonymousPerMinute int
	// OnAnonymous, when set, is called when an anonymous call is let
	// through, before it is forwarded, with its transport and source: the
	// server gives its WebSocket the idle timeout of an authenticated one,
	// which it would otherwise lose while the call rings. It must not block.
	OnAnonymous func(transport, source string)
	// Resolver looks up the SRV records of gateway names (RFC 3263);
	// nil: net.DefaultResolver.
	Resolver SRVResolver
	// Connected, when set, reports whether a TCP or TLS connection to
	// addr ("ip:port") is open (sipgo's pool): a device's binding over a
	// stream whose connection is gone (the server restarted and restored
	// it, and the device has not registered again yet) is then reached at
	// its Contact's address instead of its old source port, where nothing
	// listens (bindingTargets). Nil: always at the source.
	Connected func(transport, addr string) bool
	// OnCall, when set, is told of each call's steps (callevent.go): an
	// INVITE forwarded, answered, ended. It runs on SIP goroutines, some
	// holding locks: it must not block or call the proxy.
	OnCall func(CallEvent)
}

// Event describes one request the proxy finished with.
type Event struct {
	Method    string
	Source    string
	Transport string
	// Caller is the authenticated username ("" for trusted peers and
	// in-dialog requests), Target the Request-URI user.
	Caller, Target string
	// Username is the username the credentials claimed, also when they
	// failed (for brute-force accounting).
	Username string
	// Scheme is "digest" or "bearer" once credentials were checked.
	Scheme  string
	Status  int
	Outcome auth.Outcome
	// Checked is true when the request went through authentication (not
	// for trusted peers, in-dialog requests or requests refused before).
	Checked       bool
	Authenticated bool
	Trusted       bool
	InDialog      bool
	Forwarded     bool
	// Anonymous is the result of an anonymous click-to-call ("" for
	// other requests): AnonymousAllowed, AnonymousNotPublic or
	// AnonymousRateLimited.
	Anonymous string
	// FirstResponse is the time to the first response from a branch.
	FirstResponse time.Duration
	Duration      time.Duration
	// Stateless: answered by the stateless front before authentication
	// (ServeRefusal), logged at debug as a 407 is: one line at info per
	// unauthenticated INVITE was log amplification.
	Stateless bool
}

// Proxy is the stateful proxy.
type Proxy struct {
	cfg      Config
	auth     Authenticator
	loc      Locator
	creds    Credentials
	send     Sender
	resp     ResponseWriter
	log      *slog.Logger
	domains  map[string]bool
	ours     map[string]bool // host:port values that are this server
	byTp     map[string]Listener
	dialogs  *Dialogs
	inFlight atomic.Int64
	caps     *callCaps
	// reqCaps counts the other requests forwarded out of a dialog
	// (MESSAGE, OPTIONS, SUBSCRIBE...) per credential and source, with the
	// call caps' limits: one to a device that never answers holds its
	// count for 32 s (Timer F), and one account's 5,000 of them held every
	// slot (a probe). Calls and requests have a count each.
	reqCaps *callCaps
	// ringing holds the INVITEs being forwarded, for EndCredential.
	ringingMu sync.Mutex
	ringing   map[*call]struct{}
	observe   []func(Event)
	now       func() time.Time
	replies   reply.Builder
	// anonLimit counts anonymous calls per source.
	anonLimit *rateWindow
}

// New returns a Proxy. now nil is time.Now; logger nil discards.
func New(cfg Config, a Authenticator, loc Locator, creds Credentials, send Sender, resp ResponseWriter,
	now func() time.Time, logger *slog.Logger) (*Proxy, error) {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("proxy: no listener")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 10000
	}
	if cfg.TimerC <= 0 {
		cfg.TimerC = 180 * time.Second
	}
	if cfg.MaxDialogAge <= 0 {
		cfg.MaxDialogAge = 12 * time.Hour
	}
	if cfg.AnonymousPerMinute <= 0 {
		cfg.AnonymousPerMinute = 10
	}
	p := &Proxy{
		cfg: cfg, auth: a, loc: loc, creds: creds, send: send, resp: resp, log: logger,
		domains: map[string]bool{}, ours: map[string]bool{}, byTp: map[string]Listener{},
		now: now, replies: reply.Builder{Server: cfg.Server},
		caps: newCallCaps(cfg.MaxCallsPerCredential, cfg.MaxCallsPerSource), reqCaps: newCallCaps(cfg.MaxCallsPerCredential, cfg.MaxCallsPerSource), ringing: map[*call]struct{}{},
		anonLimit: newRateWindow(cfg.AnonymousPerMinute, 65536),
	}
	for _, d := range cfg.Domains {
		p.domains[strings.ToLower(d)] = true
	}
	for _, l := range cfg.Listeners {
		p.byTp[l.Transport] = l
		port := strconv.Itoa(int(l.Addr.Port()))
		p.ours[strings.ToLower(l.Host)+":"+port] = true
		p.ours[l.Addr.Addr().String()+":"+port] = true
		for d := range p.domains {
			p.ours[d+":"+port] = true
		}
	}
	p.dialogs = newDialogs(p)
	return p, nil
}

// OnEvent adds f to the functions called once per finished request
// (metrics, the guard's failure accounting), in the order added, on the
// request's goroutine. Call it before serving.
func (p *Proxy) OnEvent(f func(Event)) { p.observe = append(p.observe, f) }

// Dialogs returns the dialog table.
func (p *Proxy) Dialogs() *Dialogs { return p.dialogs }

// Run sweeps dialogs older than MaxDialogAge until ctx ends, every
// sixtieth of it (at most a minute, at least a second): a dialog is
// forgotten within 2% of its age limit.
func (p *Proxy) Run(ctx context.Context) {
	t := time.NewTicker(min(max(p.cfg.MaxDialogAge/60, time.Second), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.dialogs.sweep(p.now().Add(-p.cfg.MaxDialogAge))
		}
	}
}

// ServeSIP handles every request method but REGISTER. It returns only
// once the final response is sent (SIPGO_NOTES: a handler that returns
// early ends the server transaction).
func (p *Proxy) ServeSIP(req *sip.Request, tx sip.ServerTransaction) {
	growStack()
	// RFC 3261 18.2.1 (sipgo's transport leaves it as a TODO): the top
	// Via gets received when its sent-by is a name (a browser's
	// *.invalid) or another address, so that it travels with the
	// forwarded request and the responses coming back.
	reply.Received(req.Via(), req.Source())
	p.handle(req, tx, p.serve)
}

// handle runs serve for req and reports the event it filled in: the log
// line and the OnEvent functions, whichever path the request took.
func (p *Proxy) handle(req *sip.Request, tx sip.ServerTransaction, serve func(*sip.Request, sip.ServerTransaction, *Event)) {
	start := p.now()
	ev := Event{Method: string(req.Method), Source: req.Source(), Transport: strings.ToLower(req.Transport()), Outcome: auth.NoCredentials}
	serve(req, tx, &ev)
	ev.Duration = p.now().Sub(start)
	outcome := "none" // not authenticated: trusted peer, in-dialog, refused before
	if ev.Checked {
		outcome = ev.Outcome.String()
	}
	// A challenge is logged at debug, as the registrar's 401: every call
	// starts with one, and an unauthenticated sender could write a line
	// at info per INVITE (2,000 INVITEs: 410 KB of log, in a probe).
	if ev.Status != 407 && !ev.Stateless && (req.Method == sip.INVITE || ev.Status >= 300) {
		// The fixed keys of a completed transaction (method, aor = the
		// Request-URI user, source, transport, status, outcome, duration_s).
		p.log.Info(string(req.Method), "method", string(req.Method), "aor", ev.Target, "caller", ev.Caller, "source", ev.Source,
			"transport", ev.Transport, "status", ev.Status, "outcome", outcome,
			"in_dialog", ev.InDialog, "duration_s", ev.Duration.Seconds())
	} else {
		p.log.Debug(string(req.Method), "method", string(req.Method), "aor", ev.Target, "caller", ev.Caller, "source", ev.Source,
			"transport", ev.Transport, "status", ev.Status, "outcome", outcome, "in_dialog", ev.InDialog)
	}
	for _, f := range p.observe {
		f(ev)
	}
}

// validationFault returns the answer to a request that fails RFC 3261
// 16.3's first checks (steps 1, 2 and 5): the version (505), the
// mandatory headers, once each, and the CSeq method (400), the
// Request-URI (416, 400) and a Proxy-Require (420; ACK and CANCEL are
// exempt, 8.2.2.3); nil when it passes. serve, Refusal and Challengeable
// share it.
func (p *Proxy) validationFault(req *sip.Request) *sip.Response {
	if !sipcheck.Version(req) {
		return p.newResponse(req, 505, "Version Not Supported")
	}
	to, from, callID, cseq := req.To(), req.From(), req.CallID(), req.CSeq()
	bad := ""
	switch {
	case to == nil:
		bad = "Missing To Header"
	case from == nil:
		bad = "Missing From Header"
	case callID == nil || callID.Value() == "":
		bad = "Missing Call-ID Header"
	case cseq == nil:
		bad = "Missing CSeq Header"
	case cseq.MethodName != req.Method:
		bad = "CSeq Method Does Not Match"
	default:
		if name := sipcheck.Duplicate(req); name != "" {
			bad = "Duplicate " + name + " Header"
		}
	}
	if bad != "" {
		return p.newResponse(req, 400, bad)
	}
	if code, reason := requestURIFault(&req.Recipient); code != 0 {
		return p.newResponse(req, code, reason)
	}
	if req.Method != sip.ACK && req.Method != sip.CANCEL {
		if tags := sipcheck.Unsupported(req, "Proxy-Require"); tags != nil {
			return sipcheck.BadExtension(p.newResponse(req, 420, "Bad Extension"), tags)
		}
	}
	return nil
}

func (p *Proxy) serve(req *sip.Request, tx sip.ServerTransaction, ev *Event) {
	// RFC 3261 16.3: request validation.
	if sipcheck.HasLineBreak(req) {
		return // any answer would echo the injected line: drop
	}
	to := req.To()
	isAck := req.Method == sip.ACK
	if res := p.validationFault(req); res != nil {
		if !isAck {
			ev.Status = p.respond(tx, res)
		}
		return
	}
	forceRport(req)
	ev.Target = req.Recipient.User

	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		if req.Method == sip.OPTIONS && p.isUs(&req.Recipient) {
			ev.Status = p.replyOptions(req, tx)
			return
		}
		if !isAck {
			ev.Status = p.reply(req, tx, 483, "Too Many Hops")
		}
		return
	}
	if p.looped(req) { // RFC 3261 16.3 step 4
		if !isAck {
			ev.Status = p.reply(req, tx, 482, "Loop Detected")
		}
		return
	}
	loopHash := loopHash(req) // over the request as received (16.6 step 8)
	ourRoute := p.preprocessRoute(req)

	if to.Params.Has("tag") {
		ev.InDialog = true
		p.inDialog(req, tx, ourRoute, loopHash, ev)
		return
	}
	switch req.Method {
	case sip.ACK:
		return // an ACK for one of our own non-2xx responses: absorbed (17.2.1)
	case sip.CANCEL:
		// A CANCEL matching an INVITE transaction never reaches us: sipgo
		// answers it and fires the transaction's OnCancel.
		ev.Status = p.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	case sip.BYE, sip.PRACK, sip.UPDATE, sip.INFO:
		ev.Status = p.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if req.Method == sip.OPTIONS && req.Recipient.User == "" && (p.isUs(&req.Recipient) || p.domains[strings.ToLower(req.Recipient.Host)]) {
		// A keepalive or a capability query for the server itself.
		ev.Status = p.replyOptions(req, tx)
		return
	}
	if req.Recipient.User == "" && !knownMethod(req.Method) && (p.isUs(&req.Recipient) || p.domains[strings.ToLower(req.Recipient.Host)]) {
		// RFC 3261 sections 8.2.1 and 21.5.2: a method this server does
		// not know, sent to the server itself (no user to forward it to),
		// is answered 501 with the methods it knows, challenge or not; it
		// used to be challenged, then answered 404 No User In Request-URI.
		res := p.newResponse(req, 501, "Not Implemented")
		res.AppendHeader(sip.NewHeader("Allow", Allow))
		ev.Status = p.respond(tx, res)
		return
	}
	if r := req.Route(); r != nil {
		// A preloaded Route to somewhere else would make us an open relay.
		ev.Status = p.reply(req, tx, 403, "Preloaded Route Denied")
		return
	}
	if req.Method == sip.INVITE {
		// RFC 3261 16.2: a stateful proxy answers an INVITE with 100 at
		// once, so that the caller stops retransmitting. Sent here, after
		// the checks answered at once and before authentication (which may
		// wait on Redis in a cluster) and the edits of the request below:
		// it stops sipgo's own 100 timer (17.2.1, 200 ms), which would
		// otherwise read the request from another goroutine while this one
		// edits it.
		_ = tx.Respond(p.newResponse(req, 100, "Trying"))
	}
	var (
		caller caller
		ok     bool
	)
	if p.anonymousCaller(req) {
		// Anonymous click-to-call (ws/wss only): no challenge, only the
		// targets a connection made public, 403 otherwise.
		caller, ev.Anonymous = p.anonymous(req)
		if ev.Anonymous != AnonymousAllowed {
			ev.Status = p.reply(req, tx, 403, "Forbidden")
			return
		}
		if p.cfg.OnAnonymous != nil {
			p.cfg.OnAnonymous(ev.Transport, ev.Source)
		}
	} else if caller, ok = p.authenticate(req, tx, ev); !ok {
		return
	}
	ev.Caller = caller.Username
	if !caller.Trusted {
		// RFC 3325 section 5: an identity asserted by a sender outside the
		// trust domain is removed, or a user could ring a callee as anyone.
		removeIdentityHeaders(req)
	}
	targets, status, reason := p.route(req, caller)
	if status == 0 && strings.EqualFold(req.Recipient.Scheme, "sips") {
		if targets = secureTargets(targets); len(targets) == 0 {
			status, reason = 480, "SIPS Target Not Reachable Over TLS"
		}
	}
	if status != 0 {
		ev.Status = p.reply(req, tx, status, reason)
		return
	}
	if caller.Trusted && !toTrustDomain(targets) && privacyID(req) {
		// RFC 3325 section 9.1: an identity asserted by a trusted peer (a
		// carrier) whose user asked for privacy (Privacy: id, RFC 3323) is
		// removed before the request leaves the trust domain for a user's
		// device, or a withheld number would ring on the callee's screen.
		removeIdentityHeaders(req)
	}
	if !caller.Trusted && caller.Credential.ID != "" && toTrustDomain(targets) {
		// The From identity the caller ID policy admitted, asserted to
		// the gateway or PBX (RFC 3325 section 9.1); users' devices are
		// outside the trust domain and get none (section 5).
		assertIdentity(req)
	}
	// Only forwarded transactions count: a challenge or a refusal is
	// answered at once, and counting it until after its answer left would
	// refuse the authenticated retry that answer asked for.
	if !p.acquire(req, tx, ev, false) {
		return
	}
	defer p.inFlight.Add(-1)
	var hold *capHold
	if req.Method == sip.INVITE {
		var reason string
		callee := connCap{}
		if id := targets[0].connection; id != "" {
			callee = connCap{id: id, max: p.connection(id).MaxCalls}
		}
		if hold, reason = p.caps.acquire(caller.Credential.ID, p.capSource(req.Source(), caller.Trusted),
			connCap{id: caller.Connection.ID, max: caller.Connection.MaxCalls}, callee); reason != "" {
			res := p.newResponse(req, 503, reason)
			res.AppendHeader(sip.NewHeader("Retry-After", "5"))
			ev.Status = p.respond(tx, res)
			return
		}
	} else {
		h, reason := p.reqCaps.acquire(caller.Credential.ID, p.capSource(req.Source(), caller.Trusted))
		if reason != "" {
			res := p.newResponse(req, 503, strings.Replace(reason, "Calls", "Requests", 1))
			res.AppendHeader(sip.NewHeader("Retry-After", "5"))
			ev.Status = p.respond(tx, res)
			return
		}
		defer h.release()
	}
	ev.Forwarded = true
	p.forward(req, tx, caller, targets, loopHash, ev, hold)
}

// secureTargets keeps the targets a SIPS request may be forwarded to: over
// TLS or secure WebSocket only, every hop of the way (RFC 3261 section
// 26.2.2, RFC 5630 section 3.1.3); a UDP or TCP device, trunk or gateway
// is dropped, and so are the insecure gateways a target would fail over
// to. A SIPS call used to be rung over UDP with a sip: Request-URI, the
// caller believing it secure. None left: the caller gets 480.
func secureTargets(ts []target) []target {
	var out []target
	for _, t := range ts {
		chain := append([]target{t}, t.next...)
		var secure []target
		for _, c := range chain {
			if tp := strings.ToLower(c.hop.Transport); tp == "tls" || tp == "wss" {
				c.next = nil
				secure = append(secure, c)
			}
		}
		if len(secure) > 0 {
			first := secure[0]
			first.next = secure[1:]
			out = append(out, first)
		}
	}
	return out
}

// privacyID reports whether a Privacy header (RFC 3323 section 4.2; one
// header or several, values separated by ';') requests "id" privacy.
func privacyID(req *sip.Request) bool {
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "Privacy") {
			continue
		}
		for _, v := range strings.FieldsFunc(h.Value(), func(r rune) bool { return r == ';' || r == ',' }) {
			if strings.EqualFold(strings.TrimSpace(v), "id") {
				return true
			}
		}
	}
	return false
}

// removeIdentityHeaders removes every P-Asserted-Identity,
// P-Preferred-Identity and Remote-Party-ID header, however spelt (sipgo's
// RemoveHeader removes the first header of the exact name only).
func removeIdentityHeaders(req *sip.Request) {
	var names []string
	for _, h := range req.Headers() {
		switch n := h.Name(); {
		case strings.EqualFold(n, "P-Asserted-Identity"), strings.EqualFold(n, "P-Preferred-Identity"), strings.EqualFold(n, "Remote-Party-ID"):
			names = append(names, n)
		}
	}
	for _, n := range names {
		req.RemoveHeader(n)
	}
}

// capSource is the address whose calls a caller's INVITE counts against;
// invalid (not counted) for trusted peers and exempt addresses.
func (p *Proxy) capSource(source string, trusted bool) netip.Addr {
	ap, err := netip.ParseAddrPort(source)
	if err != nil || trusted {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	for _, pre := range p.cfg.CapExempt {
		if pre.Contains(a) {
			return netip.Addr{}
		}
	}
	return a
}

// EndCredential ends every call of a credential, as caller or callee:
// answered calls get BYE on both sides (Dialogs.EndCredential), ringing
// ones are cancelled (RFC 3261 16.10: the caller gets the 487). It
// returns how many it ended.
func (p *Proxy) EndCredential(credentialID string) int {
	if credentialID == "" {
		return 0
	}
	n := p.dialogs.EndCredential(credentialID)
	var todo []*call
	p.ringingMu.Lock()
	for cl := range p.ringing {
		if cl.involves(credentialID) {
			todo = append(todo, cl)
		}
	}
	p.ringingMu.Unlock()
	for _, cl := range todo {
		cl.cancelAll(false)
	}
	return n + len(todo)
}

// EndConnection ends every call of a connection as such (its caller or
// callee side was the connection, as for an ip connection's carrier):
// answered calls get BYE on both sides, ringing ones are cancelled. Calls
// of its credentials are ended by EndCredential. It returns how many it
// ended.
func (p *Proxy) EndConnection(connectionID string) int {
	if connectionID == "" {
		return 0
	}
	n := p.dialogs.endConnection(connectionID)
	var todo []*call
	p.ringingMu.Lock()
	for cl := range p.ringing {
		if cl.caller.Connection.ID == connectionID {
			todo = append(todo, cl)
		}
	}
	p.ringingMu.Unlock()
	for _, cl := range todo {
		cl.cancelAll(false)
	}
	return n + len(todo)
}

// acquire takes an in-flight slot for a transaction to forward (release
// it with p.inFlight.Add(-1)), or answers 503 with Retry-After and returns
// false when proxy.max_in_flight are taken; always admits it takes the
// slot anyway (a BYE must be able to end a call under load).
func (p *Proxy) acquire(req *sip.Request, tx sip.ServerTransaction, ev *Event, always bool) bool {
	if n := p.inFlight.Add(1); n <= int64(p.cfg.MaxInFlight) || always {
		return true
	}
	p.inFlight.Add(-1)
	res := p.newResponse(req, 503, "Service Unavailable")
	res.AppendHeader(sip.NewHeader("Retry-After", "5"))
	ev.Status = p.respond(tx, res)
	return false
}

// caller is who sent an out-of-dialog request.
type caller struct {
	Username   string
	Credential store.Credential // zero for a trusted peer; only ConnectionID for an anonymous caller or an ip connection
	// Connection is the caller's connection (zero for a trusted peer of
	// proxy.trusted_peers and an anonymous caller).
	Connection store.Connection
	Trusted    bool
	// Relay: a request another node of the cluster relayed to the
	// devices this node holds (TrustedRelay): it rings those and nothing
	// else (route).
	Relay bool
	// Peer: an ip connection, trusted by its source address.
	Peer bool
	// Anonymous: a click-to-call to one of Credential.ConnectionID's
	// public targets (anonymous.go).
	Anonymous bool
}

// authenticate challenges or verifies the request (RFC 3261 22.3: 407
// with Proxy-Authenticate). It answers the request itself when it fails.
func (p *Proxy) authenticate(req *sip.Request, tx sip.ServerTransaction, ev *Event) (caller, bool) {
	from := req.From()
	if p.trustedFrom(req.Source(), p.cfg.TrustedRelay == nil && strings.EqualFold(req.Transport(), "udp")) {
		ev.Trusted = true
		return caller{Trusted: true}, true
	}
	if p.relayed(req) {
		ev.Trusted = true
		return caller{Trusted: true, Relay: true}, true
	}
	if conn, ok := p.peer(req.Source()); ok {
		// An ip connection: authenticated by its address alone.
		ev.Trusted = true
		c := caller{Trusted: true, Peer: true, Connection: conn, Credential: store.Credential{ConnectionID: conn.ID}}
		if !p.callerIDAllowed(&c, fromUser(&from.Address)) {
			ev.Status = p.reply(req, tx, 403, reasonCallerID)
			return caller{}, false
		}
		return c, true
	}
	res, ok := p.verify(req, tx, ev)
	if !ok {
		return caller{}, false
	}
	ev.Authenticated = true
	c := caller{Username: res.Credential.Username, Credential: res.Credential, Connection: p.connection(res.Credential.ConnectionID)}
	// The caller may use its own identity, or what its connection's
	// caller ID policy allows (connection.go).
	if !p.callerIDAllowed(&c, fromUser(&from.Address)) {
		ev.Status = p.reply(req, tx, 403, reasonCallerID)
		return caller{}, false
	}
	if !isTel(&from.Address) && from.Address.User == c.Credential.Username && !p.servesHost(from.Address.Host) {
		// Its own username, in a domain this server serves: "support"
		// presenting sip:support@anybank.example showed the callee
		// another domain's user. The registrar holds its To to the same
		// domains.
		ev.Status = p.reply(req, tx, 403, reasonFromDomain)
		return caller{}, false
	}
	// The credentials were for us: they go no further (RFC 3261 22.3).
	req.RemoveHeader("Proxy-Authorization")
	return c, true
}

// verify checks the credentials of req (an out-of-dialog request from a
// source not authenticated by its address) and answers it when the
// outcome is not OK: auth's one answer for the outcome, the registrar's
// too (a 407 challenge for a request without credentials).
func (p *Proxy) verify(req *sip.Request, tx sip.ServerTransaction, ev *Event) (auth.Result, bool) {
	res := p.auth.CheckSIP(req, auth.Proxy)
	ev.Outcome, ev.Checked, ev.Username, ev.Scheme = res.Outcome, true, res.Username, res.Scheme
	if res.Outcome != auth.OK {
		ev.Status = p.respond(tx, p.auth.Refuse(p.replies, req, auth.Proxy, res, req.From().Address.User))
		return res, false
	}
	return res, true
}

// trustedReq reports whether req is authenticated by its source address:
// a proxy.trusted_peers CIDR over any transport, or an address
// TrustedFunc reports (a cluster's live node) over UDP only. A node
// relays a call to another over UDP (to its cluster.advertise), never
// over TCP, TLS or WebSocket; those carry phones and browsers, and a
// browser's WebSocket reaches a node through a reverse proxy on the
// node's host, from 127.0.0.1, which is also the IP of every node's
// loopback listener (contrib/systemd's ws: 127.0.0.1:5066). Trusted over
// any transport, every such browser was a trusted peer of the other
// nodes: its calls unchallenged, any From and P-Asserted-Identity kept.
func (p *Proxy) trustedReq(req *sip.Request) bool {
	udp := strings.EqualFold(req.Transport(), "udp")
	return p.trustedFrom(req.Source(), udp && p.cfg.TrustedRelay == nil) || p.relayed(req)
}

// relayed reports whether req is a relay TrustedRelay vouches for: over
// UDP, from an address TrustedFunc reports.
func (p *Proxy) relayed(req *sip.Request) bool {
	return p.cfg.TrustedRelay != nil && strings.EqualFold(req.Transport(), "udp") &&
		p.trustedFrom(req.Source(), true) && p.cfg.TrustedRelay(req)
}

// trusted reports whether requests from source may be authenticated by
// their address (trustedReq, whatever the transport): the stateless
// front's test for leaving a request to ServeSIP, which decides with
// trustedReq.
func (p *Proxy) trusted(source string) bool { return p.trustedFrom(source, true) }

// trustedFrom reports whether source is in proxy.trusted_peers, or (with
// cluster) an address TrustedFunc reports.
func (p *Proxy) trustedFrom(source string, cluster bool) bool {
	if len(p.cfg.Trusted) == 0 && p.cfg.TrustedFunc == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(source)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, pre := range p.cfg.Trusted {
		if pre.Contains(a) {
			return true
		}
	}
	return cluster && p.cfg.TrustedFunc != nil && p.cfg.TrustedFunc(a)
}

// target is one destination of a forwarded request.
type target struct {
	uri     sip.Uri
	hop     Hop
	binding *store.Binding // nil for a gateway
	// next are the gateways to fail over to, in order (gateway.go).
	next []target
	// connection is the callee's connection: a local user's, or the
	// connection a number belongs to ("" for a gateway).
	connection string
	// gwAuth answers the gateway's digest challenge; authTried once it
	// was answered.
	gwAuth    *gatewayAuth
	authTried bool
}

// route finds the targets of an authenticated out-of-dialog request
// (RFC 3261 16.5), or the status that refuses it.
func (p *Proxy) route(req *sip.Request, c caller) ([]target, int, string) {
	ru := req.Recipient
	if c.Relay {
		// Another node relayed it to the devices this node holds: those,
		// and never a number's trunk, a route or a gateway (the relaying
		// node applied the caller's policies; a relay is trusted for
		// ringing these devices only).
		if ts := p.bindingTargets(req, ru.User); len(ts) > 0 {
			return ts, 0, ""
		}
		return nil, 480, "Temporarily Unavailable"
	}
	if strings.EqualFold(ru.Scheme, "tel") {
		// A telephone number (RFC 3966), routed as the user=phone SIP URI
		// of the same number at our domain (RFC 3261 19.1.6): assigned
		// numbers, connections' and the server's outbound routes apply as
		// to sip:+15551234567@domain;user=phone. It got 403 Relaying Not
		// Allowed, having no host.
		u, ok := p.telAsSIP(&ru)
		if !ok {
			return nil, 404, "Not Found"
		}
		ru = u
	}
	ru.User = sipuri.UnescapeUser(ru.User)
	local := p.domains[strings.ToLower(ru.Host)] || p.isUs(&ru)
	if local && ru.User != "" {
		// An assigned number (a DID) first: its credential's devices or
		// its connection's PBX.
		if ts, status, reason, ok := p.numberTargets(req, &ru); ok {
			return ts, status, reason
		}
		cred, err := p.creds.CredentialByUsername(ru.User)
		switch {
		case err == nil:
			// A call by SIP URI: the callee's connection decides.
			if !p.uriCallAllowed(&c, cred.ConnectionID) {
				return nil, 403, reasonURICalling
			}
			if ts := p.bindingTargets(req, ru.User); len(ts) > 0 {
				for i := range ts {
					ts[i].connection = cred.ConnectionID
				}
				return ts, 0, ""
			}
			return nil, 480, "Temporarily Unavailable"
		case !errors.Is(err, store.ErrNotFound):
			p.log.Error("credential lookup", "error", err)
			return nil, 500, "Server Internal Error"
		}
	}
	if t, ok := p.connectionRoute(&ru, &c); ok {
		// The caller's connection's own gateways (gateway.go).
		return []target{t}, 0, ""
	}
	if r, ok := p.outboundRoute(&ru, local); ok && (!c.Peer || slices.Contains(r.Connections, c.Connection.ID)) {
		// An ip connection (a carrier) reaches a gateway only through a
		// route that names it: its calls to numbers that are not ours get
		// 404 rather than going back out (no hairpin toll fraud).
		if !routeAllowed(r, c) {
			return nil, 403, "Outbound Route Not Allowed For This Connection"
		}
		u := ru.Clone()
		u.Host, u.Port = r.Gateway.Host, r.Gateway.Port
		u.UriParams = sip.HeaderParams{}
		if r.Gateway.Transport != "udp" {
			u.UriParams.Add("transport", r.Gateway.Transport)
		}
		return []target{{uri: *u, hop: r.Gateway}}, 0, ""
	}
	if local {
		if ru.User == "" {
			return nil, 404, "No User In Request-URI"
		}
		if _, isNumber := e164.FromUser(ru.User); isNumber {
			return nil, 404, reasonNumberNotFound
		}
		return nil, 404, "User Not Found"
	}
	return nil, 403, "Relaying Not Allowed: No Route To Domain"
}

func (p *Proxy) outboundRoute(ru *sip.Uri, local bool) (Route, bool) {
	for _, r := range p.cfg.Routes {
		if r.Domain != "" && strings.EqualFold(r.Domain, ru.Host) {
			return r, true
		}
		if r.Prefix != "" && ru.User != "" && strings.HasPrefix(ru.User, r.Prefix) && (local || r.Domain == "") {
			return r, true
		}
	}
	return Route{}, false
}

func routeAllowed(r Route, c caller) bool {
	if len(r.Connections) == 0 {
		return true
	}
	if c.Trusted && !c.Peer {
		return false
	}
	for _, id := range r.Connections {
		if id == c.Credential.ConnectionID {
			return true
		}
	}
	return false
}

// bindingTarget reaches a device over its own flow: the source address
// and transport its REGISTER came from (SIPGO_NOTES: the connection pool
// is keyed by remote ip:port, so a TCP/TLS device's connection is reused;
// behind NAT the Contact address is unreachable).
func bindingTarget(b *store.Binding) (target, error) {
	var u sip.Uri
	contact := b.Contact
	if i := strings.IndexByte(contact, '<'); i >= 0 {
		if j := strings.IndexByte(contact[i:], '>'); j > 0 {
			contact = contact[i+1 : i+j]
		}
	}
	if err := sip.ParseUri(contact, &u); err != nil {
		return target{}, fmt.Errorf("contact %q: %w", b.Contact, err)
	}
	// RFC 3261 19.1.1 (Table 1) and 19.1.5: a Request-URI carries no
	// header components and no method parameter. A registrant's Contact
	// of <sip:bob@host?Route=...&X=1;method=BYE> was copied into every
	// INVITE's Request-URI as it was.
	u.Headers = nil
	if u.UriParams != nil && u.UriParams.Has("method") {
		u.UriParams = u.UriParams.Clone()
		u.UriParams.Remove("method")
	}
	host, port, err := net.SplitHostPort(b.Source)
	if err != nil {
		return target{}, fmt.Errorf("source %q: %w", b.Source, err)
	}
	pn, _ := strconv.Atoi(port)
	return target{uri: u, hop: Hop{Host: host, Port: pn, Transport: b.Transport}, binding: b}, nil
}

// telAsSIP returns the SIP URI routing a tel: URI: its number (the part
// before any parameter; a local number's phone-context is not used) as
// the user, at the first of cfg.Domains, with user=phone. false: no
// domain, or no telephone number.
func (p *Proxy) telAsSIP(u *sip.Uri) (sip.Uri, bool) {
	number, _, _ := strings.Cut(u.Raw(), ";")
	n, ok := e164.FromUser(number)
	if !ok || len(p.cfg.Domains) == 0 {
		return sip.Uri{}, false
	}
	// The E.164 form, without RFC 3966's visual separators: the next hop
	// (a PBX, a gateway) reads the user part as the number.
	out := sip.Uri{Scheme: "sip", User: n, Host: p.cfg.Domains[0], UriParams: sip.HeaderParams{}}
	out.UriParams.Add("user", "phone")
	return out, true
}

// isTel reports whether u is a tel: URI (RFC 3966), whose number sipgo
// keeps in Raw, with no user or host.
func isTel(u *sip.Uri) bool { return strings.EqualFold(u.Scheme, "tel") }

// fromUser is the identity a From URI presents: its user, or a tel: URI's
// number (the part before its parameters; a caller presenting its own
// number as tel:+15551234567 got 403, its user being empty).
func fromUser(u *sip.Uri) string {
	if isTel(u) {
		number, _, _ := strings.Cut(u.Raw(), ";")
		return number
	}
	return u.User
}

// telNumber reports whether number, a tel: URI's part before its
// parameters, is a telephone number the proxy routes.
func telNumber(number string) bool {
	_, ok := e164.FromUser(number)
	return ok
}

// isUs reports whether a URI names this server (host and port).
// servesHost reports whether host (a URI's, an IPv6 one with or without
// brackets) is a domain or address of this server, as the registrar's
// domains are.
func (p *Proxy) servesHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return p.domains[h] || p.domains["["+h+"]"]
}

func (p *Proxy) isUs(u *sip.Uri) bool {
	port := u.Port
	if port == 0 {
		port = 5060
		if u.IsEncrypted() {
			port = 5061
		}
	}
	return p.ours[strings.ToLower(u.Host)+":"+strconv.Itoa(port)]
}

// forceRport records the packet's source in the top Via (RFC 3581 section
// 4, done for every client as Kamailio's force_rport does: phones behind
// NAT often omit rport), so that responses go back where the request came
// from.
func forceRport(req *sip.Request) {
	via := req.Via()
	src := req.Source()
	if via == nil || src == "" {
		return
	}
	host, port, err := net.SplitHostPort(src)
	if err != nil {
		return
	}
	via.Params.Add("received", host)
	via.Params.Add("rport", port)
}

// newResponse builds our own response to req, sent to the packet's source.
func (p *Proxy) newResponse(req *sip.Request, code int, reason string) *sip.Response {
	return p.replies.New(req, code, reason)
}

// setReplyDestination addresses res, relayed to req's sender, to the
// packet's source over req's transport. The transport was the callee
// leg's (a response from a TCP callee to a UDP caller said tcp): the
// server transaction sends on the caller's connection whatever it says,
// but the trace logged the callee's transport, and a 2xx relayed after
// the transaction ended (resp.WriteResponse) looked for a connection of
// the wrong transport.
func setReplyDestination(req *sip.Request, res *sip.Response) {
	if src := req.Source(); src != "" {
		res.SetDestination(src)
	}
	if tp := req.Transport(); tp != "" {
		res.SetTransport(tp)
	}
}

func (p *Proxy) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason string) int {
	return p.respond(tx, p.newResponse(req, code, reason))
}

func (p *Proxy) respond(tx sip.ServerTransaction, res *sip.Response) int {
	if err := tx.Respond(res); err != nil {
		p.log.Debug("send response", "status", res.StatusCode, "error", err)
	}
	return res.StatusCode
}

// requestURIFault is RFC 3261 16.3 step 2 for a Request-URI: a scheme
// the proxy does not route (not sip, sips or tel) gets 416 Unsupported URI
// Scheme, a SIP URI without a host 400; code 0 when it is neither. Both
// come before authentication (step 6): an "http:" INVITE was challenged,
// then answered 403 once authenticated.
func requestURIFault(u *sip.Uri) (code int, reason string) {
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "tel":
		// RFC 3966: a telephone number, and nothing else, is routable.
		if number, _, _ := strings.Cut(u.Raw(), ";"); !telNumber(number) {
			return 400, "Malformed Request-URI"
		}
	case scheme != "sip" && scheme != "sips":
		return 416, "Unsupported URI Scheme"
	case u.Host == "":
		return 400, "Malformed Request-URI"
	}
	return 0, ""
}

func (p *Proxy) replyOptions(req *sip.Request, tx sip.ServerTransaction) int {
	// The server is the UAS here: a Require it does not implement gets
	// 420 (RFC 3261 8.2.2.3), as a REGISTER's does.
	if tags := sipcheck.Unsupported(req, "Require"); tags != nil {
		return p.respond(tx, sipcheck.BadExtension(p.newResponse(req, 420, "Bad Extension"), tags))
	}
	res := p.newResponse(req, 200, "OK")
	res.AppendHeader(sip.NewHeader("Allow", Allow))
	return p.respond(tx, res)
}

// Allow lists the methods sipwarden handles.
const Allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE, PRACK, PUBLISH, REGISTER"

// knownMethod reports whether m is one of Allow's.
func knownMethod(m sip.RequestMethod) bool {
	for rest := Allow; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, ", ")
		if string(m) == name {
			return true
		}
	}
	return false
}
