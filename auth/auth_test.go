package auth_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
)

const (
	realm = "sipwarden.test"
	pw    = "correct-horse-battery"
)

// clock is a settable time source shared by the nonces and the
// authenticator.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration)     { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }
func ha1s(user string) map[string]string { return allHA1(user, pw) }

func allHA1(user, password string) map[string]string {
	m := map[string]string{}
	for _, a := range []digest.Algorithm{digest.MD5, digest.SHA256, digest.SHA512_256} {
		m[a.String()] = digest.HA1(a, user, realm, password)
	}
	return m
}

type fixture struct {
	a      *auth.Authenticator
	db     *store.DB
	clk    *clock
	nonces *digest.Nonces
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := newClock()
	db, err := store.Open(filepath.Join(t.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	mk := func(c store.Credential) {
		c.ConnectionID, c.Realm, c.HA1 = store.DefaultConnectionID, realm, ha1s(c.Username)
		if _, err := db.CreateCredential(c); err != nil {
			t.Fatal(err)
		}
	}
	mk(store.Credential{Username: "alice", Enabled: true})
	mk(store.Credential{Username: "bob", Enabled: false})
	mk(store.Credential{Username: "carol", Enabled: true, ExpiresAt: clk.now().Add(-time.Minute)})
	mk(store.Credential{Username: "dave", Enabled: true, Algorithms: []string{"SHA-256"}})
	nonces, err := digest.NewNonces([]byte("0123456789abcdef0123456789abcdef"), 5*time.Minute, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Realm: realm, Algorithms: []digest.Algorithm{digest.MD5}, QOP: []string{"auth"},
		Nonce: nonces, Count: auth.LocalCounts(digest.NewCountsFor(nonces, 1024, clk.now)), Now: clk.now,
	}, db)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{a: a, db: db, clk: clk, nonces: nonces}
}

// answer builds the Authorization value a client sends for the given
// challenge parameters.
func answer(user, password, nonce string, alg digest.Algorithm, nc uint32) string {
	c := digest.Credentials{
		Username: user, Realm: realm, Nonce: nonce, URI: "sip:" + realm,
		Algorithm: alg.String(), QOP: "auth", CNonce: "0a4f113b",
		NC: fmt.Sprintf("%08x", nc), NonceCount: nc,
	}
	resp := digest.Response(c, alg, "REGISTER", digest.HA1(alg, user, realm, password), nil)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, qop=auth, nc=%s, cnonce="%s"`,
		user, realm, nonce, c.URI, resp, alg, c.NC, c.CNonce)
}

func TestCheckOutcomes(t *testing.T) {
	f := newFixture(t)
	other, err := digest.NewNonces([]byte("another-key-another-key-another!"), 5*time.Minute, f.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		headers []string
		want    auth.Outcome
		failure bool
	}{
		{"no header", nil, auth.NoCredentials, false},
		{"bearer only", []string{"Bearer abc.def.ghi"}, auth.NoCredentials, false},
		{"other realm", []string{strings.Replace(answer("alice", pw, f.nonces.New(), digest.MD5, 1), realm, "elsewhere", 1)}, auth.NoCredentials, false},
		{"md5 ok", []string{answer("alice", pw, f.nonces.New(), digest.MD5, 1)}, auth.OK, false},
		{"sha-256 not offered by policy", []string{answer("alice", pw, f.nonces.New(), digest.SHA256, 1)}, auth.Mismatch, true},
		{"per-credential sha-256 ok", []string{answer("dave", pw, f.nonces.New(), digest.SHA256, 1)}, auth.OK, false},
		{"per-credential refuses md5", []string{answer("dave", pw, f.nonces.New(), digest.MD5, 1)}, auth.Mismatch, true},
		{"wrong password", []string{answer("alice", "wrong-password!", f.nonces.New(), digest.MD5, 1)}, auth.Mismatch, true},
		{"unknown user", []string{answer("mallory", pw, f.nonces.New(), digest.MD5, 1)}, auth.UnknownUser, true},
		{"disabled", []string{answer("bob", pw, f.nonces.New(), digest.MD5, 1)}, auth.Disabled, true},
		{"expired credential", []string{answer("carol", pw, f.nonces.New(), digest.MD5, 1)}, auth.Expired, true},
		{"foreign nonce", []string{answer("alice", pw, other.New(), digest.MD5, 1)}, auth.BadNonce, false},
		{"garbage", []string{`Digest username="alice", username="bob"`}, auth.Malformed, true},
		// An algorithm not offered gets a new challenge, not counted: it
		// was 400 Malformed, a failure, and a phone insisting on -sess
		// banned its own username.
		{"unknown algorithm", []string{strings.Replace(answer("alice", pw, f.nonces.New(), digest.MD5, 1), "algorithm=MD5", "algorithm=AKAv1-MD5", 1)}, auth.NoCredentials, false},
		// userhash is never offered: a name flagged as hashed is looked
		// up as no user (it authenticated as that name).
		{"userhash", []string{answer("alice", pw, f.nonces.New(), digest.MD5, 1) + ", userhash=true"}, auth.UnknownUser, true},
		{"session algorithm", []string{strings.Replace(answer("alice", pw, f.nonces.New(), digest.MD5, 1), "algorithm=MD5", "algorithm=MD5-sess", 1)}, auth.NoCredentials, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := f.a.Check(auth.Request{Method: "REGISTER", Authorization: tc.headers})
			if res.Outcome != tc.want {
				t.Fatalf("outcome %v (%s), want %v", res.Outcome, res.Detail, tc.want)
			}
			if res.Outcome.Failure() != tc.failure {
				t.Errorf("Failure() = %v, want %v", res.Outcome.Failure(), tc.failure)
			}
			if res.Outcome == auth.OK && res.Credential.Username == "" {
				t.Error("OK without the credential")
			}
		})
	}
}

// A stateless caller's retransmission (the request whose count was
// accepted last for the nonce, again, within 64 s of the nonce's issue) is
// Repeat with the outcome of the checks after the count; anything else
// reusing a count is a Replay, and so is every reuse for a caller with a
// transaction layer (ID 0).
func TestCheckRepeat(t *testing.T) {
	f := newFixture(t)
	check := func(h string, id uint16) auth.Result {
		return f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{h}, ID: id})
	}
	nonce := f.nonces.New()
	h1 := answer("alice", pw, nonce, digest.MD5, 1)
	if r := check(h1, 11); r.Outcome != auth.OK || r.Repeat {
		t.Fatalf("first use: %v repeat=%t, want ok", r.Outcome, r.Repeat)
	}
	if r := check(h1, 11); r.Outcome != auth.OK || !r.Repeat {
		t.Errorf("the same request again: %v repeat=%t, want ok and a repeat", r.Outcome, r.Repeat)
	}
	if r := check(h1, 13); r.Outcome != auth.Replay || r.Repeat {
		t.Errorf("the same answer in another request: %v repeat=%t, want replay", r.Outcome, r.Repeat)
	}
	if r := check(h1, 0); r.Outcome != auth.Replay || r.Repeat {
		t.Errorf("the same answer again, with a transaction layer: %v repeat=%t, want replay", r.Outcome, r.Repeat)
	}
	if r := check(answer("alice", pw, nonce, digest.MD5, 2), 15); r.Outcome != auth.OK || r.Repeat {
		t.Fatalf("nc=2: %v repeat=%t, want ok", r.Outcome, r.Repeat)
	}
	if r := check(h1, 11); r.Outcome != auth.Replay {
		t.Errorf("nc=1 after nc=2: %v, want replay (not the count accepted last)", r.Outcome)
	}
	// A wrong password is a mismatch, repeat or not.
	if r := check(answer("alice", "nope-nope-nope", nonce, digest.MD5, 2), 15); r.Outcome != auth.Mismatch || r.Repeat {
		t.Errorf("nc=2 with a wrong password: %v repeat=%t, want mismatch", r.Outcome, r.Repeat)
	}
	// 64 s after the nonce was issued, a repeat is a replay.
	f.clk.add(65 * time.Second)
	if r := check(answer("alice", pw, nonce, digest.MD5, 2), 15); r.Outcome != auth.Replay || r.Repeat {
		t.Errorf("nc=2 again 65 s after the nonce's issue: %v repeat=%t, want replay", r.Outcome, r.Repeat)
	}
	// A disabled credential's repeat is refused as disabled.
	hb := answer("bob", pw, f.nonces.New(), digest.MD5, 1)
	if r := check(hb, 17); r.Outcome != auth.Disabled {
		t.Fatalf("bob: %v, want disabled", r.Outcome)
	}
	if r := check(hb, 17); r.Outcome != auth.Disabled {
		t.Errorf("bob's request again: %v, want disabled", r.Outcome)
	}
}

// RequestID: a retransmission (the same branch, Call-ID and CSeq) has
// the same ID, another request another. IDs are 16-bit hashes with a
// random seed: a pair collides with a chance of 2^-16, so a pair is a
// failure only when it collides under two seeds (2^-32).
func TestRequestID(t *testing.T) {
	f, g := newFixture(t), newFixture(t)
	mk := func(branch, callID string, seq uint32) *sip.Request {
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: realm})
		req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "192.0.2.7", Port: 5060,
			Params: sip.HeaderParams{{K: "branch", V: branch}}})
		cid := sip.CallIDHeader(callID)
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.REGISTER})
		return req
	}
	id := f.a.RequestID(mk("z9hG4bK1", "c1", 2))
	if id == 0 || f.a.RequestID(mk("z9hG4bK1", "c1", 2)) != id {
		t.Fatalf("a retransmission's ID differs (or is 0): %d", id)
	}
	gid := g.a.RequestID(mk("z9hG4bK1", "c1", 2))
	for _, other := range []*sip.Request{mk("z9hG4bK2", "c1", 2), mk("z9hG4bK1", "c2", 2), mk("z9hG4bK1", "c1", 3)} {
		if f.a.RequestID(other) == id && g.a.RequestID(other) == gid {
			t.Errorf("another request (%s, %s) has the same ID under two seeds", other.Via(), other.CSeq())
		}
	}
}

func TestCheckStaleAndReplay(t *testing.T) {
	f := newFixture(t)
	nonce := f.nonces.New()
	h := answer("alice", pw, nonce, digest.MD5, 1)
	if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{h}}).Outcome; got != auth.OK {
		t.Fatalf("first use: %v", got)
	}
	if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{h}}).Outcome; got != auth.Replay {
		t.Fatalf("same nc again: %v, want replay", got)
	}
	if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{answer("alice", pw, nonce, digest.MD5, 2)}}).Outcome; got != auth.OK {
		t.Fatalf("nc=2: %v", got)
	}
	if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{answer("alice", pw, nonce, digest.MD5, 1)}}).Outcome; got != auth.Replay {
		t.Fatalf("nc going back: %v, want replay", got)
	}
	f.clk.add(6 * time.Minute)
	if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{answer("alice", pw, nonce, digest.MD5, 3)}}).Outcome; got != auth.Stale {
		t.Fatalf("after the nonce lifetime: %v, want stale", got)
	}
	// Nor does a right password whose credential is refused anyway
	// (disabled, expired): the 403 a wrong one gets, not a challenge.
	for _, user := range []string{"bob", "carol"} {
		if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{answer(user, pw, nonce, digest.MD5, 5)}}).Outcome; got != auth.Disabled && got != auth.Expired {
			t.Errorf("stale nonce, %s's right password: %v, want disabled or expired", user, got)
		}
	}
	fresh := f.nonces.New()
	for _, user := range []string{"bob", "carol"} {
		h := answer(user, pw, fresh, digest.MD5, 0) // nc 0: never a fresh count
		if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{h}}).Outcome; got != auth.Disabled && got != auth.Expired {
			t.Errorf("count 0, %s's right password: %v, want disabled or expired", user, got)
		}
	}
	// A wrong password never earns stale=true, whatever the nonce's age.
	if got := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{answer("alice", "nope-nope-nope", nonce, digest.MD5, 4)}}).Outcome; got != auth.Mismatch {
		t.Fatalf("stale nonce, wrong password: %v, want mismatch", got)
	}
}

func TestChallengesFollowPolicy(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		user string
		want []string
	}{
		{"", []string{"MD5"}},
		{"alice", []string{"MD5"}},
		{"dave", []string{"SHA-256"}},
		{"nobody", []string{"MD5"}}, // unknown users look like everyone else
	}
	for _, tc := range cases {
		chs := f.a.Challenges(tc.user, false, false)
		if len(chs) != len(tc.want) {
			t.Fatalf("%q: %d challenges %q, want %v", tc.user, len(chs), chs, tc.want)
		}
		for i, ch := range chs {
			if !strings.HasPrefix(ch, "Digest ") || !strings.Contains(ch, "algorithm="+tc.want[i]) ||
				!strings.Contains(ch, `qop="auth"`) || !strings.Contains(ch, `realm="`+realm+`"`) {
				t.Errorf("%q: challenge %q, want algorithm %s, qop auth", tc.user, ch, tc.want[i])
			}
			if strings.Contains(ch, "stale") {
				t.Errorf("%q: unexpected stale in %q", tc.user, ch)
			}
		}
	}
	if ch := f.a.Challenges("alice", true, false)[0]; !strings.Contains(ch, "stale=true") {
		t.Errorf("stale challenge %q lacks stale=true", ch)
	}
}
