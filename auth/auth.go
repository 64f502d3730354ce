// Package auth turns the credentials of a SIP request into an identity or a
// challenge. The registrar (401/WWW-Authenticate) and the proxy
// (407/Proxy-Authenticate) share it, so both apply the same algorithms,
// nonces, replay protection and outcomes.
package auth

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
)

// Credentials looks up a credential by SIP username. It returns an error
// wrapping store.ErrNotFound when there is none.
type Credentials interface {
	CredentialByUsername(username string) (store.Credential, error)
}

// Nonces issues and checks nonces. *digest.Nonces satisfies it.
type Nonces interface {
	New() string
	Check(nonce string) (digest.NonceStatus, time.Time)
	// Lifetime is how long a nonce stays valid after it is issued.
	Lifetime() time.Duration
}

// Counter accepts a nonce count only when it is higher than every count
// accepted for that nonce so far (digest.Counts.Accept's contract). It
// returns an error, and never true, when it cannot tell (a cluster's
// counts when Redis does not answer): the request is then answered
// neither OK nor as a replay (Unavailable). LocalCounts adapts a
// *digest.Counts, which always can.
type Counter interface {
	Accept(nonce string, nc uint32, expires time.Time) (bool, error)
}

// LocalCounts is the Counter of one node's own counts, in memory.
func LocalCounts(c *digest.Counts) Counter { return localCounts{c} }

type localCounts struct{ c *digest.Counts }

func (l localCounts) Accept(nonce string, nc uint32, expires time.Time) (bool, error) {
	return l.c.Accept(nonce, nc, expires), nil
}

func (l localCounts) AcceptRepeat(nonce string, nc uint32, request uint16, expires, repeatUntil time.Time) (digest.Verdict, error) {
	return l.c.AcceptRepeat(nonce, nc, request, expires, repeatUntil), nil
}

// RepeatCounter is a Counter that also tells apart a request repeating
// the count accepted last for its nonce (digest.Counts.AcceptRepeat).
// LocalCounts is one. A cluster's counts in Redis (nonce_counts: cluster)
// are not: there a retransmitted REGISTER is refused as a replay, as any
// reused count.
type RepeatCounter interface {
	Counter
	AcceptRepeat(nonce string, nc uint32, request uint16, expires, repeatUntil time.Time) (digest.Verdict, error)
}

// repeatAfterIssue is how long after its nonce was issued a request may
// repeat an accepted count as a retransmission (Request.ID): a
// client answers a challenge at once and retransmits a non-INVITE request
// for 32 s over UDP (RFC 3261 section 17.1.2.2, Timer F); twice that
// leaves room for an answer sent late under load.
const repeatAfterIssue = 64 * time.Second

var _ Nonces = (*digest.Nonces)(nil)

// Outcome is the result of checking a request's credentials. It is not an
// error: only the caller decides what each outcome answers.
type Outcome uint8

// Outcomes, in the words the metrics use.
const (
	// OK: the response is correct and the credential usable.
	OK Outcome = iota
	// NoCredentials: nothing for our realm; send a challenge.
	NoCredentials
	// Stale: correct response for an expired nonce (RFC 7616 3.3 stale=true).
	Stale
	// BadNonce: a nonce we did not issue (or another key's); challenge again.
	BadNonce
	// Replay: a nonce count not above one already accepted (RFC 7616 3.4.5).
	Replay
	// Mismatch: a wrong response (wrong password).
	Mismatch
	// UnknownUser: no such credential. Answered exactly like Mismatch.
	UnknownUser
	// Disabled: a correct response for a disabled credential.
	Disabled
	// Expired: a correct response for a credential past its expires_at.
	Expired
	// Malformed: the Authorization header cannot be parsed.
	Malformed
	// ACLDenied: a correct answer from an address outside the allowed_cidrs
	// of the credential's connection (acl.go).
	ACLDenied
	// InvalidToken: a Bearer token that does not verify, is expired or
	// revoked, or names no usable credential (RFC 6750 section 3.1).
	InvalidToken
	// URIMismatch: the digest uri names another resource than the
	// Request-URI (RFC 7616 section 3.4.6, RFC 3261 22.4): an answer
	// captured for one request replayed on another.
	URIMismatch
	// Inactive: a correct answer for a credential whose connection is
	// deactivated (active: false).
	Inactive
	// Unavailable: a correct answer whose nonce count could not be checked
	// (the cluster's Redis did not answer): neither accepted nor a replay.
	// Answered 503 with Retry-After (RFC 3261 21.5.4), like every REGISTER
	// while the node knows Redis is down: a 401 stale=true would only make
	// the client answer again into the same outage.
	Unavailable
)

var outcomeNames = [...]string{
	OK: "ok", NoCredentials: "challenge", Stale: "stale", BadNonce: "bad_nonce", Replay: "replay",
	Mismatch: "mismatch", UnknownUser: "unknown_user", Disabled: "disabled", Expired: "expired", Malformed: "malformed",
	ACLDenied: "acl", InvalidToken: "invalid_token", URIMismatch: "uri_mismatch", Inactive: "connection_inactive",
	Unavailable: "unavailable",
}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", o)
}

// Failure reports whether the outcome counts as a failed attempt (for
// brute-force accounting): a wrong answer, not a first challenge.
func (o Outcome) Failure() bool {
	switch o {
	case Mismatch, UnknownUser, Disabled, Expired, Malformed, ACLDenied, InvalidToken, URIMismatch, Inactive:
		return true
	}
	return false
}

// Config configures an Authenticator.
type Config struct {
	Realm string
	// Algorithms offered by default, in order (one challenge header each).
	Algorithms []digest.Algorithm
	// QOP values offered, e.g. ["auth"].
	QOP []string
	// Nonce issues and checks nonces: a *digest.Nonces, or a cluster's
	// (package cluster) whose epoch follows the shared one.
	Nonce Nonces
	// Count refuses replayed nonce counts: a *digest.Counts in memory, or
	// a cluster's in Redis.
	Count Counter
	Now   func() time.Time
	// Connections, when set, gives the allowed_cidrs checked after a
	// correct answer (acl.go).
	Connections Connections
	// Tokens, when set, enables RFC 8898 Bearer authentication (bearer.go).
	Tokens Tokens
	// BearerScope is the scope of the Bearer challenge. Default "sip".
	BearerScope string
	// ServerHost reports whether a host is one of this server's names or
	// addresses: a digest uri with no user part naming it is accepted
	// whatever the Request-URI (uri.go). Nil accepts none.
	ServerHost func(host string) bool
	// BearerFirst puts the Bearer challenge before the Digest ones.
	// Default false: old phones read only the first challenge.
	BearerFirst bool
	// QuietBearer accepts Bearer tokens (Tokens) without offering the
	// Bearer challenge: a client that has a token sends it unasked.
	QuietBearer bool
	// TransportAlgorithms replaces Algorithms for the requests of one
	// transport ("udp", "tcp", "tls", "ws", "wss"), offered and accepted
	// in that order; a credential's own list still wins.
	TransportAlgorithms map[string][]digest.Algorithm
}

// Authenticator checks Digest credentials against the credential store.
type Authenticator struct {
	cfg      Config
	creds    Credentials
	now      func() time.Time
	attempts []func(Attempt)
	seed     maphash.Seed // RequestID's
}

// Attempt is one checked request: what the brute-force guard, the metrics
// and the logs learn of it. It is the only place where authentication
// outcomes are reported, whatever the transport or the handler.
type Attempt struct {
	// Source is the ip:port the request came from, Transport its
	// transport ("udp", "tcp", "tls", "ws", "wss").
	Source, Transport string
	// Username is the username the credentials claimed ("" without).
	Username string
	// Scheme is "digest" or "bearer" ("" without credentials).
	Scheme  string
	Outcome Outcome
}

// OnAttempt adds f to the functions called once per Check, in the order
// added, on the caller's goroutine. f must not block. Call it before
// serving.
func (a *Authenticator) OnAttempt(f func(Attempt)) { a.attempts = append(a.attempts, f) }

// New returns an Authenticator. It fails when the configuration cannot
// produce a challenge.
func New(cfg Config, creds Credentials) (*Authenticator, error) {
	if cfg.Realm == "" || len(cfg.Algorithms) == 0 || cfg.Nonce == nil || cfg.Count == nil || creds == nil {
		return nil, errors.New("auth: realm, algorithms, nonces, counts and credentials are required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Authenticator{cfg: cfg, creds: creds, now: now, seed: maphash.MakeSeed()}, nil
}

// Realm returns the digest realm.
func (a *Authenticator) Realm() string { return a.cfg.Realm }

// Result is the outcome of Check and what the caller needs to answer it.
type Result struct {
	Outcome Outcome
	// Username is the username the client claimed (empty without credentials).
	Username string
	// Credential is set for OK, Disabled and Expired.
	Credential store.Credential
	// Algorithm used by the client, when it answered a challenge.
	Algorithm digest.Algorithm
	// Detail explains a Malformed outcome; safe to show the client.
	Detail string
	// Scheme is "digest" or "bearer" (for metrics).
	Scheme string
	// TokenExpires is the exp of the Bearer token that authenticated the
	// request: a registration must not outlive it.
	TokenExpires time.Time
	// TokenIssuedAt is that token's iat (store.TokenIssuedUnknown() when
	// it has none): the registrar keeps it on the binding, which revoking
	// the token then ends.
	TokenIssuedAt time.Time
	// Repeat: the request is the one (Request.ID) whose nonce count was
	// accepted last for its nonce, again, its nonce issued at most
	// repeatAfterIssue ago: a retransmission of an accepted request whose
	// answer was lost, or an eavesdropper's replay of it. The count was
	// not accepted again. The caller must not change anything for it: it
	// answers what the first copy's answer would say now, or refuses it
	// as a Replay.
	Repeat bool
}

// Request is what Check needs from a SIP request.
type Request struct {
	Method string
	// Authorization holds every Authorization (or Proxy-Authorization)
	// header value of the request.
	Authorization []string
	Body          []byte
	// Source is the ip:port the request came from, for allow-lists.
	Source string
	// Transport is the lowercase transport, for OnAttempt.
	Transport string
	// URI is the Request-URI, which the digest uri must name (uri.go).
	// Nil skips the comparison (tests of other rules).
	URI *sip.Uri
	// ID identifies the request among its retransmissions (RequestID),
	// for a caller that answers without a transaction layer, which would
	// absorb them (the registrar's stateless REGISTERs, RFC 3261 section
	// 8.2.7): a retransmission of a request it accepted then gets
	// Result.Repeat rather than Replay, when the Counter is a
	// RepeatCounter. 0: the caller has a transaction layer.
	ID uint16
}

// Check verifies the Digest credentials of a request. Unknown users and
// wrong passwords cost the same work (a response is computed against a
// dummy HA1), so that timing does not tell them apart. Every call is
// reported to the OnAttempt functions.
func (a *Authenticator) Check(r Request) Result {
	res := a.check(r)
	if len(a.attempts) > 0 {
		at := Attempt{Source: r.Source, Transport: r.Transport, Username: res.Username, Scheme: res.Scheme, Outcome: res.Outcome}
		for _, f := range a.attempts {
			f(at)
		}
	}
	return res
}

func (a *Authenticator) check(r Request) Result {
	var (
		c      digest.Credentials
		found  bool
		bearer string
	)
	for _, h := range r.Authorization {
		if tok, ok := bearerToken(h); ok && a.cfg.Tokens != nil {
			// Digest credentials for our realm, in any header, win (RFC
			// 3261 22.4): a Bearer header before them counted a failed
			// token and hid a correct password.
			if bearer == "" {
				bearer = tok
			}
			continue
		}
		cr, err := digest.ParseCredentials(h)
		if err != nil {
			if errors.Is(err, digest.ErrUnsupportedScheme) {
				continue // e.g. Bearer while it is off: another mechanism's business
			}
			return Result{Outcome: Malformed, Detail: err.Error()}
		}
		if cr.Realm == a.cfg.Realm { // RFC 3261 22.4: use the one for our realm
			c, found = cr, true
			break
		}
	}
	if !found {
		if bearer != "" {
			return a.checkBearer(bearer, r)
		}
		return Result{Outcome: NoCredentials}
	}
	res := Result{Username: c.Username, Scheme: "digest"}
	alg, err := digest.ParseAlgorithm(c.Algorithm)
	if err != nil {
		// An algorithm we did not offer (MD5-sess, SHA-512): a well-formed
		// answer to a challenge we did not send. A new challenge names the
		// ones we take (RFC 7616 3.7); it was 400 Malformed Authorization
		// Header, counted as a failed attempt, which a phone insisting on
		// -sess turned into a ban of its own username.
		return Result{Outcome: NoCredentials, Username: c.Username, Detail: "unsupported algorithm"}
	}
	res.Algorithm = alg
	// RFC 7616 section 3.4: when the challenge offered qop, the answer
	// must carry one of the offered values with nc and cnonce. An answer
	// without qop (RFC 2069) has no nonce count, so nothing would stop
	// its replay within the nonce lifetime.
	if len(a.cfg.QOP) > 0 && !offered(a.cfg.QOP, c.QOP) {
		res.Outcome, res.Detail = Malformed, "qop missing or not offered"
		return res
	}
	if r.URI != nil && !uriMatches(c.URI, r.URI, a.cfg.ServerHost) {
		res.Outcome = URIMismatch
		return res
	}

	status, nonceExpires := a.cfg.Nonce.Check(c.Nonce)
	if status == digest.NonceInvalid {
		res.Outcome = BadNonce
		return res
	}

	name := c.Username
	if c.UserHash {
		// RFC 7616 3.4.4: the username is H(username:realm). Our
		// challenges never offer userhash, so no name is looked up as a
		// hash: the answer is an unknown user's. A plain name flagged as
		// hashed used to authenticate as that name.
		name = ""
	}
	cred, err := a.creds.CredentialByUsername(name)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		// The store failed: do not tell the client anything about the user.
		res.Outcome = UnknownUser
		res.Detail = "credential lookup failed"
		return res
	}
	ha1, usable := digest.DummyHA1(alg), false
	if known && cred.Realm == a.cfg.Realm && a.allowed(cred, alg, r.Transport) {
		ha1, usable = cred.HA1[alg.String()]
	}
	if !usable {
		ha1 = digest.DummyHA1(alg)
	}
	ok := digest.Verify(c, alg, r.Method, ha1, r.Body)
	switch {
	case !known:
		res.Outcome = UnknownUser
		return res
	case !ok || !usable:
		res.Outcome = Mismatch
		return res
	}
	res.Credential = cred
	// A credential refused with a fresh nonce is refused with a stale one
	// or a replayed count too: the same 403 as a wrong password. Its
	// state checked after those, a correct password would get a new
	// challenge (401 stale=true) where a wrong one gets 403, which tells
	// a disabled or expired credential's password, or a trunk's from
	// outside its allowed_cidrs, with one request (docs/threat-model.md).
	switch {
	case !cred.Enabled:
		res.Outcome = Disabled
		return res
	case cred.Expired(a.now()):
		res.Outcome = Expired
		return res
	}
	if out := a.checkACL(cred, r.Source); out != OK {
		res.Outcome = out
		return res
	}
	if status == digest.NonceStale {
		res.Outcome = Stale
		return res
	}
	// Replay protection needs qop's nonce count. Answers without qop pass
	// only when the server offers no qop (auth.qop: []), and are then
	// bounded by the nonce lifetime alone.
	if c.QOP != "" {
		v, err := a.accept(c, nonceExpires, r.ID)
		switch {
		case err != nil:
			// Only a correct answer gets here, so a 503 instead of a 403
			// tells that the password was right; but only for the moment
			// before the node marks Redis down, after which every REGISTER
			// and INVITE is answered 503 before authentication.
			res.Outcome, res.Detail = Unavailable, err.Error()
			return res
		case v == digest.Repeat:
			res.Repeat = true
		case v != digest.Fresh:
			res.Outcome = Replay
			return res
		}
	}
	res.Outcome = OK
	return res
}

// accept checks c's nonce count; a stateless caller's retransmission is a
// Repeat when the counts can tell.
func (a *Authenticator) accept(c digest.Credentials, expires time.Time, request uint16) (digest.Verdict, error) {
	if rc, ok := a.cfg.Count.(RepeatCounter); ok && request != 0 {
		issued := expires.Add(-a.cfg.Nonce.Lifetime())
		return rc.AcceptRepeat(c.Nonce, c.NonceCount, request, expires, issued.Add(repeatAfterIssue))
	}
	fresh, err := a.cfg.Count.Accept(c.Nonce, c.NonceCount, expires)
	if fresh {
		return digest.Fresh, err
	}
	return digest.Refused, err
}

// withHA1 is the algorithms of algs that cred has an HA1 for (an imported
// credential may have only MD5's, until its password changes), or algs
// when it has none of them: the challenge then looks like any other.
func withHA1(algs []digest.Algorithm, cred store.Credential) []digest.Algorithm {
	var out []digest.Algorithm
	for _, a := range algs {
		if cred.HA1[a.String()] != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 || len(out) == len(algs) {
		return algs
	}
	return out
}

// offered reports whether qop (case-insensitively) is one of the offered
// values.
func offered(values []string, qop string) bool {
	for _, v := range values {
		if strings.EqualFold(v, qop) {
			return true
		}
	}
	return false
}

// allowed reports whether alg is one this credential may use over
// transport.
func (a *Authenticator) allowed(cred store.Credential, alg digest.Algorithm, transport string) bool {
	name := alg.String()
	if len(cred.Algorithms) > 0 {
		for _, n := range cred.Algorithms {
			if n == name {
				return true
			}
		}
		return false
	}
	for _, x := range a.algorithms(transport) {
		if x == alg {
			return true
		}
	}
	return false
}

// algorithms returns the algorithms of transport's policy, else the
// server-wide ones.
func (a *Authenticator) algorithms(transport string) []digest.Algorithm {
	if algs, ok := a.cfg.TransportAlgorithms[transport]; ok && len(algs) > 0 {
		return algs
	}
	return a.cfg.Algorithms
}

// Challenges returns the challenge header values for user (whose
// credential's algorithm policy applies when it has one; the server-wide
// list otherwise), one per algorithm in order, sharing one fresh nonce,
// and the Bearer challenge when tokens are enabled (RFC 8898 section 2.3),
// with error="invalid_token" after a bad token (RFC 6750 section 3).
func (a *Authenticator) Challenges(user string, stale, invalidToken bool) []string {
	return a.ChallengesFor(user, "", stale, invalidToken)
}

// ChallengesFor is Challenges for a request over transport (lowercase):
// without a credential's own list, the transport's policy applies
// (Config.TransportAlgorithms), else the server-wide list.
func (a *Authenticator) ChallengesFor(user, transport string, stale, invalidToken bool) []string {
	algs := a.algorithms(transport)
	if user != "" {
		if cred, err := a.creds.CredentialByUsername(user); err == nil && len(cred.Algorithms) > 0 {
			algs = make([]digest.Algorithm, 0, len(cred.Algorithms))
			for _, n := range cred.Algorithms {
				if alg, err := digest.ParseAlgorithm(n); err == nil {
					algs = append(algs, alg)
				}
			}
		} else if err == nil {
			algs = withHA1(algs, cred)
		}
	}
	nonce := a.cfg.Nonce.New()
	out := make([]string, 0, len(algs)+1)
	bearer := a.cfg.Tokens != nil && !a.cfg.QuietBearer
	if bearer && a.cfg.BearerFirst {
		out = append(out, a.bearerChallenge(invalidToken))
	}
	for _, alg := range algs {
		out = append(out, digest.Challenge{
			Realm:     a.cfg.Realm,
			Nonce:     nonce,
			Algorithm: alg,
			QOP:       a.cfg.QOP,
			Stale:     stale,
		}.String())
	}
	if bearer && !a.cfg.BearerFirst {
		out = append(out, a.bearerChallenge(invalidToken))
		if (transport == "ws" || transport == "wss") && len(algs) > 0 {
			// The browser libraries read one challenge each, from
			// opposite ends: SIP.js the first, JsSIP the last (its
			// parser sets the header, each one replacing the one
			// before). With the Bearer challenge last, the bundled
			// /phone could not log in with a password once tokens were
			// enabled. The first Digest challenge again, after it, is
			// what each of them reads.
			out = append(out, out[0])
		}
	}
	return out
}
