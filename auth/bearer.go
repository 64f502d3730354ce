package auth

import (
	"errors"
	"strings"

	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/token"
)

// Tokens verifies Bearer tokens: *token.Verifier.
type Tokens interface {
	Verify(tok string) (token.Claims, error)
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// value (RFC 8898 section 2.1, RFC 6750 section 2.1: the scheme is
// case-insensitive).
func bearerToken(h string) (string, bool) {
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(h[7:])
	return tok, tok != ""
}

// checkBearer authenticates a request by its token: the identity it names
// then goes through what a digest identity does (enabled, unexpired,
// allow-list), a token of ours must name the credential's id (not only its
// username), and a token issued before the credential's TokensNotBefore
// (advanced by revoke_tokens, a password change and disabling) is revoked. The token never reaches a log or an error.
func (a *Authenticator) checkBearer(tok string, r Request) Result {
	res := Result{Scheme: "bearer", Outcome: InvalidToken}
	c, err := a.cfg.Tokens.Verify(tok)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	res.Username = c.User
	cred, err := a.creds.CredentialByUsername(c.User)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if c.RequireCredential {
			res.Detail = "no credential for the token's user"
			return res
		}
		// An external issuer's user without a local credential.
		res.Credential = store.Credential{Username: c.User, Enabled: true}
		res.Outcome, res.TokenExpires = OK, c.Expires
		return res
	case err != nil:
		res.Detail = "credential lookup failed"
		return res
	}
	res.Credential = cred
	switch {
	case !cred.Enabled:
		res.Detail = "credential disabled"
	case cred.Expired(a.now()):
		res.Detail = "credential expired"
	case c.Local && c.CredentialID != cred.ID:
		// Minted for a credential since deleted (and the username taken
		// again), or before tokens named their credential.
		res.Detail = "token of another credential"
	case !cred.TokensNotBefore.IsZero() && (c.IssuedAt.IsZero() || c.IssuedAt.Before(cred.TokensNotBefore)):
		res.Detail = "token revoked"
	default:
		res.Outcome, res.TokenExpires = a.checkACL(cred, r.Source), c.Expires
		res.TokenIssuedAt = c.IssuedAt
		if res.TokenIssuedAt.IsZero() {
			res.TokenIssuedAt = store.TokenIssuedUnknown()
		}
	}
	return res
}

// bearerChallenge is the RFC 8898 section 2.3 challenge.
func (a *Authenticator) bearerChallenge(invalid bool) string {
	scope := a.cfg.BearerScope
	if scope == "" {
		scope = "sip"
	}
	v := `Bearer realm="` + a.cfg.Realm + `", scope="` + scope + `"`
	if invalid {
		v += `, error="invalid_token"`
	}
	return v
}
