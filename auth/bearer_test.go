package auth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/token"
)

type bearerFixture struct {
	*fixture
	iss *token.Issuer
	a   *auth.Authenticator
}

func newBearerFixture(t *testing.T, bearerFirst bool) *bearerFixture {
	t.Helper()
	f := newFixture(t)
	key, err := token.Ed25519Key(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Issuer: "sipwarden", Audience: "sip", TTL: time.Hour, Key: key, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier(token.VerifierConfig{Issuer: "sipwarden", Audience: "sip", Key: key, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Realm: realm, Algorithms: []digest.Algorithm{digest.MD5}, QOP: []string{"auth"},
		Nonce: f.nonces, Count: auth.LocalCounts(digest.NewCountsFor(f.nonces, 1024, f.clk.now)), Now: f.clk.now,
		Tokens: ver, BearerFirst: bearerFirst,
	}, f.db)
	if err != nil {
		t.Fatal(err)
	}
	return &bearerFixture{fixture: f, iss: iss, a: a}
}

func (f *bearerFixture) mint(t *testing.T, user string) string {
	t.Helper()
	c, err := f.db.CredentialByUsername(user)
	if err != nil {
		c.ID = "no-credential" // an external user's token, or one for nobody
	}
	tok, _, err := f.iss.Mint(user, c.ID, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *bearerFixture) check(tok string) auth.Result {
	return f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{"Bearer " + tok}})
}

func TestBearerOutcomes(t *testing.T) {
	f := newBearerFixture(t, false)
	res := f.check(f.mint(t, "alice"))
	if res.Outcome != auth.OK || res.Scheme != "bearer" || res.Credential.Username != "alice" || res.TokenExpires.IsZero() {
		t.Fatalf("good token: %+v", res)
	}
	for name, tok := range map[string]string{
		"disabled credential": f.mint(t, "bob"),
		"expired credential":  f.mint(t, "carol"),
		"no such credential":  f.mint(t, "mallory"),
		"garbage":             "abc.def.ghi",
	} {
		if res := f.check(tok); res.Outcome != auth.InvalidToken || !res.Outcome.Failure() {
			t.Errorf("%s: %v, want invalid_token counted as a failure", name, res.Outcome)
		}
	}
	if res := f.check(""); res.Outcome != auth.NoCredentials {
		t.Errorf("empty Bearer: %v", res.Outcome)
	}
}

// TestDigestBesideBearer: Digest credentials for our realm win over a
// Bearer header, whichever comes first (RFC 3261 22.4): a Bearer header
// before a correct Digest one was checked alone, refused, and counted as
// a failed token.
func TestDigestBesideBearer(t *testing.T) {
	f := newBearerFixture(t, false)
	good := answer("alice", pw, f.nonces.New(), digest.MD5, 1)
	for name, hs := range map[string][]string{
		"bearer first": {"Bearer abc.def.ghi", good},
		"digest first": {answer("alice", pw, f.nonces.New(), digest.MD5, 1), "Bearer abc.def.ghi"},
	} {
		res := f.a.Check(auth.Request{Method: "REGISTER", Authorization: hs})
		if res.Outcome != auth.OK || res.Scheme != "digest" {
			t.Errorf("%s: %v (%s), want ok by digest", name, res.Outcome, res.Scheme)
		}
	}
	if res := f.a.Check(auth.Request{Method: "REGISTER", Authorization: []string{"Bearer abc.def.ghi"}}); res.Outcome != auth.InvalidToken {
		t.Errorf("bearer alone: %v, want invalid_token", res.Outcome)
	}
}

func TestBearerRevocation(t *testing.T) {
	f := newBearerFixture(t, false)
	c, err := f.db.CredentialByUsername("alice")
	if err != nil {
		t.Fatal(err)
	}
	old := f.mint(t, "alice")
	// revoke_tokens (or a password change): every token issued until now.
	f.clk.add(300 * time.Millisecond)
	if _, err := f.db.UpdateCredential(c.ID, func(c *store.Credential) error {
		c.TokensNotBefore = token.RevokedBefore(f.clk.now(), c.TokensNotBefore)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if res := f.check(old); res.Outcome != auth.InvalidToken || !strings.Contains(res.Detail, "revoked") {
		t.Fatalf("token issued before revoke_tokens: %v %q", res.Outcome, res.Detail)
	}
	c, _ = f.db.CredentialByUsername("alice")
	fresh, _, err := f.iss.Mint("alice", c.ID, c.TokensNotBefore, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res := f.check(fresh); res.Outcome != auth.OK {
		t.Fatalf("token minted right after the revocation: %v %q", res.Outcome, res.Detail)
	}
	// Deleting the credential invalidates its tokens at once.
	if _, err := f.db.DeleteCredential(c.ID); err != nil {
		t.Fatal(err)
	}
	if res := f.check(fresh); res.Outcome != auth.InvalidToken {
		t.Fatalf("token of a deleted credential: %v", res.Outcome)
	}
}

func TestBearerChallengeOrder(t *testing.T) {
	for _, first := range []bool{false, true} {
		f := newBearerFixture(t, first)
		chs := f.a.Challenges("", false, false)
		if len(chs) != 2 {
			t.Fatalf("challenges %q", chs)
		}
		b, d := chs[1], chs[0]
		if first {
			b, d = chs[0], chs[1]
		}
		if !strings.HasPrefix(b, `Bearer realm="`+realm+`", scope="sip"`) || !strings.HasPrefix(d, "Digest ") {
			t.Errorf("bearerFirst=%v: %q", first, chs)
		}
		if strings.Contains(b, "invalid_token") {
			t.Error("error=invalid_token on a first challenge")
		}
		if inv := f.a.Challenges("", false, true); !strings.Contains(strings.Join(inv, "|"), `error="invalid_token"`) {
			t.Errorf("after a bad token: %q", inv)
		}
	}
	// Over WebSocket, with the default order, a Digest challenge comes
	// first (SIP.js reads the first) and last (JsSIP keeps the last).
	f := newBearerFixture(t, false)
	for _, tp := range []string{"ws", "wss"} {
		chs := f.a.ChallengesFor("", tp, false, false)
		if len(chs) != 3 || !strings.HasPrefix(chs[0], "Digest ") || !strings.HasPrefix(chs[1], "Bearer ") || chs[2] != chs[0] {
			t.Errorf("%s: %q, want Digest, Bearer, the same Digest", tp, chs)
		}
	}
	if chs := f.a.ChallengesFor("", "udp", false, false); len(chs) != 2 {
		t.Errorf("udp: %q, want Digest, Bearer", chs)
	}
}
