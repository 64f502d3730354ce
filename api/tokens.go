package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/token"
)

// Token is a JWT minted for a credential (POST /v1/credentials/{id}/token).
type Token struct {
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expires_at"`
	CredentialID string    `json:"credential_id"`
	Username     string    `json:"username"`
}

// Minter mints tokens: *token.Issuer.
type Minter interface {
	Mint(user, credID string, revokedBefore, notAfter time.Time) (string, time.Time, error)
}

// KeySet publishes the verification keys: *token.Verifier.
type KeySet interface {
	JWKS() map[string]any
}

// SetTokens enables the token routes. Call it before serving; without it
// they answer 404.
func (s *Server) SetTokens(m Minter, k KeySet) { s.minter, s.keys = m, k }

// revokeTokensOf moves c's TokensNotBefore past every token minted for
// it until now (token.RevokedBefore: strictly past the previous cut too,
// which tokens minted since may carry as their iat). Call it inside the
// store's update of c.
func revokeTokensOf(c *store.Credential, now time.Time) {
	c.TokensNotBefore = token.RevokedBefore(now, c.TokensNotBefore)
}

// revokedBindings reports the bindings of c registered with a token its
// TokensNotBefore revokes.
func revokedBindings(c store.Credential) func(store.Binding) bool {
	return func(b store.Binding) bool { return b.RevokedBy(c.TokensNotBefore) }
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	if s.minter == nil {
		return newError(http.StatusNotFound, CodeNotFound, "tokens are not enabled on this server")
	}
	// No body, or an empty object: the lifetime is jwt.ttl (capped by the
	// credential's expiry). A field such as {"ttl":"999h"} is refused
	// rather than ignored, so that nobody believes he chose it.
	if err := decodeOptionalEmpty(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := s.db.Credential(id)
	if err != nil {
		return storeErr("get", "credential", id, err)
	}
	now := s.now()
	switch {
	case !c.Enabled:
		return newError(http.StatusConflict, CodeCredentialUnusable, "the credential is disabled: enable it before minting a token")
	case c.Expired(now):
		return newError(http.StatusConflict, CodeCredentialUnusable, "the credential has expired: extend expires_at before minting a token")
	}
	// A token of a credential whose connection is inactive would be
	// refused at once (auth refuses the connection's credentials).
	if conn, err := s.db.Connection(c.ConnectionID); err != nil {
		return storeErr("get", "connection", c.ConnectionID, err)
	} else if !conn.Active {
		return newError(http.StatusConflict, CodeCredentialUnusable, "the credential's connection is inactive: activate it before minting a token")
	}
	tok, exp, err := s.minter.Mint(c.Username, c.ID, c.TokensNotBefore, c.ExpiresAt)
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "token minted", "credential_id", c.ID, "username", c.Username, "expires_at", exp.UTC())
	writeJSON(w, http.StatusCreated, envelope{Data: Token{Token: tok, ExpiresAt: exp.UTC(), CredentialID: c.ID, Username: c.Username}})
	return nil
}

func (s *Server) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	// No fields: {"x":1} is refused rather than ignored, as for a token.
	if err := decodeOptionalEmpty(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	now := s.now()
	c, err := s.db.UpdateCredential(id, func(c *store.Credential) error {
		revokeTokensOf(c, now)
		c.UpdatedAt = now
		return nil
	})
	if err != nil {
		return storeErr("update", "credential", id, err)
	}
	// The registrations made with those tokens end too: "stop working at
	// once" (a device registered with one kept its calls for up to an
	// hour). Those made with the password stay.
	if err := s.cfg.Lifecycle.Prune(c, lifecycle.TokensRevoked, revokedBindings(c)); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "tokens revoked", "credential_id", c.ID, "username", c.Username)
	writeJSON(w, http.StatusOK, envelope{Data: credentialOut(c, now)})
	return nil
}

// jwks serves the public keys (RFC 7517), without an API key.
func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	if s.keys == nil {
		writeError(w, newError(http.StatusNotFound, CodeNotFound, "tokens are not enabled on this server"))
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	if err := json.NewEncoder(w).Encode(s.keys.JWKS()); err != nil {
		s.log.Debug("write jwks", "error", errors.Unwrap(err))
	}
}
