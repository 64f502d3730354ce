package registrar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/reply"
	"github.com/sipwarden/sipwarden/sipcheck"
	"github.com/sipwarden/sipwarden/sipuri"
	"github.com/sipwarden/sipwarden/store"
)

// Authenticator is what the registrar needs from the authentication path:
// *auth.Authenticator.
type Authenticator interface {
	CheckSIP(req *sip.Request, side auth.Side) auth.Result
	Refuse(b reply.Builder, req *sip.Request, side auth.Side, res auth.Result, user string) *sip.Response
}

// Config configures REGISTER processing. Durations are whole seconds on
// the wire.
type Config struct {
	DefaultExpires time.Duration
	MinExpires     time.Duration
	MaxExpires     time.Duration
	// MaxContacts per AOR; a new device beyond it replaces the binding
	// refreshed least recently (last device wins). At least 1.
	MaxContacts int
	// JitterPercent lowers each granted expiry by a random 0..N percent.
	JitterPercent int
	// Domains are the hosts (lowercase) whose AORs are ours: the SIP
	// domain and the addresses the server listens on.
	Domains []string
	// LocalAddrs maps a transport ("udp", "tcp", "tls") to the address the
	// server listens on with it; stored in bindings.
	LocalAddrs map[string]string
	// Server is the Server header value; empty omits it.
	Server string
	// Connections, when set, gives connections' max_registrations
	// (limits.go). Nil: no per-connection limit.
	Connections Connections
}

// Registrar answers REGISTER requests.
type Registrar struct {
	cfg     Config
	loc     *Location
	auth    Authenticator
	log     *slog.Logger
	now     func() time.Time
	domains map[string]bool
	reply   reply.Builder
	// observe holds the functions OnEvent registered, called in order
	// once per handled REGISTER.
	observe []func(Event)
}

// Event describes one handled REGISTER, for logs and metrics.
type Event struct {
	AOR       string
	Source    string
	Transport string
	// Scheme is how the request authenticated: "digest" or "bearer"
	// ("" when it carried no credentials).
	Scheme string
	// Status is the response status; 0 when the request was Dropped.
	Status  int
	Dropped bool
	Outcome auth.Outcome
	// Checked is true once authentication ran: a REGISTER refused before
	// it (400, 404, 416, 420) is logged with outcome none, not the
	// challenge its zero Outcome names.
	Checked bool
	// Username is the username the credentials claimed ("" without).
	Username string
	// Authenticated is true when the request carried valid credentials.
	Authenticated                       bool
	Added, Refreshed, Removed, Replaced int
	// Gone are the bindings the REGISTER removed or replaced, as they were
	// (their own contact and source: a replaced device is not the one
	// that registered); nil when none.
	Gone []store.Binding
	// Bound are the AOR's bindings after the REGISTER (the location
	// table's slice: not to be modified); those it added or refreshed
	// have UpdatedAt equal to the latest.
	Bound    []store.Binding
	Duration time.Duration
}

// New returns a Registrar over the location table loc.
func New(cfg Config, loc *Location, a Authenticator, now func() time.Time, logger *slog.Logger) *Registrar {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxContacts < 1 {
		cfg.MaxContacts = 1
	}
	d := make(map[string]bool, len(cfg.Domains))
	for _, h := range cfg.Domains {
		d[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	return &Registrar{cfg: cfg, loc: loc, auth: a, log: logger, now: now, domains: d, reply: reply.Builder{Server: cfg.Server}}
}

// OnEvent adds f to the functions called once per handled REGISTER (logs,
// metrics, the guard's failure counting), on the request's goroutine, in
// the order they were added. f must not block. Call it before serving.
func (r *Registrar) OnEvent(f func(Event)) { r.observe = append(r.observe, f) }

func (r *Registrar) emit(ev Event) {
	for _, f := range r.observe {
		f(ev)
	}
}

// serves reports whether host (a URI's, an IPv6 address in brackets as
// sipgo keeps it) is one of the domains whose AORs are ours.
func (r *Registrar) serves(host string) bool {
	return r.domains[strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))]
}

// Deferrer is implemented by a server transaction that can be answered
// after its handler returned: the stateless front's (package stateless).
// A cluster node answers a REGISTER only once its change is in Redis
// (Durable); through a Deferrer the registrar hands that wait and the
// answer to finish, which the front's worker runs after the other
// requests it took in the same round, so that the REGISTERs of one round
// wait for their batch together (one goroutine park per round rather
// than one per REGISTER). finish runs on the worker, the one goroutine
// that called the handler.
type Deferrer interface {
	// Defer arranges for finish to run later, once; false when it
	// cannot (the handler then waits itself).
	Defer(finish func()) bool
}

// ServeSIP answers a REGISTER within its server transaction; through a
// Deferrer, the answer of one whose change must be stored first comes
// later (Deferrer).
func (r *Registrar) ServeSIP(req *sip.Request, tx sip.ServerTransaction) {
	if res := r.serve(req, tx); res != nil {
		r.respond(req, tx, res)
	}
}

func (r *Registrar) respond(req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		r.log.Warn("send REGISTER response", "source", req.Source(), "status", res.StatusCode, "error", err)
	}
}

// Handle processes one REGISTER and returns the response to send. It never
// keeps the request. It returns nil for a request that must be dropped
// unanswered: one with a bare CR or LF inside a header, which any response
// would echo (see sipcheck.HasLineBreak).
func (r *Registrar) Handle(req *sip.Request) *sip.Response { return r.serve(req, nil) }

// serve is Handle; with tx a Deferrer, a REGISTER whose change must be
// stored before its 200 is finished through it, and serve returns nil.
func (r *Registrar) serve(req *sip.Request, tx sip.ServerTransaction) *sip.Response {
	start := r.now()
	ev := Event{Source: req.Source(), Transport: transportOf(req), Outcome: auth.NoCredentials}
	if sipcheck.HasLineBreak(req) {
		ev.Status, ev.Dropped = 0, true
		r.log.Debug("REGISTER dropped: line break inside a header", "source", ev.Source, "transport", ev.Transport)
		r.emit(ev)
		return nil
	}
	res, c, changed := r.process(req, &ev)
	switch {
	case changed && !c.saved.durable():
		res = r.ok(req, c.bs, c.now)
	case changed:
		if d, ok := tx.(Deferrer); ok {
			// Only a deferred REGISTER's state goes to the heap.
			later := &deferredCommit{commit: c, ev: ev, start: start}
			if d.Defer(func() {
				r.respond(req, tx, r.done(&later.ev, r.commit(req, &later.ev, &later.commit), later.start))
			}) {
				return nil
			}
		}
		res = r.commit(req, &ev, &c)
	}
	return r.done(&ev, res, start)
}

// done completes ev with res, logs it and hands it to the observers; it
// returns res.
func (r *Registrar) done(ev *Event, res *sip.Response, start time.Time) *sip.Response {
	ev.Status = res.StatusCode
	ev.Duration = r.now().Sub(start)
	r.logEvent(*ev)
	r.emit(*ev)
	return res
}

func (r *Registrar) logEvent(ev Event) {
	level := slog.LevelInfo
	if ev.Status == 401 && ev.Outcome != auth.InvalidToken {
		// A challenge: every registration starts with one. A refused
		// token is a failed attempt, logged as a wrong password's 403 is.
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if !r.log.Enabled(ctx, level) {
		return
	}
	outcome := "none"
	if ev.Checked {
		outcome = ev.Outcome.String()
	}
	r.log.Log(ctx, level, "REGISTER", "method", "REGISTER",
		"aor", ev.AOR, "source", ev.Source, "transport", ev.Transport,
		"status", ev.Status, "outcome", outcome, "duration_s", ev.Duration.Seconds())
}

// commit is a REGISTER's change of the table whose save must be stored
// before it is answered 200 (Durable): its save, the bindings to list,
// and when it was made.
type commit struct {
	saved Pending
	bs    []store.Binding
	now   time.Time
}

// deferredCommit is a commit whose answer is deferred (Deferrer), with
// the REGISTER's event and when it began.
type deferredCommit struct {
	commit
	ev    Event
	start time.Time
}

// commit answers the REGISTER whose change c is, once c is stored: no 200
// before the change is stored (a cluster node: in Redis), the location
// shard unlocked meanwhile. Not stored in time: 503, though the table
// holds the change and its save is retried.
func (r *Registrar) commit(req *sip.Request, ev *Event, c *commit) *sip.Response {
	if err := c.saved.Wait(context.Background()); err != nil {
		r.log.Debug("REGISTER answered 503: binding not stored", "aor", ev.AOR, "source", ev.Source, "error", err)
		return r.replyErr(req, &notStoredError{err: err})
	}
	return r.ok(req, c.bs, c.now)
}

// ok is the 200 listing the bindings bs as of now.
func (r *Registrar) ok(req *sip.Request, bs []store.Binding, now time.Time) *sip.Response {
	out := r.reply.New(req, 200, "OK")
	var b strings.Builder
	for _, x := range bs {
		b.Reset()
		b.WriteByte('<')
		b.WriteString(x.Contact)
		b.WriteString(">;expires=")
		b.WriteString(strconv.FormatInt(int64(x.Expires.Sub(now).Round(time.Second)/time.Second), 10))
		if x.InstanceID != "" {
			b.WriteString(";+sip.instance=")
			b.WriteString(x.InstanceID)
		}
		if x.RegID != "" {
			b.WriteString(";reg-id=")
			b.WriteString(x.RegID)
		}
		out.AppendHeader(sip.NewHeader("Contact", b.String()))
	}
	out.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http1123)))
	return out
}

// process processes a REGISTER up to its answer: a refusal, or (true)
// the change it made, answered 200 once stored (commit).
func (r *Registrar) process(req *sip.Request, ev *Event) (*sip.Response, commit, bool) {
	if !sipcheck.Version(req) {
		return r.reply.New(req, 505, "Version Not Supported"), commit{}, false
	}
	to, from, callID, cseq := req.To(), req.From(), req.CallID(), req.CSeq()
	switch {
	case to == nil:
		return r.reply.New(req, 400, "Missing To Header"), commit{}, false
	case from == nil:
		return r.reply.New(req, 400, "Missing From Header"), commit{}, false
	case callID == nil || callID.Value() == "":
		return r.reply.New(req, 400, "Missing Call-ID Header"), commit{}, false
	case cseq == nil:
		return r.reply.New(req, 400, "Missing CSeq Header"), commit{}, false
	case cseq.MethodName != sip.REGISTER:
		return r.reply.New(req, 400, "CSeq Method Does Not Match"), commit{}, false
	}
	if name := sipcheck.Duplicate(req); name != "" {
		return r.reply.New(req, 400, "Duplicate "+name+" Header"), commit{}, false
	}
	// RFC 3261 10.3 step 1: the Request-URI names the registrar's domain
	// (the To names the AOR, checked below).
	switch u := &req.Recipient; {
	case u.Scheme != "sip" && u.Scheme != "sips":
		return r.reply.New(req, 416, "Unsupported URI Scheme"), commit{}, false
	case u.Host == "":
		return r.reply.New(req, 400, "Malformed Request-URI"), commit{}, false
	case !r.serves(u.Host):
		return r.reply.New(req, 404, "Domain Not Served Here"), commit{}, false
	}
	// RFC 3261 10.3 step 2 (8.2.2.3): a REGISTER requiring an extension we
	// do not implement gets 420, with the tags in Unsupported.
	if tags := sipcheck.Unsupported(req, "Require"); tags != nil {
		return sipcheck.BadExtension(r.reply.New(req, 420, "Bad Extension"), tags), commit{}, false
	}
	// RFC 3261 19.1.4: sip:%61lice@ is alice (sipgo keeps the escapes).
	aor := sipuri.UnescapeUser(to.Address.User)
	ev.AOR = aor
	if aor == "" {
		return r.reply.New(req, 404, "No User In To Header"), commit{}, false
	}
	// RFC 3261 10.3 steps 1 and 5: the AOR must be in a domain we serve. A
	// newcomer often types the server's address as the domain.
	if !r.serves(to.Address.Host) {
		return r.reply.New(req, 404, "Domain Not Served Here"), commit{}, false
	}

	// Step 3 (RFC 3261 22): authenticate. A refusal, whatever its cause,
	// is auth's one answer for it (auth.Outcome.Answer).
	res := r.auth.CheckSIP(req, auth.Registrar)
	ev.Outcome, ev.Username, ev.Scheme, ev.Checked = res.Outcome, res.Username, res.Scheme, true
	if res.Outcome != auth.OK {
		return r.auth.Refuse(r.reply, req, auth.Registrar, res, aor), commit{}, false
	}
	ev.Authenticated = true
	cred := res.Credential
	// Step 6: the authenticated user may bind only its own AOR.
	if aor != cred.Username {
		return r.reply.New(req, 403, "Not Allowed To Register This AOR"), commit{}, false
	}

	contacts, err := r.parseContacts(req)
	if err != nil {
		return r.replyErr(req, err), commit{}, false
	}
	now := r.now()
	if !res.TokenExpires.IsZero() {
		// A registration never outlives the token it was made with
		// (the client re-registers with a fresh one).
		// A token past its exp but within jwt.leeway authenticates (an
		// INVITE goes on with it), but leaves no time to bind: refused as
		// the expired token it is, and logged and counted as one.
		left := res.TokenExpires.Sub(now).Truncate(time.Second)
		if left <= 0 {
			res.Outcome = auth.InvalidToken
			ev.Outcome, ev.Authenticated = auth.InvalidToken, false
			return r.auth.Refuse(r.reply, req, auth.Registrar, res, aor), commit{}, false
		}
		for i := range contacts {
			if contacts[i].expires > left {
				contacts[i].expires = left
			}
		}
	}
	var bs []store.Binding
	var saved Pending
	if res.Repeat {
		// A retransmission of a REGISTER whose nonce count was accepted
		// (its answer was lost: the stateless path has no transaction to
		// absorb it, RFC 3261 section 17.2.2). Applying it again would fail
		// step 7 (CSeq not higher); a stateful registrar would resend its
		// 200. So it gets a 200 listing the bindings as they are, changing
		// nothing, when what it binds is still bound from its source and
		// what it removes is gone; else it is the replay its count says.
		bs = r.loc.Lookup(aor)
		if !stillBound(bs, contacts, req, callID.Value()) {
			res.Outcome, res.Repeat = auth.Replay, false
			ev.Outcome, ev.Authenticated = auth.Replay, false
			return r.auth.Refuse(r.reply, req, auth.Registrar, res, aor), commit{}, false
		}
		saved = r.loc.Pending()
	} else {
		others, limit, err := r.connectionBindings(cred, aor)
		if err != nil {
			return r.replyErr(req, err), commit{}, false
		}
		if bs, saved, err = r.apply(aor, cred, res.TokenIssuedAt, req, contacts, now, ev, others, limit); err != nil {
			return r.replyErr(req, err), commit{}, false
		}
	}
	return nil, commit{saved: saved, bs: bs, now: now}, true
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

// contact is one Contact of a REGISTER, validated.
type contact struct {
	uri      string
	key      uriKey
	expires  time.Duration
	instance string
	regID    string
}

// parseContacts applies RFC 3261 10.3 step 6 to the request's Contacts.
// No Contact at all is a query and yields an empty slice.
func (r *Registrar) parseContacts(req *sip.Request) ([]contact, error) {
	hs := headersNamed(req, "Contact")
	headerExp, hasHeaderExp := time.Duration(0), false
	// Expires is not a list (RFC 3261 sections 7.3.1 and 20.19): two of
	// them are malformed, and which one counts would depend on who reads
	// the request ("Expires: 0" then "Expires: 3600" with "Contact: *").
	var expires sip.Header
	for _, h := range req.Headers() {
		if strings.EqualFold(h.Name(), "Expires") {
			if expires != nil {
				return nil, reply.Errorf(400, "Duplicate Expires Header")
			}
			expires = h
		}
	}
	if h := expires; h != nil {
		v, ok := parseSeconds(h.Value())
		if !ok {
			return nil, reply.Errorf(400, "Invalid Expires Header")
		}
		headerExp, hasHeaderExp = v, true
	}
	out := make([]contact, 0, len(hs))
	for _, h := range hs {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			return nil, reply.Errorf(400, "Malformed Contact Header")
		}
		if ch.Address.Wildcard {
			// Contact: * only alone and with Expires: 0.
			if len(hs) != 1 || !hasHeaderExp || headerExp != 0 || hasParam(ch.Params, "expires") {
				return nil, reply.Errorf(400, "Wildcard Contact Requires Expires 0 And No Other Contact")
			}
			return []contact{{uri: "*"}}, nil
		}
		if ch.Address.Host == "" {
			return nil, reply.Errorf(400, "Malformed Contact URI")
		}
		c := contact{uri: ch.Address.String(), key: keyOf(&ch.Address)}
		if strings.ContainsAny(c.uri, "\r\n<>") {
			return nil, reply.Errorf(400, "Malformed Contact URI")
		}
		// Syntax before policy: a bad q is a 400 at once, not after a
		// 423 and its retry.
		if v, ok := param(ch.Params, "q"); ok && !validQ(v) {
			return nil, reply.Errorf(400, "Invalid Contact q Parameter")
		}
		for _, o := range out {
			// The second copy would fail step 7 against the first (same
			// Call-ID and CSeq), which the client would read as a CSeq
			// out of order.
			if sameURI(o.key, c.key) {
				return nil, reply.Errorf(400, "Duplicate Contact")
			}
		}
		switch v, ok := param(ch.Params, "expires"); {
		case ok:
			e, valid := parseSeconds(v)
			if !valid {
				return nil, reply.Errorf(400, "Invalid Contact Expires Parameter")
			}
			c.expires = e
		case hasHeaderExp:
			c.expires = headerExp
		default:
			c.expires = r.cfg.DefaultExpires
		}
		if c.expires != 0 && c.expires < r.cfg.MinExpires {
			return nil, reply.Errorf(423, "Interval Too Brief",
				sip.NewHeader("Min-Expires", strconv.Itoa(int(r.cfg.MinExpires/time.Second))))
		}
		if c.expires > r.cfg.MaxExpires {
			c.expires = r.cfg.MaxExpires
		}
		if c.expires > 0 && r.cfg.JitterPercent > 0 {
			max := int64(c.expires/time.Second) * int64(r.cfg.JitterPercent) / 100
			if max > 0 {
				c.expires -= time.Duration(mrand.Int64N(max+1)) * time.Second
			}
		}
		if v, ok := param(ch.Params, "+sip.instance"); ok && safeInstance(v) {
			c.instance = v
		}
		if v, ok := param(ch.Params, "reg-id"); ok && safeParam(v) {
			c.regID = v
		}
		for _, o := range out {
			// One device's flow twice (RFC 5626 section 6): match would
			// take both for one binding, and the second would fail step 7
			// against the first as a CSeq out of order.
			if c.instance != "" && o.instance == c.instance && o.regID == c.regID {
				return nil, reply.Errorf(400, "Duplicate Contact")
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// param returns the value of ps's parameter name, whose name is matched
// without regard to case (RFC 3261 7.3.1: ";EXPIRES=120" is an expires
// parameter; sipgo's Get compares exactly).
func param(ps sip.HeaderParams, name string) (string, bool) {
	for _, kv := range ps {
		if strings.EqualFold(kv.K, name) {
			return kv.V, true
		}
	}
	return "", false
}

func hasParam(ps sip.HeaderParams, name string) bool {
	_, ok := param(ps, name)
	return ok
}

// validQ reports whether v is a qvalue (RFC 3261 section 25.1): 0 to 1
// ("0.5", "1.000"; not "2", "1.5", "-0"). More than the grammar's three
// decimals pass ("0.1234"): a phone that writes them means a q, not an
// error.
func validQ(v string) bool {
	whole, frac, _ := strings.Cut(v, ".") // "0." is one too
	if whole != "0" && whole != "1" {
		return false
	}
	for _, d := range frac {
		if d < '0' || d > '9' || (whole == "1" && d != '0') {
			return false
		}
	}
	return true
}

func safeParam(v string) bool { return v != "" && !strings.ContainsAny(v, "\r\n;,<>") }

// safeInstance accepts a +sip.instance value: a token, or the quoted
// string RFC 5626 section 4.1 gives it ("<urn:uuid:...>", as JsSIP,
// baresip and linphone send it), whose angle brackets safeParam refuses.
func safeInstance(v string) bool {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		in := v[1 : len(v)-1]
		return in != "" && !strings.ContainsAny(in, "\"\\\r\n")
	}
	return safeParam(v)
}

// parseSeconds parses a delta-seconds value (RFC 3261 25.1); values above
// 2^32-1 are taken as 2^32-1 (RFC 3261 20.19).
func parseSeconds(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<32 {
			n = n*10 + uint64(c-'0')
		}
	}
	if n > 1<<32-1 {
		n = 1<<32 - 1
	}
	return time.Duration(n) * time.Second, true
}

// apply performs RFC 3261 10.3 steps 7 and 8 atomically on the table.
//
// others and limit are the bindings of the credential's connection under
// other AORs and its max_registrations (0: none): a REGISTER that adds a
// binding past it gets 403 (refreshes and removals always pass).
//
// The Pending returned is the change's save (for a query, every save so
// far: the listed bindings may include one not stored yet).
func (r *Registrar) apply(aor string, cred store.Credential, tokenIssued time.Time, req *sip.Request, cs []contact, now time.Time, ev *Event, others, limit int) ([]store.Binding, Pending, error) {
	if len(cs) == 0 { // a query: list the current bindings
		return r.loc.Lookup(aor), r.loc.Pending(), nil
	}
	callID := req.CallID().Value()
	seq := req.CSeq().SeqNo
	ua := ""
	if h := firstHeader(req, "User-Agent"); h != nil {
		ua = sanitize(h.Value(), 256)
	}
	var counts Event
	bs, saved, err := r.loc.Update(aor, func(cur []store.Binding) ([]store.Binding, error) {
		counts = Event{}
		if cs[0].uri == "*" {
			for _, b := range cur {
				if b.CallID == callID && seq <= b.CSeq {
					return nil, reply.Errorf(400, "CSeq Not Higher Than Binding's")
				}
			}
			counts.Removed, counts.Gone = len(cur), cur
			return nil, nil
		}
		next := make([]store.Binding, len(cur), len(cur)+len(cs))
		copy(next, cur)
		for _, c := range cs {
			i := match(next, c, callID, len(cs) == 1 && c.expires != 0)
			if i >= 0 {
				b := &next[i]
				// Step 7: same Call-ID and a CSeq not higher: out of order.
				if b.CallID == callID && seq <= b.CSeq {
					return nil, reply.Errorf(400, "CSeq Not Higher Than Binding's")
				}
				if c.expires == 0 {
					counts.Gone = append(counts.Gone, *b)
					next = append(next[:i], next[i+1:]...)
					counts.Removed++
					continue
				}
				r.fill(b, c, cred, tokenIssued, req, callID, seq, ua, now)
				counts.Refreshed++
				continue
			}
			if c.expires == 0 {
				continue // removing what is not there is a no-op
			}
			b := store.Binding{ID: newID(), AOR: keptAOR(next, aor), RegisteredAt: now}
			r.fill(&b, c, cred, tokenIssued, req, callID, seq, ua, now)
			next = append(next, b)
			counts.Added++
		}
		// Last device wins: drop the bindings refreshed least recently.
		for len(next) > r.cfg.MaxContacts {
			oldest := 0
			for i := range next {
				if next[i].UpdatedAt.Before(next[oldest].UpdatedAt) {
					oldest = i
				}
			}
			counts.Gone = append(counts.Gone, next[oldest])
			next = append(next[:oldest], next[oldest+1:]...)
			counts.Replaced++
		}
		if limit > 0 && counts.Added > counts.Replaced && others+len(next) > limit {
			return nil, reply.Errorf(403, reasonConnectionRegistrations)
		}
		return next, nil
	})
	if err != nil {
		return nil, Pending{}, err
	}
	ev.Added, ev.Refreshed, ev.Removed, ev.Replaced = counts.Added, counts.Refreshed, counts.Removed, counts.Replaced
	ev.Gone = counts.Gone
	ev.Bound = bs
	return bs, saved, nil
}

// fill sets b from the REGISTER req. A binding outlives its request, and
// the request's strings may be parts of its whole text (package sipparse):
// b keeps a copy of each, or the one it had when equal (a refresh: no
// allocation), never a part that would keep the message alive.
func (r *Registrar) fill(b *store.Binding, c contact, cred store.Credential, tokenIssued time.Time, req *sip.Request, callID string, seq uint32, ua string, now time.Time) {
	tp := transportOf(req)
	b.CredentialID = cred.ID
	b.Contact = c.uri // made by Uri.String: its own
	b.Source = req.Source()
	b.Transport = tp
	b.LocalAddr = r.cfg.LocalAddrs[tp]
	b.CallID = kept(b.CallID, callID)
	b.CSeq = seq
	b.Expires = now.Add(c.expires)
	b.UserAgent = kept(b.UserAgent, ua)
	b.InstanceID = kept(b.InstanceID, c.instance)
	b.RegID = kept(b.RegID, c.regID)
	b.UpdatedAt = now
	b.TokenIssuedAt = tokenIssued // zero: a password's
}

// kept returns old when it equals s, else a copy of s.
func kept(old, s string) string {
	if old == s {
		return old
	}
	return strings.Clone(s)
}

// keptAOR returns the AOR string of the set's bindings, or a copy of aor
// (see fill).
func keptAOR(set []store.Binding, aor string) string {
	for _, b := range set {
		if b.AOR == aor {
			return b.AOR
		}
	}
	return strings.Clone(aor)
}

// stillBound reports whether the bindings cur still are what the REGISTER
// req (callID), asking for cs, made them, as far as a retransmission of it
// may be told: each contact it binds is bound, from its source and over
// its transport (a refresh since by the same device, with a later CSeq or
// another Call-ID, keeps it so: a load generator re-registering a user
// every fraction of a second does that), and none it removes or replaces
// (a wildcard) is there. Only a device at the request's source is told
// its bindings again.
func stillBound(cur []store.Binding, cs []contact, req *sip.Request, callID string) bool {
	if len(cs) > 0 && cs[0].uri == "*" {
		return len(cur) == 0
	}
	src, tp := req.Source(), transportOf(req)
	for _, c := range cs {
		i := match(cur, c, callID, len(cs) == 1 && c.expires != 0)
		switch {
		case i < 0:
			if c.expires != 0 {
				return false
			}
		case c.expires == 0:
			return false
		default:
			b := &cur[i]
			if b.Contact != c.uri || b.Source != src || b.Transport != tp {
				return false
			}
		}
	}
	return true
}

// match finds the binding of the same device: same +sip.instance (and
// reg-id, RFC 5626 section 6), else the same Contact URI (RFC 3261 10.3
// step 7), else, when single (a REGISTER adding or refreshing one
// contact), the same Call-ID (a device whose address changed keeps its
// Call-ID: RFC 3261 10.2.4). A removal (expires 0) matches by URI or
// instance only: by Call-ID, a phone that registered its new address and
// then removed its old one (the usual order after an address change) had
// its new binding removed.
func match(bs []store.Binding, c contact, callID string, single bool) int {
	if c.instance != "" {
		for i, b := range bs {
			if b.InstanceID == c.instance && b.RegID == c.regID {
				return i
			}
		}
	}
	for i, b := range bs {
		if b.InstanceID != "" && c.instance != "" {
			continue // instance ids decide for devices that send them
		}
		// The same text is the same URI, without parsing it again: a
		// refresh sends the Contact it sent before, and the parse was
		// 4% of what a REGISTER allocates.
		if b.Contact == c.uri {
			return i
		}
		if k, ok := parseKey(b.Contact); ok && sameURI(k, c.key) {
			return i
		}
	}
	if single {
		for i, b := range bs {
			if b.CallID == callID {
				return i
			}
		}
	}
	return -1
}

// uriKey holds what RFC 3261 19.1.4 compares of a Contact URI: the
// scheme (a SIP and a SIPS URI are never equivalent), the user (case-
// sensitive, escapes decoded) and password, the host (case-insensitive)
// and the port (an omitted port is not 5060), the URI parameters and
// the header components (?...) (sameURI).
type uriKey struct {
	scheme, user, password, host string
	port                         int
	params, headers              sip.HeaderParams
}

func keyOf(u *sip.Uri) uriKey {
	return uriKey{
		scheme: strings.ToLower(u.Scheme), user: sipuri.UnescapeUser(u.User), password: u.Password,
		host: strings.ToLower(u.Host), port: u.Port, params: u.UriParams, headers: u.Headers,
	}
}

// strictParam reports whether a URI parameter must be in both URIs or in
// neither (RFC 3261 19.1.4); any other parameter is compared only when
// both URIs have it.
func strictParam(name string) bool {
	switch strings.ToLower(name) {
	case "user", "ttl", "method", "maddr", "transport":
		return true
	}
	return false
}

// sameURI reports whether two Contact URIs are equivalent (RFC 3261
// 19.1.4): they name one binding. Parameter names and values compare
// case-insensitively.
func sameURI(a, b uriKey) bool {
	if a.scheme != b.scheme || a.user != b.user || a.password != b.password || a.host != b.host || a.port != b.port {
		return false
	}
	for _, kv := range a.params {
		v, ok := param(b.params, kv.K)
		if ok && !strings.EqualFold(v, kv.V) {
			return false
		}
		if !ok && strictParam(kv.K) {
			return false
		}
	}
	for _, kv := range b.params {
		if _, ok := param(a.params, kv.K); !ok && strictParam(kv.K) {
			return false
		}
	}
	// Header components must be in both, and match (19.1.4).
	if len(a.headers) != len(b.headers) {
		return false
	}
	for _, kv := range a.headers {
		if v, ok := param(b.headers, kv.K); !ok || !strings.EqualFold(v, kv.V) {
			return false
		}
	}
	return true
}

func parseKey(s string) (uriKey, bool) {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return uriKey{}, false
	}
	return keyOf(&u), true
}

func transportOf(req *sip.Request) string {
	return strings.ToLower(req.Transport())
}

func headersNamed(req *sip.Request, name string) []sip.Header {
	var out []sip.Header
	for _, h := range req.Headers() {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

func firstHeader(req *sip.Request, name string) sip.Header {
	for _, h := range req.Headers() {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sanitize bounds a value copied from the network and drops control
// characters, so that it can never break a header or a log line.
func sanitize(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// replyErr answers err: a reply.StatusError with its status, anything
// else (a store failure) with 500, logged.
func (r *Registrar) replyErr(req *sip.Request, err error) *sip.Response {
	if _, ok := errors.AsType[reply.StatusError](err); !ok {
		r.log.Error("REGISTER failed", "source", req.Source(), "error", err)
	}
	return r.reply.Error(req, err)
}

// notStoredError is a REGISTER's change that the table holds but whose
// save was not stored in time (Durable): answered 503 with Retry-After,
// like every REGISTER while a cluster's Redis is down, never 200.
type notStoredError struct{ err error }

var _ reply.StatusError = (*notStoredError)(nil)

func (e *notStoredError) Error() string { return "binding not stored: " + e.err.Error() }
func (e *notStoredError) Unwrap() error { return e.err }

// SIPStatus is 503: try again once the store takes writes.
func (e *notStoredError) SIPStatus() (int, string) { return 503, "Service Unavailable" }

// SIPHeaders is Retry-After: 5, as the cluster gate's 503.
func (e *notStoredError) SIPHeaders() []sip.Header {
	return []sip.Header{sip.NewHeader("Retry-After", "5")}
}
