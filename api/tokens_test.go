package api_test

import (
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/token"
)

// tokenEnv is an env that mints and verifies tokens with its clock.
func tokenEnv(t *testing.T) (*env, *token.Verifier) {
	t.Helper()
	e := newEnv(t)
	key, err := token.Ed25519Key(make([]byte, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Issuer: "sipwarden", Audience: "sip", TTL: time.Hour, Key: key, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier(token.VerifierConfig{Issuer: "sipwarden", Audience: "sip", Key: key, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetTokens(iss, ver)
	return e, ver
}

// TestRevocationAlwaysRevokes: every way of revoking a credential's
// tokens invalidates every token minted before it, even when the clock
// has not moved since the previous revocation and a token was minted in
// between (the cut used to be the same second twice, the token's iat
// raised to it, and the token kept working). A token is revoked when its
// iat is before the credential's tokens_not_before (auth.checkBearer).
func TestRevocationAlwaysRevokes(t *testing.T) {
	e, ver := tokenEnv(t)
	pw := "correct-horse-battery"
	revokes := []struct {
		name         string
		method, path string
		body         any
		enableAfter  bool
	}{
		{"revoke_tokens", "POST", "/actions/revoke_tokens", nil, false},
		{"password change", "PATCH", "", map[string]any{"password": "another-long-password-1"}, false},
		{"disable", "PATCH", "", map[string]any{"enabled": false}, true},
	}
	for _, rv := range revokes {
		t.Run(rv.name, func(t *testing.T) {
			c := e.createCredential(map[string]any{"username": "rv" + rv.name[:3], "password": pw})
			revoke := func() api.Credential {
				t.Helper()
				var got api.Credential
				e.ok(http.StatusOK, rv.method, "/v1/credentials/"+c.ID+rv.path, rv.body, &got)
				if rv.enableAfter {
					e.ok(http.StatusOK, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"enabled": true}, &got)
				}
				if got.TokensNotBefore == nil {
					t.Fatalf("%s: no tokens_not_before", rv.name)
				}
				return got
			}
			mint := func() token.Claims {
				t.Helper()
				var tok api.Token
				e.ok(http.StatusCreated, "POST", "/v1/credentials/"+c.ID+"/token", nil, &tok)
				claims, err := ver.Verify(tok.Token)
				if err != nil {
					t.Fatalf("a token just minted does not verify: %v", err)
				}
				return claims
			}
			// The clock stands still: everything happens within one second.
			revoke()
			var minted []token.Claims
			for range 3 {
				minted = append(minted, mint())
				got := revoke()
				for i, m := range minted {
					if !m.IssuedAt.Before(*got.TokensNotBefore) {
						t.Fatalf("token %d (iat %v) survives the revocation after it (tokens_not_before %v)", i, m.IssuedAt, *got.TokensNotBefore)
					}
				}
			}
			// A token minted after the last revocation holds.
			fresh := mint()
			var got api.Credential
			e.ok(http.StatusOK, "GET", "/v1/credentials/"+c.ID, nil, &got)
			if fresh.IssuedAt.Before(*got.TokensNotBefore) {
				t.Fatalf("token minted after the revocations: iat %v before tokens_not_before %v", fresh.IssuedAt, *got.TokensNotBefore)
			}
		})
	}
}

// TestTokenBodyRefusesFields: POST .../token takes no fields; one such as
// ttl used to be ignored (201 with the default lifetime), as if chosen.
func TestTokenBodyRefusesFields(t *testing.T) {
	e, _ := tokenEnv(t)
	c := e.createCredential(map[string]any{"username": "ttl", "password": "correct-horse-battery"})
	path := "/v1/credentials/" + c.ID + "/token"
	checkError(t, e.do("POST", path, `{"ttl":"999h"}`), http.StatusBadRequest, api.CodeUnknownField, "/ttl")
	checkError(t, e.do("POST", path, `[]`), http.StatusBadRequest, api.CodeInvalidJSON, "")
	for _, body := range []string{"", "{}", " \n"} {
		var tok api.Token
		e.ok(http.StatusCreated, "POST", path, body, &tok)
		if want := e.now.Add(time.Hour); !tok.ExpiresAt.Equal(want) {
			t.Fatalf("body %q: token expires %v, want the configured TTL: %v", body, tok.ExpiresAt, want)
		}
	}
}

// TestActionBodies: revoke_tokens takes no fields, as the token route
// does ({"x":1} used to be ignored), and a body of null is not an object
// (a PATCH of null used to answer 200, changing nothing).
func TestActionBodies(t *testing.T) {
	e, _ := tokenEnv(t)
	c := e.createCredential(map[string]any{"username": "bodies", "password": "correct-horse-battery"})
	revoke := "/v1/credentials/" + c.ID + "/actions/revoke_tokens"
	checkError(t, e.do("POST", revoke, `{"x":1}`), http.StatusBadRequest, api.CodeUnknownField, "/x")
	for _, body := range []string{"", "{}"} {
		e.ok(http.StatusOK, "POST", revoke, body, &api.Credential{})
	}
	for _, path := range []string{"/v1/credentials/" + c.ID, "/v1/connections/default"} {
		checkError(t, e.do("PATCH", path, "null"), http.StatusBadRequest, api.CodeInvalidJSON, "")
	}
	checkError(t, e.do("POST", "/v1/credentials", " null "), http.StatusBadRequest, api.CodeInvalidJSON, "")
}

// TestTokenRefusedForInactiveConnection: a credential whose connection is
// inactive cannot register, so no token is minted for it (409, as for a
// disabled credential); it used to get one that every REGISTER refused.
func TestTokenRefusedForInactiveConnection(t *testing.T) {
	e, _ := tokenEnv(t)
	var conn api.Connection
	e.ok(http.StatusCreated, "POST", "/v1/connections", map[string]any{"name": "paused"}, &conn)
	c := e.createCredential(map[string]any{"username": "paused1", "password": "correct-horse-battery", "connection_id": conn.ID})
	path := "/v1/credentials/" + c.ID + "/token"
	e.ok(http.StatusCreated, "POST", path, nil, &api.Token{})
	e.ok(http.StatusOK, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"active": false}, &conn)
	checkError(t, e.do("POST", path, nil), http.StatusConflict, api.CodeCredentialUnusable, "")
	e.ok(http.StatusOK, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"active": true}, &conn)
	e.ok(http.StatusCreated, "POST", path, nil, &api.Token{})
}

// TestImportRevokesEarlierTokens: a credential exported, deleted and
// imported again (same id, same username) must not bring back the tokens
// minted for it before: the export holds no tokens_not_before, so the
// imported credential had none, and a token revoked (or of a credential
// deleted) verified again.
func TestImportRevokesEarlierTokens(t *testing.T) {
	e, ver := tokenEnv(t)
	c := e.createCredential(map[string]any{"username": "reimp", "password": "correct-horse-battery"})
	var tok api.Token
	e.ok(http.StatusCreated, "POST", "/v1/credentials/"+c.ID+"/token", nil, &tok)
	e.ok(http.StatusOK, "POST", "/v1/credentials/"+c.ID+"/actions/revoke_tokens", nil, nil)
	exp := e.do("GET", "/v1/export", nil)
	if exp.Code != http.StatusOK {
		t.Fatalf("export: %d %s", exp.Code, exp.Body)
	}
	e.ok(http.StatusNoContent, "DELETE", "/v1/credentials/"+c.ID, nil, nil)
	e.now = e.now.Add(time.Minute)
	e.ok(http.StatusCreated, "POST", "/v1/import", exp.Body.String(), nil)

	var got api.Credential
	e.ok(http.StatusOK, "GET", "/v1/credentials/"+c.ID, nil, &got)
	cl, err := ver.Verify(tok.Token)
	if err != nil {
		t.Fatalf("the token should still verify by signature: %v", err)
	}
	if got.TokensNotBefore == nil || !cl.IssuedAt.Before(*got.TokensNotBefore) {
		t.Fatalf("token minted at %v before the export works again after the import (tokens_not_before %v)", cl.IssuedAt, got.TokensNotBefore)
	}
	// A token minted after the import holds.
	var fresh api.Token
	e.ok(http.StatusCreated, "POST", "/v1/credentials/"+c.ID+"/token", nil, &fresh)
	fc, err := ver.Verify(fresh.Token)
	if err != nil {
		t.Fatal(err)
	}
	if fc.IssuedAt.Before(*got.TokensNotBefore) {
		t.Fatalf("a token minted after the import is revoked: iat %v, tokens_not_before %v", fc.IssuedAt, *got.TokensNotBefore)
	}
}
