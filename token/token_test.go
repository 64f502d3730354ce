package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func fixedNow(t *time.Time) func() time.Time { return func() time.Time { return *t } }

func edKey(t *testing.T, b byte) Key {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = b
	}
	k, err := Ed25519Key(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type fixture struct {
	now time.Time
	iss *Issuer
	ver *Verifier
	key Key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{now: t0, key: edKey(t, 1)}
	var err error
	f.iss, err = NewIssuer(IssuerConfig{Issuer: "https://sip.example", Audience: "sip", TTL: 24 * time.Hour, Key: f.key, Now: fixedNow(&f.now)})
	if err != nil {
		t.Fatal(err)
	}
	f.ver, err = NewVerifier(VerifierConfig{Issuer: "https://sip.example", Audience: "sip", Key: f.key, Now: fixedNow(&f.now)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMintAndVerify(t *testing.T) {
	f := newFixture(t)
	tok, exp, err := f.iss.Mint("alice", "cred-alice", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(t0.Add(24 * time.Hour)) {
		t.Errorf("exp %v, want 24 h", exp)
	}
	c, err := f.ver.Verify(tok)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.User != "alice" || !c.Local || !c.RequireCredential || !c.IssuedAt.Equal(t0) || !c.Expires.Equal(exp) || c.ID == "" {
		t.Fatalf("claims %+v", c)
	}
	// Never past the credential's own expiry.
	_, exp, err = f.iss.Mint("alice", "cred-alice", time.Time{}, t0.Add(time.Hour))
	if err != nil || !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("capped exp %v, %v", exp, err)
	}
	if _, _, err := f.iss.Mint("alice", "cred-alice", time.Time{}, t0.Add(-time.Second)); err == nil {
		t.Fatal("minted for an expired credential")
	}
}

func TestVerifyRefusals(t *testing.T) {
	f := newFixture(t)
	good := jwt.MapClaims{"iss": "https://sip.example", "aud": "sip", "sub": "alice", "iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range good {
			c[a] = b
		}
		c[k] = v
		return c
	}
	other := edKey(t, 2)
	pub := f.key.Verify.(ed25519.PublicKey)
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
	cases := []struct {
		name, tok, want string
	}{
		{"expired", sign(t, jwt.SigningMethodEdDSA, f.key.Sign, with("exp", t0.Add(-time.Minute).Unix())), "expired"},
		{"not yet valid", sign(t, jwt.SigningMethodEdDSA, f.key.Sign, with("nbf", t0.Add(time.Hour).Unix())), "not valid yet"},
		{"wrong issuer", sign(t, jwt.SigningMethodEdDSA, f.key.Sign, with("iss", "https://evil.example")), "unknown issuer"},
		{"wrong audience", sign(t, jwt.SigningMethodEdDSA, f.key.Sign, with("aud", "other")), "wrong audience"},
		{"other key", sign(t, jwt.SigningMethodEdDSA, other.Sign, good), "bad signature"},
		{"alg none", noneTok, "bad signature"},
		// The classic confusion: HS256 with the public key as HMAC secret.
		{"hs256 with the public key", sign(t, jwt.SigningMethodHS256, []byte(pub), good), "bad signature"},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, f.key.Sign, jwt.MapClaims{"iss": "https://sip.example", "aud": "sip", "sub": "alice"}), "required claim"},
		{"no sub", sign(t, jwt.SigningMethodEdDSA, f.key.Sign, with("sub", "")), "no \"sub\""},
		{"garbage", "not.a.token", "malformed"},
		// RFC 7515 section 4.1.11: an extension this verifier does not
		// understand, marked critical: refused (it was accepted).
		{"crit", signWithHeader(t, f.key.Sign, good, "crit", []string{"exp-ext"}), "critical header extension"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.ver.Verify(tc.tok)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownIssuer) {
				t.Errorf("error %v wraps neither ErrInvalid nor ErrUnknownIssuer", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.tok) {
				t.Error("the error carries the token")
			}
		})
	}
	// Within the leeway a just-expired token still passes.
	f.now = t0.Add(time.Hour + 10*time.Second)
	if _, err := f.ver.Verify(sign(t, jwt.SigningMethodEdDSA, f.key.Sign, good)); err != nil {
		t.Errorf("10 s past exp with 30 s leeway: %v", err)
	}
}

func TestHS256Option(t *testing.T) {
	k, err := HMACKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	iss, _ := NewIssuer(IssuerConfig{Issuer: "i", Audience: "a", TTL: time.Hour, Key: k, Now: fixedNow(&now)})
	ver, _ := NewVerifier(VerifierConfig{Issuer: "i", Audience: "a", Key: k, Now: fixedNow(&now)})
	tok, _, err := iss.Mint("bob", "cred-bob", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ver.Verify(tok); err != nil || c.User != "bob" {
		t.Fatalf("hs256 round trip: %+v %v", c, err)
	}
	if keys := ver.JWKS()["keys"].([]map[string]any); len(keys) != 0 {
		t.Fatalf("the HMAC secret was published: %v", keys)
	}
	if _, err := HMACKey([]byte("short")); err == nil {
		t.Fatal("a short HMAC secret was accepted")
	}
}

func TestJWKSPublishesEd25519(t *testing.T) {
	f := newFixture(t)
	b, _ := json.Marshal(f.ver.JWKS())
	keys, err := ParseJWKS(b)
	if err != nil || len(keys) != 1 {
		t.Fatalf("our own JWKS does not parse back: %v %s", err, b)
	}
	if !keys[0].Verify.(ed25519.PublicKey).Equal(f.key.Verify) || keys[0].ID != f.key.ID {
		t.Fatal("published key differs")
	}
	if strings.Contains(string(b), `"d"`) {
		t.Fatal("private part published")
	}
}

// TestExternalIssuerJWKS: an operator's identity provider signs with
// ES256; its JWKS file is configured with a custom user claim.
func TestExternalIssuerJWKS(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := func(x []byte) string { return base64.RawURLEncoding.EncodeToString(x) }
	point, err := priv.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		t.Fatal(err)
	}
	ecJWKS := func(x, y []byte) string {
		return `{"keys":[{"kty":"EC","crv":"P-256","kid":"idp-1","use":"sig","x":"` + b(x) + `","y":"` + b(y) + `"}]}`
	}
	jwks := ecJWKS(point[1:33], point[33:])
	// A point off the curve, or a coordinate not 32 bytes long, is refused.
	offCurve := append([]byte(nil), point[33:]...)
	offCurve[31] ^= 1
	for name, bad := range map[string]string{
		"off the curve": ecJWKS(point[1:33], offCurve),
		"short x":       ecJWKS(point[2:33], point[33:]),
	} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("JWKS with a key %s accepted", name)
		}
	}
	keys, err := ParseJWKS([]byte(jwks))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	local := edKey(t, 1)
	ver, err := NewVerifier(VerifierConfig{Issuer: "https://sip.example", Audience: "sip", Key: local, Now: fixedNow(&now),
		External: []External{{Issuer: "https://idp.example", Audience: "voice", Keys: keys, UserClaim: "sip_user", RequireCredential: true}}})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"iss": "https://idp.example", "aud": "voice", "sub": "u-123", "sip_user": "carol", "exp": t0.Add(time.Hour).Unix()}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = "idp-1"
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ver.Verify(s)
	if err != nil {
		t.Fatalf("external token: %v", err)
	}
	if c.User != "carol" || c.Local || !c.RequireCredential {
		t.Fatalf("claims %+v", c)
	}
	// An iat in the future (past the leeway) is refused: revocation cuts
	// by iat, and a token "issued" next year would outlive every cut.
	future := jwt.MapClaims{"iss": "https://idp.example", "aud": "voice", "sub": "u-123", "sip_user": "carol",
		"iat": t0.Add(365 * 24 * time.Hour).Unix(), "exp": t0.Add(time.Hour).Unix()}
	ftok := jwt.NewWithClaims(jwt.SigningMethodES256, future)
	ftok.Header["kid"] = "idp-1"
	fs, err := ftok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ver.Verify(fs); err == nil {
		t.Error("an external token issued next year was accepted")
	}
	// The external issuer cannot mint for the local issuer's name.
	claims["iss"] = "https://sip.example"
	claims["aud"] = "sip"
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(priv)
	if _, err := ver.Verify(forged); err == nil {
		t.Fatal("a token signed by the external key passed as a local one")
	}
	if _, err := ParseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a symmetric key was accepted from a JWKS file")
	}
}

func BenchmarkVerify(b *testing.B) {
	seed := make([]byte, 32)
	k, _ := Ed25519Key(seed)
	iss, _ := NewIssuer(IssuerConfig{Issuer: "i", Audience: "a", TTL: time.Hour, Key: k})
	ver, _ := NewVerifier(VerifierConfig{Issuer: "i", Audience: "a", Key: k})
	tok, _, _ := iss.Mint("alice", "cred-alice", time.Time{}, time.Time{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ver.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRevokedBeforeMovesPastPrevious: a revocation's cut is past now and
// past the previous cut, which the iat of a token minted since may equal
// (revoke, mint, revoke within one second used to give the same cut).
func TestRevokedBeforeMovesPastPrevious(t *testing.T) {
	cases := []struct {
		name      string
		now, prev time.Time
		want      time.Time
	}{
		{"first", t0.Add(300 * time.Millisecond), time.Time{}, t0.Add(time.Second)},
		{"a later second", t0.Add(5 * time.Second), t0.Add(time.Second), t0.Add(6 * time.Second)},
		{"the same second", t0.Add(700 * time.Millisecond), t0.Add(time.Second), t0.Add(2 * time.Second)},
		{"a burst ahead of the clock", t0, t0.Add(4 * time.Second), t0.Add(5 * time.Second)},
	}
	for _, c := range cases {
		if got := RevokedBefore(c.now, c.prev); !got.Equal(c.want) {
			t.Errorf("%s: RevokedBefore(%v, %v): got %v, want %v", c.name, c.now, c.prev, got, c.want)
		}
	}
}

// TestMintAfterBurstOfRevocations: a token minted under a cut ahead of
// the clock (several revocations within a second) carries the cut as iat
// but is usable at once: nbf is the real time, not the cut.
func TestMintAfterBurstOfRevocations(t *testing.T) {
	f := newFixture(t)
	cut := t0.Add(time.Minute) // past the verifier's 30 s leeway
	tok, _, err := f.iss.Mint("alice", "cred-alice", cut, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.ver.Verify(tok)
	if err != nil {
		t.Fatalf("token minted under a cut ahead of the clock: %v", err)
	}
	if c.IssuedAt.Before(cut) || !c.NotBefore.Equal(t0) {
		t.Fatalf("got iat %v nbf %v, want iat at the cut %v and nbf now %v", c.IssuedAt, c.NotBefore, cut, t0)
	}
}

// signWithHeader is an EdDSA token of claims with one more header field.
func signWithHeader(t *testing.T, key any, claims jwt.MapClaims, name string, value any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header[name] = value
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
