package stateless

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/sipparse"
)

// The first INVITE of a call, answered without a transaction.
//
// Such an INVITE carries no credentials, and the proxy answers it with a
// 407 challenge and nothing else. Through sipgo that answer costs a server
// transaction that, over UDP, lives until Timer H and Timer I have run
// (37 s) to retransmit the 407 and absorb its ACK. The front answers it
// as a stateless UAS (RFC 3261 section 8.2.7), as Kamailio does with
// sl_send_reply: no provisional response, no retransmission of the 407
// (the client retransmits its INVITE until an answer comes, and each
// retransmission simply gets another 407), and the ACK of the 407 is
// ignored: taken out of the stream here, so that it reaches neither sipgo
// nor the proxy.
//
// That ACK is recognised by the To tag of the 407 (RFC 3261 17.1.1.3:
// the ACK of a non-2xx final response carries the To of the response,
// and the Call-ID, From, CSeq number and top Via branch of the INVITE).
// The tag is an HMAC of those fields under a key of the process, so that
// the same INVITE always gets the same tag (section 8.2.7 asks a
// stateless UAS for that) and a tag cannot be forged without the key.
// An ACK whose tag does not verify goes to sipgo as before.
//
// The decision is made on the reader's goroutine, where sipgo would parse
// the message anyway: a message the front does not take must reach sipgo
// in order, so it cannot come back from a worker.

// Challenger decides which INVITEs the front answers: *proxy.Proxy.
type Challenger interface {
	// ByAddress reports whether requests from source (ip:port) are
	// authenticated by their address alone (trusted peers, ip
	// connections): never challenged.
	ByAddress(source string) bool
	// Challengeable reports whether the proxy would answer req with its
	// 407 challenge and do nothing else.
	Challengeable(req *sip.Request) bool
	// Refusal returns the answer the proxy would give req, an INVITE,
	// before authenticating or forwarding anything (483, 403 Preloaded
	// Route Denied, 481...); nil when it would go further. The front
	// sends it without a transaction: through sipgo's, each was sent 11
	// times over 32 s to a source that never ACKed, a reflection.
	Refusal(req *sip.Request) *sip.Response
}

// tagPrefix starts the To tag of every answer the front gives an INVITE:
// only ACKs holding it are parsed to be checked.
const tagPrefix = "swsl"

type invites struct {
	h        Handler
	refuse   Handler // answers what Challenger.Refusal refuses
	c        Challenger
	key      []byte
	parser   *sip.Parser // sipgo's parser is safe for concurrent use
	answered atomic.Uint64
	absorbed atomic.Uint64
}

// ChallengeInvites makes the front answer the INVITEs c finds
// challengeable with h (the admission chain around
// proxy.Proxy.ServeChallenge, as around the proxy's own handler), those c
// refuses before authentication with refuse (the chain around
// proxy.Proxy.ServeRefusal), and absorb the ACKs of those answers.
// Without it INVITEs and ACKs all go to sipgo. Call it before the wrapped
// sockets are served.
func (f *Front) ChallengeInvites(h, refuse Handler, c Challenger) {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read does not fail (Go 1.24)
	f.inv = &invites{h: h, refuse: refuse, c: c, key: key, parser: sipparse.SipgoParser()}
}

// Challenged returns how many INVITEs the front answered.
func (f *Front) Challenged() uint64 {
	if f.inv == nil {
		return 0
	}
	return f.inv.answered.Load()
}

// ACKsAbsorbed returns how many ACKs of the front's answers it absorbed.
func (f *Front) ACKsAbsorbed() uint64 {
	if f.inv == nil {
		return 0
	}
	return f.inv.absorbed.Load()
}

// take reports whether msg, read by a wrapper, was taken off sipgo's
// path: a REGISTER queued for a worker, a first INVITE queued to be
// challenged, the ACK of such a challenge absorbed, a malformed request
// answered 400 or a datagram over Config.MaxMessageBytes answered 513
// (suspect.go). false: sipgo gets msg (also when the workers
// have no room: the stateful path takes it).
func (f *Front) take(msg []byte, j job) bool {
	upperVersion(msg) // suspect.go
	switch {
	case j.conn == nil && len(msg) > f.cfg.MaxMessageBytes:
		// A datagram over the limit: answered 513 (RFC 3261 21.5.11), or
		// dropped (a stream's message is answered by its framer, which
		// then ends the stream).
		f.answerHead(msg, j, 513, "Message Too Large")
		return true
	case isRegister(msg) && f.answersRegister(&j):
		if f.dispatch(msg, j) {
			return true
		}
		if j.conn == nil {
			// No worker has room: over UDP the datagram is dropped (the
			// client retransmits) rather than handed to sipgo, whose
			// transaction per request is what overload must not pay.
			// Streams are never dropped (no retransmission there).
			f.shed(ShedQueueFull)
			return true
		}
		return false
	case f.inv == nil: // INVITEs and ACKs are sipgo's
	case bytes.HasPrefix(msg, []byte("INVITE ")):
		if (f.overloaded() && f.refuseNewInvite(msg, j)) || f.takeInvite(msg, j) {
			return true
		}
	case bytes.HasPrefix(msg, []byte("ACK ")):
		return f.absorbACK(msg, j)
	}
	return f.answerMalformed(msg, j) // suspect.go
}

func (j *job) source() string {
	if j.conn != nil {
		return j.conn.src
	}
	return j.addr.String()
}

// takeInvite queues a challengeable INVITE, or one the proxy refuses
// before authentication, parsed, for a worker.
func (f *Front) takeInvite(msg []byte, j job) bool {
	creds, hint := inviteHints(msg)
	if creds && !hint {
		return false // the second INVITE of a call: sipgo's, unparsed here
	}
	source := j.source()
	if f.inv.c.ByAddress(source) {
		return false
	}
	m, err := f.inv.parser.ParseSIP(msg)
	if err != nil {
		return false // sipgo refuses it in its own way
	}
	req, ok := m.(*sip.Request)
	if !ok || req.Via() == nil {
		return false
	}
	req.SetSource(source)
	req.SetTransport(j.transport)
	switch {
	case !creds && f.inv.c.Challengeable(req):
	case hint && f.inv.c.Refusal(req) != nil:
		j.refusal = true
	default:
		return false
	}
	j.req, j.at = req, time.Now()
	select {
	case f.jobs <- j:
		return true
	default:
		return false
	}
}

// refuseNewInvite answers an INVITE that starts a call (no To tag) 503
// Service Unavailable with a Retry-After, at once, on the reader's
// goroutine and without a transaction, when the process is overloaded
// (sojourn.go), with credentials or without. A call refused at its start
// costs a parse and a write; a call admitted into an overloaded process
// costs every call in progress their time. The answer carries the front's
// To tag, so that its ACK is absorbed like a 407's. Not refused here: a
// source authenticated by its address (a trusted peer, a trunk's
// carrier: a 503 with Retry-After makes a carrier's SBC take the whole
// route out of service, RFC 6357 section 3), and a source the admission
// chain would not answer (Config.Admit: it gets nothing). false: not
// such an INVITE (sipgo's, in order).
func (f *Front) refuseNewInvite(msg []byte, j job) bool {
	if toHasTag(msg) || f.inv.c.ByAddress(j.source()) {
		return false // inside a dialog, or a trusted peer's: sipgo's
	}
	m, err := f.inv.parser.ParseSIP(msg)
	if err != nil {
		return false
	}
	req, ok := m.(*sip.Request)
	if !ok || req.Via() == nil || req.CSeq() == nil || req.To() == nil || req.To().Params.Has("tag") {
		return false
	}
	tag, ok := f.inv.tag(req)
	if !ok {
		return false
	}
	req.SetSource(j.source())
	req.SetTransport(j.transport)
	if !f.admits(req) {
		return true // banned, or a denied User-Agent: nothing
	}
	res := f.serviceUnavailable(req)
	if to := res.To(); to != nil {
		to.Params.Add("tag", tag)
	}
	f.shed(ShedOverload)
	f.sendNow(res, j)
	return true
}

// absorbACK reports whether msg is the ACK of one of the front's answers,
// which is then dropped (RFC 3261 8.2.7: a stateless UAS ignores ACKs).
func (f *Front) absorbACK(msg []byte, j job) bool {
	if !bytes.Contains(msg, []byte(tagPrefix)) {
		return false
	}
	m, err := f.inv.parser.ParseSIP(msg)
	if err != nil {
		return false
	}
	req, ok := m.(*sip.Request)
	if !ok || req.Method != sip.ACK || req.To() == nil {
		return false
	}
	got, _ := req.To().Params.Get("tag")
	want, ok := f.inv.tag(req)
	if !ok || !hmac.Equal([]byte(got), []byte(want)) {
		return false
	}
	f.inv.absorbed.Add(1)
	f.log.Debug("ACK of a stateless answer absorbed", "source", j.source(), "transport", j.transport, "call_id", req.CallID().Value())
	return true
}

// handleInvite runs the handler for a queued INVITE on a worker and sends
// its answer, with the front's To tag.
func (f *Front) handleInvite(dg *datagrams, box *outbox, a *answer, j job) {
	if f.late(j) {
		f.refuse(dg, box, j.req, j) // a new call, which would only start late
		return
	}
	tag, ok := f.inv.tag(j.req) // before the handler adds received and rport to Via
	// A request with a To tag (in a dialog) is answered with it (RFC 3261
	// 8.2.6.2); its ACK is then sipgo's, and the proxy absorbs it.
	if to := j.req.To(); to == nil || to.Params.Has("tag") {
		ok = false
	}
	a.reset()
	a.cur = j
	if j.refusal {
		f.inv.refuse(j.req, a)
	} else {
		f.inv.h(j.req, a)
	}
	a.cur = job{}
	if a.res == nil {
		return
	}
	if to := a.res.To(); ok && to != nil {
		to.Params.Add("tag", tag)
	}
	f.inv.answered.Add(1)
	f.send(dg, box, a.res, j)
}

// tag is the To tag of the front's answer to an INVITE, and of the ACK
// of that answer: tagPrefix and an HMAC of the fields the two share
// (RFC 3261 17.1.1.3). false: a field is missing.
func (v *invites) tag(req *sip.Request) (string, bool) {
	via, from, callID, cseq := req.Via(), req.From(), req.CallID(), req.CSeq()
	if via == nil || from == nil || callID == nil || cseq == nil {
		return "", false
	}
	branch, _ := via.Params.Get("branch")
	fromTag, _ := from.Params.Get("tag")
	m := hmac.New(sha256.New, v.key)
	for _, s := range []string{callID.Value(), branch, fromTag, strconv.FormatUint(uint64(cseq.SeqNo), 10)} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return tagPrefix + hex.EncodeToString(m.Sum(sum[:0])[:10]), true
}

// toHasTag reports whether the To header of msg (To or its compact form
// t) has a tag parameter: a request inside a dialog. A cheap look before
// parsing: where it is wrong (an odd spelling), the INVITE is not
// refused and takes its usual path, or is parsed and its To checked.
func toHasTag(msg []byte) bool {
	tagged := false
	eachHeader(msg, func(name, value []byte) bool {
		if isName(name, "To", "t") {
			tagged = hasTagParam(value)
			return false
		}
		return true
	})
	return tagged
}

// hasTagParam reports whether an address header's value has a tag
// parameter (after the URI's closing '>' when there is one), in any case.
func hasTagParam(v []byte) bool {
	if i := bytes.LastIndexByte(v, '>'); i >= 0 {
		v = v[i:] // parameters of the header, not of its URI
	}
	const tag = ";tag="
	for i := 0; i+len(tag) <= len(v); i++ {
		if v[i] == ';' && bytes.EqualFold(v[i:i+len(tag)], []byte(tag)) {
			return true
		}
	}
	return false
}

// inviteHints looks at the header block of msg, an INVITE, once, before
// any parse: whether it carries credentials (Authorization or
// Proxy-Authorization: the second INVITE of a call, sipgo's), and whether
// the proxy may refuse it before authentication (a To tag, a Route, a
// Proxy-Require or Max-Forwards 0: only those are parsed here to ask
// Challenger.Refusal). Challengeable and Refusal check the parsed headers
// again.
func inviteHints(msg []byte) (credentials, refusal bool) {
	eachHeader(msg, func(name, value []byte) bool {
		switch {
		case isName(name, "Proxy-Authorization", "Authorization"):
			credentials = true
		case isName(name, "Route", "Proxy-Require"):
			refusal = true
		case isName(name, "Max-Forwards", ""):
			refusal = refusal || string(bytes.TrimSpace(value)) == "0"
		case isName(name, "To", "t"):
			refusal = refusal || hasTagParam(value)
		}
		return true
	})
	return credentials, refusal
}

// isName reports whether a header name is, in any case, long or short
// ("" for a header without a compact form).
func isName(name []byte, long, short string) bool {
	return bytes.EqualFold(name, []byte(long)) || (short != "" && bytes.EqualFold(name, []byte(short)))
}

// eachHeader calls f with the name and raw value of each line of msg's
// header block that has a colon, until f returns false.
func eachHeader(msg []byte, f func(name, value []byte) bool) {
	if end, ok := headerEnd(msg); ok && end > 0 {
		msg = msg[:end]
	}
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		if !f(bytes.TrimRight(line[:colon], " \t"), line[colon+1:]) {
			return
		}
	}
}
