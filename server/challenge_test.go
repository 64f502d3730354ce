package server_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/server"
)

// pathRecorder is an admission rule that records, for every request
// that reaches a handler, its method and whether it came through the
// stateless front (its answer is over as soon as it is made: Done is
// closed) or through a sipgo server transaction.
type pathRecorder struct {
	mu   sync.Mutex
	seen []string // "INVITE stateless", "INVITE sipgo", "ACK sipgo", ...
}

func (r *pathRecorder) middleware(next admission.Handler) admission.Handler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		path := "sipgo"
		if req.Method != sip.ACK {
			select {
			case <-tx.Done():
				path = "stateless"
			default:
			}
		}
		r.mu.Lock()
		r.seen = append(r.seen, string(req.Method)+" "+path)
		r.mu.Unlock()
		next(req, tx)
	}
}

func (r *pathRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}

// startChallengeServer starts a server in challenge mode mode, with a
// pathRecorder in its admission chain.
func startChallengeServer(t *testing.T, mode string, edit func(*config.Config)) (*testServer, *pathRecorder) {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.ChallengeMode = mode
	if edit != nil {
		edit(&cfg)
	}
	rec := &pathRecorder{}
	ts := startServer(t, cfg, server.Options{Middleware: []admission.Middleware{rec.middleware}})
	return ts, rec
}

// inviteMsg is a first INVITE from u to bob, with extra headers.
func (u *rawUA) firstInvite(callID, branch, extra string) string {
	return fmt.Sprintf("INVITE sip:bob@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n"+
		"Max-Forwards: 70\r\nTo: \"Bob\" <sip:bob@sipwarden.test>\r\nFrom: \"Alice\" <sip:alice@sipwarden.test>;tag=a-%s\r\n"+
		"Call-ID: %s\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@%s;transport=%s>\r\n%sContent-Length: 0\r\n\r\n",
		strings.ToUpper(u.transport), u.local, branch, callID, callID, u.local, u.transport, extra)
}

// ackMsg is the ACK of a non-2xx answer to inviteMsg (RFC 3261
// 17.1.1.3: the same branch, From, Call-ID and CSeq number, and the To
// of the answer).
func (u *rawUA) ackOf(callID, branch, toTag string) string {
	return fmt.Sprintf("ACK sip:bob@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n"+
		"Max-Forwards: 70\r\nTo: \"Bob\" <sip:bob@sipwarden.test>;tag=%s\r\nFrom: \"Alice\" <sip:alice@sipwarden.test>;tag=a-%s\r\n"+
		"Call-ID: %s\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n",
		strings.ToUpper(u.transport), u.local, branch, toTag, callID, callID)
}

func parseResponse(t *testing.T, raw string) *sip.Response {
	t.Helper()
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("not a response: %q", statusLine(raw))
	}
	return res
}

// challengeFields are the parts of a 407 that must not depend on the path
// that sent it: everything but the To tag and the nonce.
func challengeFields(t *testing.T, res *sip.Response, local string) []string {
	t.Helper()
	out := []string{fmt.Sprintf("%d %s", res.StatusCode, res.Reason)}
	for _, h := range res.Headers() {
		v := h.Value()
		switch strings.ToLower(h.Name()) {
		case "to":
			to := res.To()
			v = to.Address.String() + " " + to.DisplayName // the tag is compared apart
		case "proxy-authenticate":
			if m := nonceRE.FindStringSubmatch(v); m == nil || len(m[1]) < 16 {
				t.Fatalf("Proxy-Authenticate %q: no nonce", v)
			}
			v = nonceRE.ReplaceAllString(v, `nonce="NONCE"`)
		}
		// The two answers go to two sockets of the test.
		_, port, _ := net.SplitHostPort(local)
		v = strings.ReplaceAll(strings.ReplaceAll(v, local, "LOCAL"), "rport="+port, "rport=PORT")
		out = append(out, h.Name()+": "+v)
	}
	return out
}

// TestStatelessChallengeMatchesStateful: over UDP and TCP, the first
// INVITE of a call gets from the stateless front the 407 the proxy sends
// through a sipgo transaction: the same status, reason, headers in the
// same order (Via with received and rport, From, To, Call-ID, CSeq,
// Server, Proxy-Authenticate with the same parameters), only the nonce and
// the To tag differ. The stateless one never reached sipgo; a
// retransmission gets another 407 with the same To tag (RFC 3261 8.2.7).
func TestStatelessChallengeMatchesStateful(t *testing.T) {
	stateless, srec := startChallengeServer(t, "stateless", nil)
	stateful, frec := startChallengeServer(t, "stateful", nil)
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			var fields [2][]string
			callID := "cmp-" + tp + "-" + randHex(4)
			for i, s := range []*testServer{stateful, stateless} {
				u := newRawUA(t, tp, "127.0.0.1", s.Addr(tp))
				st, raw := u.exchange(u.firstInvite(callID, "cmp", ""), 3*time.Second)
				if st != "SIP/2.0 407 Proxy Authentication Required" {
					t.Fatalf("server %d: got %q, want 407", i, st)
				}
				res := parseResponse(t, raw)
				fields[i] = challengeFields(t, res, u.local)
				tag, _ := res.To().Params.Get("tag")
				if tag == "" {
					t.Fatalf("server %d: no To tag in %q", i, raw)
				}
				if i == 1 {
					if !strings.HasPrefix(tag, "swsl") {
						t.Errorf("stateless To tag %q: want the front's (swsl...)", tag)
					}
					st2, raw2 := u.exchange(u.firstInvite(callID, "cmp", ""), 3*time.Second)
					if st2 != st {
						t.Fatalf("retransmission: got %q, want %q", st2, st)
					}
					res2 := parseResponse(t, raw2)
					if tag2, _ := res2.To().Params.Get("tag"); tag2 != tag {
						t.Errorf("retransmission To tag %q, want %q (RFC 3261 8.2.7)", tag2, tag)
					}
				}
			}
			if !slices.Equal(fields[0], fields[1]) {
				t.Errorf("stateless 407:\n%s\nwant the stateful one:\n%s", strings.Join(fields[1], "\n"), strings.Join(fields[0], "\n"))
			}
			if got := frec.take(); !slices.Equal(got, []string{"INVITE sipgo"}) {
				t.Errorf("stateful server: handlers saw %v, want [INVITE sipgo]", got)
			}
			if got := srec.take(); !slices.Equal(got, []string{"INVITE stateless", "INVITE stateless"}) {
				t.Errorf("stateless server: handlers saw %v, want [INVITE stateless INVITE stateless]", got)
			}
		})
	}
	if answered, _ := stateless.StatelessChallenges(); answered != 4 {
		t.Errorf("front answered %d INVITEs, want 4", answered)
	}
	if metricValue(t, stateless, "sipwarden_auth_outcomes_total", "scheme", "digest", "result", "challenge") != 4 {
		t.Errorf("challenge outcomes: want 4 (the attempt is reported as on the stateful path)")
	}
}

// TestStatelessChallengeACKAbsorbed: the ACK of the front's 407 gets no
// answer and reaches no handler (it is not a stray ACK for the proxy, and
// no sipgo transaction is made for it), over UDP and TCP; an ACK with a
// forged tag of the same shape is not absorbed (the proxy gets it, as
// before).
func TestStatelessChallengeACKAbsorbed(t *testing.T) {
	ts, rec := startChallengeServer(t, "stateless", nil)
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			u := newRawUA(t, tp, "127.0.0.1", ts.Addr(tp))
			callID := "ack-" + tp + "-" + randHex(4)
			st, raw := u.exchange(u.firstInvite(callID, "ack"+tp, ""), 3*time.Second)
			if !strings.HasPrefix(st, "SIP/2.0 407") {
				t.Fatalf("INVITE: got %q, want 407", st)
			}
			tag, _ := parseResponse(t, raw).To().Params.Get("tag")
			_, before := ts.StatelessChallenges()
			if err := u.send(u.ackOf(callID, "ack"+tp, tag)); err != nil {
				t.Fatal(err)
			}
			if got := u.recv(300 * time.Millisecond); got != "" {
				t.Fatalf("the ACK was answered: %q", statusLine(got))
			}
			waitFor(t, "the ACK absorbed", 2*time.Second, func() bool { _, n := ts.StatelessChallenges(); return n == before+1 })
			// A forged tag: the proxy gets it (and absorbs it as a stray ACK).
			if err := u.send(u.ackOf(callID, "ack"+tp, "swsl00000000000000000000")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the forged ACK at the proxy", 2*time.Second, func() bool { return slices.Contains(rec.seen2(), "ACK sipgo") })
			if got := rec.take(); !slices.Equal(got, []string{"INVITE stateless", "ACK sipgo"}) {
				t.Errorf("handlers saw %v, want [INVITE stateless ACK sipgo] (the true ACK at none)", got)
			}
			if _, n := ts.StatelessChallenges(); n != before+1 {
				t.Errorf("absorbed %d ACKs, want %d", n, before+1)
			}
		})
	}
}

func (r *pathRecorder) seen2() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// TestStatelessChallengeLeavesTheRest: every INVITE gets the answer it
// gets with challenge_mode stateful: malformed ones their specific
// status, in-dialog ones 481, answers with credentials theirs, and a
// trusted peer or an ip connection no challenge at all. A first INVITE
// with a Route to this server (an outbound proxy setting) is challenged
// by the front; those refused before authentication whose header block
// says so (Max-Forwards 0, Proxy-Require, a To tag, a Route) are refused
// by the front too, without a transaction (proxy.Refusal); the rest go to
// sipgo.
func TestStatelessChallengeLeavesTheRest(t *testing.T) {
	edit := func(c *config.Config) { c.Proxy.TrustedPeers = []string{"127.0.0.7"} }
	stateless, srec := startChallengeServer(t, "stateless", edit)
	stateful, _ := startChallengeServer(t, "stateful", edit)
	for _, s := range []*testServer{stateless, stateful} {
		s.createCredential(t, "alice", alicePass, nil)
		s.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.8"}})
	}
	rows := []struct {
		name, from, extra string
		edit              func(string) string
		want              string
		// routeToUs adds a Route naming the server (a phone's outbound
		// proxy): still challenged statelessly.
		routeToUs bool
		// front: answered by the stateless front.
		front bool
	}{
		{name: "route to us", routeToUs: true, front: true, want: "SIP/2.0 407 Proxy Authentication Required"},
		{name: "max-forwards 0", edit: func(m string) string { return strings.Replace(m, "Max-Forwards: 70", "Max-Forwards: 0", 1) },
			front: true, want: "SIP/2.0 483 Too Many Hops"},
		{name: "proxy-require", extra: "Proxy-Require: foo\r\n", front: true, want: "SIP/2.0 420 Bad Extension"},
		{name: "cseq method", edit: func(m string) string { return strings.Replace(m, "CSeq: 7 INVITE", "CSeq: 7 BYE", 1) },
			want: "SIP/2.0 400 CSeq Method Does Not Match"},
		{name: "in dialog", edit: func(m string) string {
			return strings.Replace(m, "<sip:bob@sipwarden.test>\r\n", "<sip:bob@sipwarden.test>;tag=x\r\n", 1)
		}, front: true, want: "SIP/2.0 481 Call/Transaction Does Not Exist"},
		{name: "preloaded route", extra: "Route: <sip:elsewhere.example;lr>\r\n", front: true, want: "SIP/2.0 403 Preloaded Route Denied"},
		// RFC 3261 16.3 step 2, before authentication: they were
		// challenged, then refused 403 once authenticated.
		{name: "http request-uri", edit: func(m string) string {
			return strings.Replace(m, "INVITE sip:bob@sipwarden.test SIP/2.0", "INVITE http://sipwarden.test/bob SIP/2.0", 1)
		}, want: "SIP/2.0 416 Unsupported URI Scheme"},
		{name: "request-uri without host", edit: func(m string) string {
			return strings.Replace(m, "INVITE sip:bob@sipwarden.test SIP/2.0", "INVITE sip: SIP/2.0", 1)
		}, want: "SIP/2.0 400 Malformed Request-URI"},
		{name: "wrong credentials", extra: "Proxy-Authorization: " +
			digestAnswer("alice", "wrong-password", "bm9uY2U", "INVITE", "sip:bob@sipwarden.test") + "\r\n", want: "SIP/2.0 407 Proxy Authentication Required"},
		// Digest in Authorization is not for a proxy: a challenge, from sipgo.
		{name: "authorization header", extra: "Authorization: Digest username=\"alice\"\r\n", want: "SIP/2.0 407 Proxy Authentication Required"},
		// Not challenged: routed (bob does not exist).
		{name: "trusted peer", from: "127.0.0.7", want: "SIP/2.0 404 User Not Found"},
		{name: "ip connection", from: "127.0.0.8", want: "SIP/2.0 404 User Not Found"},
	}
	for _, tp := range []string{"udp", "tcp"} {
		for _, r := range rows {
			t.Run(tp+"/"+r.name, func(t *testing.T) {
				from := r.from
				if from == "" {
					from = "127.0.0.1"
				}
				var got [2]string
				for i, s := range []*testServer{stateful, stateless} {
					u := newRawUA(t, tp, from, s.Addr(tp))
					extra := r.extra
					if r.routeToUs {
						extra += "Route: <sip:" + s.Addr(tp) + ";lr>\r\n"
					}
					msg := u.firstInvite("rest-"+randHex(4), randHex(4), extra)
					if r.edit != nil {
						msg = r.edit(msg)
					}
					got[i], _ = u.exchange(msg, 3*time.Second)
				}
				if got[0] != got[1] {
					t.Errorf("stateless mode: %q, stateful mode: %q", got[1], got[0])
				}
				if got[1] != r.want {
					t.Errorf("got %q, want %q", got[1], r.want)
				}
				want := []string{"INVITE sipgo"}
				if r.front {
					want = []string{"INVITE stateless"}
				}
				if seen := srec.take(); !slices.Equal(seen, want) {
					t.Errorf("handlers saw %v, want %v", seen, want)
				}
			})
		}
	}
	if answered, _ := stateless.StatelessChallenges(); answered != 10 {
		t.Errorf("front answered %d INVITEs, want 10 (5 rows, 2 transports)", answered)
	}
}

// TestStatelessChallengeBans: a source sending INVITEs with wrong
// answers is banned after guard.max_failures; its next first INVITE is
// refused by the same admission gate on the stateless path (403, with
// the front's To tag, whose ACK is absorbed too).
func TestStatelessChallengeBans(t *testing.T) {
	ts, rec := startChallengeServer(t, "stateless", func(c *config.Config) { c.Guard.MaxFailures = 3 })
	ts.createCredential(t, "alice", alicePass, nil)
	u := newRawUA(t, "udp", "127.0.0.9", ts.Addr("udp"))
	for i := range 3 {
		callID := fmt.Sprintf("ban-%d-%s", i, randHex(4))
		st, raw := u.exchange(u.firstInvite(callID, "b"+callID, ""), 3*time.Second)
		if !strings.HasPrefix(st, "SIP/2.0 407") {
			t.Fatalf("INVITE %d: got %q, want 407", i, st)
		}
		nonce := nonceRE.FindStringSubmatch(raw)
		if nonce == nil {
			t.Fatalf("no nonce in %q", raw)
		}
		wrong := "Proxy-Authorization: " + digestAnswer("alice", "wrong-password", nonce[1], "INVITE", "sip:bob@sipwarden.test") + "\r\n"
		if st, _ := u.exchange(u.firstInvite(callID, "c"+callID, wrong), 3*time.Second); st != "SIP/2.0 403 Forbidden" {
			t.Fatalf("wrong answer %d: got %q, want 403", i, st)
		}
	}
	waitFor(t, "the ban", 2*time.Second, func() bool {
		for _, b := range ts.bans(t) {
			if b.IP == "127.0.0.9" {
				return true
			}
		}
		return false
	})
	rec.take()
	before, _ := ts.StatelessChallenges()
	st, raw := u.exchange(u.firstInvite("ban-after", "ban-after", ""), 3*time.Second)
	if st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("first INVITE once banned: got %q, want 403 Forbidden", st)
	}
	// The gate refuses before the recorder (inside it) is reached, on the
	// front's path.
	if seen := rec.take(); len(seen) != 0 {
		t.Errorf("handlers saw %v, want none", seen)
	}
	if after, _ := ts.StatelessChallenges(); after != before+1 {
		t.Errorf("front answered %d INVITEs, want %d", after, before+1)
	}
	tag, _ := parseResponse(t, raw).To().Params.Get("tag")
	if !strings.HasPrefix(tag, "swsl") {
		t.Errorf("403 To tag %q: want the front's", tag)
	}
	if metricValue(t, ts, "sipwarden_auth_outcomes_total", "scheme", "digest", "result", "mismatch") != 3 {
		t.Errorf("mismatch outcomes: want 3")
	}
}
