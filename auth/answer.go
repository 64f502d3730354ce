package auth

import (
	"encoding/binary"
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
)

// Side is the role that asks a request for credentials (RFC 3261 22): the
// registrar as a UAS (401 with WWW-Authenticate; the client answers in
// Authorization) or the proxy (407 with Proxy-Authenticate; the client
// answers in Proxy-Authorization).
type Side uint8

const (
	Registrar Side = iota
	Proxy
)

// sides holds each side's header names and statuses.
var sides = [...]struct {
	credentials, challenge string
	code                   int
	reason, malformed      string
}{
	Registrar: {"Authorization", "WWW-Authenticate", 401, "Unauthorized", "Malformed Authorization Header"},
	Proxy:     {"Proxy-Authorization", "Proxy-Authenticate", 407, "Proxy Authentication Required", "Malformed Proxy-Authorization Header"},
}

// CredentialsHeader is the header a client puts its credentials in.
func (s Side) CredentialsHeader() string { return sides[s].credentials }

// Answer is how a request is told that its check did not give OK: a fresh
// challenge, or a status.
type Answer struct {
	// Challenge answers 401/407 with a fresh challenge; Stale and
	// InvalidToken set its parameters (RFC 7616 3.3 stale=true, RFC 6750
	// 3.1 error="invalid_token").
	Challenge, Stale, InvalidToken bool
	// Code and Reason, when Challenge is false; Malformed says to use the
	// side's "Malformed ... Header" reason.
	Code      int
	Reason    string
	Malformed bool
	// RetryAfter, in seconds, when not 0, is sent in a Retry-After header
	// (RFC 3261 20.33).
	RetryAfter int
}

// answers is the one table from an outcome to what the peer is told,
// shared by the registrar and the proxy. Every refusal after a checked
// answer is the same 403 Forbidden, whatever its cause: a wrong password,
// an unknown user, a disabled or expired credential, an address outside
// the connection's allow-list. A distinct reason phrase for a correct
// password that is refused for another reason would tell the sender that
// the password was right (a password oracle). The cause goes to the logs
// and metrics (Outcome.String), never to the peer.
var answers = [...]Answer{
	OK:            {},
	NoCredentials: {Challenge: true},
	BadNonce:      {Challenge: true},
	Stale:         {Challenge: true, Stale: true},
	// A replayed nonce count: challenge again with stale=true, after which
	// a client that merely retransmitted answers with the next count.
	Replay:       {Challenge: true, Stale: true},
	InvalidToken: {Challenge: true, InvalidToken: true},
	Malformed:    {Code: 400, Malformed: true},
	Mismatch:     {Code: 403, Reason: "Forbidden"},
	UnknownUser:  {Code: 403, Reason: "Forbidden"},
	Disabled:     {Code: 403, Reason: "Forbidden"},
	Expired:      {Code: 403, Reason: "Forbidden"},
	ACLDenied:    {Code: 403, Reason: "Forbidden"},
	Inactive:     {Code: 403, Reason: "Forbidden"},
	// Checked before the response, so it tells nothing of the password.
	URIMismatch: {Code: 400, Reason: "Digest URI Does Not Match Request-URI"},
	// The state the answer is checked against is out of reach: try again
	// in a few seconds (the cluster gate's own answer while Redis is down).
	Unavailable: {Code: 503, Reason: "Service Unavailable", RetryAfter: 5},
}

// Answer returns how a request whose check gave o is answered; the zero
// Answer for OK.
func (o Outcome) Answer() Answer {
	if int(o) < len(answers) {
		return answers[o]
	}
	return Answer{Code: 403, Reason: "Forbidden"}
}

// Refuse builds the answer to req, whose check gave res (not OK), on
// side: a challenge for user (whose credential's algorithms apply, see
// Challenges), or the status of the outcome's Answer.
func (a *Authenticator) Refuse(b reply.Builder, req *sip.Request, side Side, res Result, user string) *sip.Response {
	ans := res.Outcome.Answer()
	s := sides[side]
	if !ans.Challenge {
		reason := ans.Reason
		if ans.Malformed {
			reason = s.malformed
		}
		out := b.New(req, ans.Code, reason)
		if ans.RetryAfter > 0 {
			out.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(ans.RetryAfter)))
		}
		return out
	}
	out := b.New(req, s.code, s.reason)
	for _, v := range a.ChallengesFor(user, strings.ToLower(req.Transport()), ans.Stale, ans.InvalidToken) {
		out.AppendHeader(sip.NewHeader(s.challenge, v))
	}
	return out
}

// CheckSIP checks the credentials req carries for side (every
// Authorization or Proxy-Authorization header; RFC 3261 22.4 picks the one
// for our realm).
//
// On the proxy side, a request without Proxy-Authorization is checked by
// the Bearer token of its Authorization header, if any: JsSIP's
// authorization_jwt sends "Authorization: Bearer" on every request,
// INVITE included, never Proxy-Authorization.
func (a *Authenticator) CheckSIP(req *sip.Request, side Side) Result {
	creds := headerValues(req, sides[side].credentials)
	if side == Proxy && len(creds) == 0 {
		for _, v := range headerValues(req, "Authorization") {
			if _, ok := bearerToken(v); ok {
				creds = append(creds, v)
			}
		}
	}
	var id uint16
	if side == Registrar && len(creds) > 0 {
		// Answered without a transaction (package stateless); only a
		// request with credentials has a nonce count to repeat, so the
		// first legs, half of all REGISTERs, skip the hash.
		id = a.RequestID(req)
	}
	return a.Check(Request{
		Method:        string(req.Method),
		Authorization: creds,
		Body:          req.Body(),
		Source:        req.Source(),
		Transport:     strings.ToLower(req.Transport()),
		URI:           &req.Recipient,
		ID:            id,
	})
}

// RequestID identifies req among its retransmissions: a 16-bit hash
// (never 0) of its top Via's branch, Call-ID and CSeq number, which a
// retransmission repeats and another request does not (RFC 3261 section
// 17.2.3 matches a request to its transaction by the branch).
func (a *Authenticator) RequestID(req *sip.Request) uint16 {
	var h maphash.Hash
	h.SetSeed(a.seed)
	if via := req.Via(); via != nil {
		b, _ := via.Params.Get("branch")
		h.WriteString(b)
	}
	h.WriteByte(0)
	if id := req.CallID(); id != nil {
		h.WriteString(id.Value())
	}
	if cs := req.CSeq(); cs != nil {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], cs.SeqNo)
		h.Write(n[:])
	}
	return uint16(h.Sum64()) | 1
}

// headerValues returns the values of every header called name. sipgo's
// GetHeaders lower-cases the name of every header of the message, which
// allocates for each header it does not know: this does not.
func headerValues(req *sip.Request, name string) []string {
	var out []string
	for _, h := range req.Headers() {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h.Value())
		}
	}
	return out
}
