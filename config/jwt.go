package config

import (
	"fmt"
	"time"
)

// EnvJWTSecret carries the HS256 secret instead of the file.
const EnvJWTSecret = "SIPWARDEN_JWT_SECRET"

// JWT configures tokens minted per credential and RFC 8898 Bearer
// authentication in REGISTER and proxied requests.
type JWT struct {
	// Enabled offers the Bearer challenge (RFC 8898 section 2.3) beside the
	// Digest ones. Tokens this server minted, and those of ExternalIssuers,
	// are accepted on every transport either way: a client that sends
	// "Authorization: Bearer" is never challenged first. Default false.
	Enabled bool `yaml:"enabled"`
	// Issuer (iss) of minted tokens. Default "sipwarden".
	Issuer string `yaml:"issuer"`
	// Audience (aud) of minted tokens. Default "sip".
	Audience string `yaml:"audience"`
	// TTL of minted tokens, never past the credential's expires_at. Default 24h.
	TTL Duration `yaml:"ttl"`
	// Algorithm: ed25519 (default; the key is generated into
	// DataDir/jwt-ed25519.key on first start and published at
	// GET /v1/jwks) or hs256 (with Secret).
	Algorithm string `yaml:"algorithm"`
	// Secret for hs256, at least 32 characters. Default: env SIPWARDEN_JWT_SECRET.
	Secret string `yaml:"secret"`
	// Leeway for exp and nbf (clock skew). Default 30s.
	Leeway Duration `yaml:"leeway"`
	// Scope of the Bearer challenge. Default "sip".
	Scope string `yaml:"scope"`
	// ChallengeOrder is digest_first (default: old phones read only the
	// first challenge) or bearer_first.
	ChallengeOrder string `yaml:"challenge_order"`
	// ExternalIssuers are identity providers whose tokens are accepted.
	ExternalIssuers []ExternalIssuer `yaml:"external_issuers"`
}

// ExternalIssuer is an operator's identity provider.
type ExternalIssuer struct {
	// Issuer (iss) the tokens carry.
	Issuer string `yaml:"issuer"`
	// Audience (aud) they must carry.
	Audience string `yaml:"audience"`
	// JWKSFile is a JWK Set file with its public keys (OKP Ed25519, RSA,
	// EC P-256); or
	JWKSFile string `yaml:"jwks_file"`
	// PEMFile holds PEM "PUBLIC KEY" blocks.
	PEMFile string `yaml:"pem_file"`
	// UserClaim names the claim with the SIP username. Default "sub".
	UserClaim string `yaml:"user_claim"`
	// RequireCredential: the user must also have a credential here (then
	// its enabled, expiry, allow-list and revocation apply). Default false.
	RequireCredential bool `yaml:"require_credential"`
}

func (j *JWT) setDefaults() {
	if j.Issuer == "" {
		j.Issuer = "sipwarden"
	}
	if j.Audience == "" {
		j.Audience = "sip"
	}
	if j.TTL == 0 {
		j.TTL = Duration(24 * time.Hour)
	}
	if j.Algorithm == "" {
		j.Algorithm = "ed25519"
	}
	if j.Leeway == 0 {
		j.Leeway = Duration(30 * time.Second)
	}
	if j.Scope == "" {
		j.Scope = "sip"
	}
	if j.ChallengeOrder == "" {
		j.ChallengeOrder = "digest_first"
	}
	if len(j.ExternalIssuers) == 0 {
		j.ExternalIssuers = nil
	}
}

func (j *JWT) validate(bad func(key string, v any, why string)) {
	switch j.Algorithm {
	case "ed25519":
	case "hs256":
		if len(j.Secret) < 32 {
			bad("jwt.secret", "(secret)", "hs256 needs a secret of at least 32 characters (or env "+EnvJWTSecret+")")
		}
	default:
		bad("jwt.algorithm", quote(j.Algorithm), "want ed25519 or hs256")
	}
	if j.TTL.D() < time.Minute || j.TTL.D() > 30*24*time.Hour {
		bad("jwt.ttl", j.TTL.D(), "want 1m to 720h")
	}
	if j.Leeway.D() < 0 || j.Leeway.D() > 5*time.Minute {
		bad("jwt.leeway", j.Leeway.D(), "want 0 to 5m")
	}
	if j.ChallengeOrder != "digest_first" && j.ChallengeOrder != "bearer_first" {
		bad("jwt.challenge_order", quote(j.ChallengeOrder), "want digest_first or bearer_first")
	}
	for _, s := range []struct{ k, v string }{{"jwt.issuer", j.Issuer}, {"jwt.audience", j.Audience}, {"jwt.scope", j.Scope}} {
		if !headerSafe(s.v) {
			bad(s.k, quote(s.v), "must not contain quotes, backslashes or line breaks")
		}
	}
	seen := map[string]bool{j.Issuer: true}
	for i, e := range j.ExternalIssuers {
		key := fmt.Sprintf("jwt.external_issuers[%d]", i)
		if e.Issuer == "" || e.Audience == "" {
			bad(key, quote(e.Issuer), "issuer and audience are required")
		}
		if seen[e.Issuer] {
			bad(key+".issuer", quote(e.Issuer), "listed twice (or the local issuer)")
		}
		seen[e.Issuer] = true
		if (e.JWKSFile == "") == (e.PEMFile == "") {
			bad(key, quote(e.Issuer), "set exactly one of jwks_file and pem_file")
		}
	}
}

func headerSafe(s string) bool {
	for _, c := range s {
		if c == '"' || c == '\\' || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}
