// Package token mints and verifies the JSON Web Tokens that stand in for a
// SIP password (RFC 8898: "Authorization: Bearer <token>" in REGISTER and
// "Proxy-Authorization: Bearer <token>" in proxied requests). It does no
// I/O: keys come from the caller.
package token

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors Verify wraps, so that callers can tell them apart.
var (
	ErrInvalid       = errors.New("invalid token")
	ErrUnknownIssuer = errors.New("unknown issuer")
)

// Claims is what a verified token says.
type Claims struct {
	Issuer string
	// User is the SIP username (sub, or the issuer's user claim).
	User      string
	IssuedAt  time.Time
	NotBefore time.Time
	Expires   time.Time
	ID        string
	// CredentialID is the id of the credential a local token was minted
	// for (claim "cid"): a credential deleted and created again under the
	// same username has another id, so the old tokens do not come back.
	CredentialID string
	// Local is true for tokens this server issued; false for an external
	// issuer's.
	Local bool
	// RequireCredential is true when a credential named User must exist
	// (always for local tokens).
	RequireCredential bool
}

// Key is a signing or verification key with its algorithm.
type Key struct {
	// ID is the JWK kid.
	ID string
	// Method is jwt.SigningMethodEdDSA, an RS*/ES*/PS* method or HS256.
	Method jwt.SigningMethod
	// Sign is the private key (ed25519.PrivateKey, *rsa.PrivateKey ...) or
	// the HMAC secret ([]byte); Verify the public key or the same secret.
	Sign, Verify any
}

// Ed25519Key returns an EdDSA key from a 32-byte seed, with a kid derived
// from the public key.
func Ed25519Key(seed []byte) (Key, error) {
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("ed25519 seed: %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return Key{ID: kidOf(pub), Method: jwt.SigningMethodEdDSA, Sign: priv, Verify: pub}, nil
}

// HMACKey returns an HS256 key.
func HMACKey(secret []byte) (Key, error) {
	if len(secret) < 32 {
		return Key{}, errors.New("hs256 secret: want at least 32 bytes")
	}
	return Key{ID: "hs256", Method: jwt.SigningMethodHS256, Sign: secret, Verify: secret}, nil
}

func kidOf(pub []byte) string {
	h := crypto.SHA256.New()
	h.Write(pub)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	Key      Key
	Now      func() time.Time
}

// Issuer mints tokens for credentials.
type Issuer struct {
	cfg IssuerConfig
	now func() time.Time
}

// NewIssuer returns an Issuer.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if cfg.Issuer == "" || cfg.Audience == "" || cfg.TTL <= 0 || cfg.Key.Method == nil {
		return nil, errors.New("token issuer: issuer, audience, ttl and key are required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Issuer{cfg: cfg, now: now}, nil
}

// mintClaims are the claims of a token this server mints.
type mintClaims struct {
	jwt.RegisteredClaims
	CredentialID string `json:"cid"`
}

// Mint returns a token for the SIP username user of the credential credID, valid for the TTL but
// never past notAfter (the credential's expiry; zero: none). Its iat is
// never before revokedBefore (the credential's TokensNotBefore, which
// revocation sets past every iat issued so far: RevokedBefore), so that a
// token minted right after a revocation holds. Its nbf is the time of
// minting, even when iat had to be raised into the future: iat only
// orders the token against revocations, and is not checked against the
// clock.
func (i *Issuer) Mint(user, credID string, revokedBefore, notAfter time.Time) (string, time.Time, error) {
	now := i.now().Truncate(time.Second)
	iat := now
	if rb := revokedBefore.Truncate(time.Second); rb.After(iat) {
		iat = rb
	}
	exp := now.Add(i.cfg.TTL)
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter.Truncate(time.Second)
	}
	if !exp.After(now) {
		return "", time.Time{}, errors.New("mint token: the credential has expired")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("mint token: %w", err)
	}
	claims := mintClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    i.cfg.Issuer,
		Subject:   user,
		Audience:  jwt.ClaimStrings{i.cfg.Audience},
		IssuedAt:  jwt.NewNumericDate(iat),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
	}, CredentialID: credID}
	t := jwt.NewWithClaims(i.cfg.Key.Method, claims)
	t.Header["kid"] = i.cfg.Key.ID
	s, err := t.SignedString(i.cfg.Key.Sign)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

// External is an identity provider whose tokens are accepted.
type External struct {
	Issuer   string
	Audience string
	// Keys verify its tokens (by kid when the token names one).
	Keys []Key
	// UserClaim names the claim holding the SIP username. Default "sub".
	UserClaim string
	// RequireCredential: the user must also have a credential here.
	RequireCredential bool
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer and Audience of local tokens; Key verifies them.
	Issuer   string
	Audience string
	Key      Key
	External []External
	// Leeway for exp and nbf (clock skew). Default 30s.
	Leeway time.Duration
	Now    func() time.Time
}

// Verifier checks tokens.
type Verifier struct {
	cfg    VerifierConfig
	byIss  map[string]issuerKeys
	leeway time.Duration
	now    func() time.Time
}

type issuerKeys struct {
	audience          string
	keys              []Key
	userClaim         string
	local             bool
	requireCredential bool
}

// NewVerifier returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{cfg: cfg, byIss: map[string]issuerKeys{}, leeway: cfg.Leeway, now: cfg.Now}
	if v.leeway == 0 {
		v.leeway = 30 * time.Second
	}
	if v.now == nil {
		v.now = time.Now
	}
	if cfg.Issuer != "" {
		if cfg.Key.Method == nil || cfg.Audience == "" {
			return nil, errors.New("token verifier: local issuer without key or audience")
		}
		v.byIss[cfg.Issuer] = issuerKeys{audience: cfg.Audience, keys: []Key{cfg.Key}, userClaim: "sub", local: true, requireCredential: true}
	}
	for _, e := range cfg.External {
		if e.Issuer == "" || e.Audience == "" || len(e.Keys) == 0 {
			return nil, fmt.Errorf("token verifier: external issuer %q needs an audience and keys", e.Issuer)
		}
		if _, dup := v.byIss[e.Issuer]; dup {
			return nil, fmt.Errorf("token verifier: issuer %q configured twice", e.Issuer)
		}
		uc := e.UserClaim
		if uc == "" {
			uc = "sub"
		}
		v.byIss[e.Issuer] = issuerKeys{audience: e.Audience, keys: e.Keys, userClaim: uc, requireCredential: e.RequireCredential}
	}
	return v, nil
}

// Verify checks a token's signature (with an algorithm allow-list per key:
// never "none", never an HMAC secret for a public-key algorithm), issuer,
// audience, exp and nbf, and returns its claims. Errors wrap ErrInvalid or
// ErrUnknownIssuer and never contain the token.
func (v *Verifier) Verify(tok string) (Claims, error) {
	// The issuer selects the keys; it is read unverified only for that.
	var peek jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &peek); err != nil {
		return Claims{}, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	ik, ok := v.byIss[peek.Issuer]
	if !ok {
		return Claims{}, fmt.Errorf("%w: %q", ErrUnknownIssuer, truncate(peek.Issuer, 64))
	}
	var lastErr error
	for _, k := range ik.keys {
		mc := jwt.MapClaims{}
		opts := []jwt.ParserOption{
			jwt.WithValidMethods([]string{k.Method.Alg()}),
			jwt.WithIssuer(peek.Issuer),
			jwt.WithAudience(ik.audience),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(v.leeway),
			jwt.WithTimeFunc(v.now),
		}
		if !ik.local {
			// An external issuer's iat must not be in the future (past
			// the leeway): revocation (revoke_tokens, a password change)
			// cuts by iat, and a token claiming to be issued next year
			// would outlive every cut until then. Local tokens may carry
			// an iat raised a few seconds ahead by Mint, on purpose.
			opts = append(opts, jwt.WithIssuedAt())
		}
		p := jwt.NewParser(opts...)
		t, err := p.ParseWithClaims(tok, mc, func(t *jwt.Token) (any, error) {
			if _, ok := t.Header["crit"]; ok {
				// RFC 7515 section 4.1.11: extensions listed in crit
				// must be understood, or the JWS refused; this
				// verifier understands none (golang-jwt ignores crit).
				return nil, errCritical
			}
			if kid, ok := t.Header["kid"].(string); ok && k.ID != "" && kid != k.ID && len(ik.keys) > 1 {
				return nil, errors.New("other kid")
			}
			return k.Verify, nil
		})
		if err != nil || !t.Valid {
			lastErr = err
			continue
		}
		user, _ := mc[ik.userClaim].(string)
		if user == "" {
			return Claims{}, fmt.Errorf("%w: no %q claim", ErrInvalid, ik.userClaim)
		}
		c := Claims{Issuer: peek.Issuer, User: user, Local: ik.local, RequireCredential: ik.requireCredential}
		if d, err := mc.GetIssuedAt(); err == nil && d != nil {
			c.IssuedAt = d.Time
		}
		if d, err := mc.GetNotBefore(); err == nil && d != nil {
			c.NotBefore = d.Time
		}
		if d, err := mc.GetExpirationTime(); err == nil && d != nil {
			c.Expires = d.Time
		}
		c.ID, _ = mc["jti"].(string)
		c.CredentialID, _ = mc["cid"].(string)
		return c, nil
	}
	return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, reason(lastErr))
}

// errCritical refuses a token whose header lists critical extensions.
var errCritical = errors.New("critical header extension")

// reason names why the library refused a token, without the token.
func reason(err error) string {
	switch {
	case err == nil:
		return "invalid"
	case errors.Is(err, errCritical):
		return "critical header extension"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	}
	return "invalid"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// JWKS returns the public keys of the local issuer as a JWK Set (RFC 7517)
// document; empty for an HMAC key, whose secret is never published.
func (v *Verifier) JWKS() map[string]any {
	keys := []map[string]any{}
	if ik, ok := v.byIss[v.cfg.Issuer]; ok {
		for _, k := range ik.keys {
			if pub, ok := k.Verify.(ed25519.PublicKey); ok {
				keys = append(keys, map[string]any{
					"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.ID,
					"x": base64.RawURLEncoding.EncodeToString(pub),
				})
			}
		}
	}
	return map[string]any{"keys": keys}
}

// Algorithms lists the JWS algorithms the verifier accepts, sorted.
func (v *Verifier) Algorithms() []string {
	var out []string
	for _, ik := range v.byIss {
		for _, k := range ik.keys {
			if !slices.Contains(out, k.Method.Alg()) {
				out = append(out, k.Method.Alg())
			}
		}
	}
	slices.Sort(out)
	return out
}

// RevokedBefore is the TokensNotBefore that revokes every token issued up
// to now, for a credential whose TokensNotBefore is prev (zero: none). iat
// has a one-second resolution, so the cut is a whole second past now; and
// Mint raises the iat of a token minted after the last revocation to prev,
// so that within one second "revoke, mint, revoke" would compute the cut
// the token holds: the cut is also a second past prev, which is past
// every iat issued so far. Revocations in a burst move the cut a second
// ahead each; tokens minted meanwhile are usable at once (Mint keeps nbf
// at the real time).
func RevokedBefore(now, prev time.Time) time.Time {
	cut := now.Truncate(time.Second).Add(time.Second)
	if p := prev.Truncate(time.Second).Add(time.Second); p.After(cut) {
		cut = p
	}
	return cut
}
