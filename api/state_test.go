package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
)

// TestCredentialState checks the read-only state of a credential: computed
// when read, so a credential whose expires_at passes turns expired without
// any write, and a disabled one reads disabled whatever its expiry.
func TestCredentialState(t *testing.T) {
	e := newEnv(t)
	pw := "correct-horse-battery"
	soon := e.now.Add(time.Hour).Format(time.RFC3339)
	active := e.createCredential(map[string]any{"username": "active", "password": pw})
	expiring := e.createCredential(map[string]any{"username": "expiring", "password": pw, "expires_at": soon})
	disabled := e.createCredential(map[string]any{"username": "disabled", "password": pw, "enabled": false, "expires_at": soon})

	get := func(id string) api.Credential {
		t.Helper()
		var c api.Credential
		e.ok(http.StatusOK, "GET", "/v1/credentials/"+id, nil, &c)
		return c
	}
	list := func() map[string]string {
		t.Helper()
		var l []api.Credential
		e.ok(http.StatusOK, "GET", "/v1/credentials", nil, &l)
		m := map[string]string{}
		for _, c := range l {
			m[c.ID] = c.State
		}
		return m
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		listed := list()
		for id, w := range want {
			if got := get(id).State; got != w {
				t.Errorf("%s: GET %s: got state %q, want %q", when, id, got, w)
			}
			if got := listed[id]; got != w {
				t.Errorf("%s: listed %s: got state %q, want %q", when, id, got, w)
			}
		}
	}
	for _, c := range []struct {
		cred api.Credential
		want string
	}{{active, api.CredentialActive}, {expiring, api.CredentialActive}, {disabled, api.CredentialDisabled}} {
		if c.cred.State != c.want {
			t.Errorf("created %s: got state %q, want %q", c.cred.Username, c.cred.State, c.want)
		}
	}
	check("before expiry", map[string]string{active.ID: api.CredentialActive, expiring.ID: api.CredentialActive, disabled.ID: api.CredentialDisabled})

	// The expiry passes: nothing is written, the state changes.
	e.now = e.now.Add(2 * time.Hour)
	check("after expiry", map[string]string{active.ID: api.CredentialActive, expiring.ID: api.CredentialExpired, disabled.ID: api.CredentialDisabled})
	if c := get(expiring.ID); !c.Enabled {
		t.Errorf("expired credential: got enabled %v, want true (state tells it is expired)", c.Enabled)
	}

	// Enabling an expired credential leaves it expired; a new expiry makes
	// it active; so does revoking its tokens (the answer of revoke_tokens
	// is the credential too).
	var c api.Credential
	e.ok(http.StatusOK, "PATCH", "/v1/credentials/"+disabled.ID, map[string]any{"enabled": true}, &c)
	if c.State != api.CredentialExpired {
		t.Errorf("enabled after expiry: got state %q, want %q", c.State, api.CredentialExpired)
	}
	e.ok(http.StatusOK, "PATCH", "/v1/credentials/"+disabled.ID, `{"expires_at":null}`, &c)
	if c.State != api.CredentialActive {
		t.Errorf("expiry cleared: got state %q, want %q", c.State, api.CredentialActive)
	}
	e.ok(http.StatusOK, "PATCH", "/v1/credentials/"+active.ID, map[string]any{"enabled": false}, &c)
	if c.State != api.CredentialDisabled {
		t.Errorf("disabled: got state %q, want %q", c.State, api.CredentialDisabled)
	}
	e.ok(http.StatusOK, "POST", "/v1/credentials/"+expiring.ID+"/actions/revoke_tokens", nil, &c)
	if c.State != api.CredentialExpired {
		t.Errorf("revoke_tokens answer: got state %q, want %q", c.State, api.CredentialExpired)
	}

	// state is read-only: a body holding it is refused, naming it.
	cases := []struct{ method, path, body string }{
		{"POST", "/v1/credentials", `{"username":"x","password":"correct-horse-battery","state":"active"}`},
		{"PATCH", "/v1/credentials/" + active.ID, `{"state":"active"}`},
		{"PATCH", "/v1/credentials/" + active.ID, `{"state":null}`},
	}
	for _, tc := range cases {
		checkError(t, e.do(tc.method, tc.path, tc.body), http.StatusUnprocessableEntity, api.CodeInvalidValue, "/state")
	}
	if c := get(active.ID); c.State != api.CredentialDisabled {
		t.Errorf("after refused PATCH: got state %q, want %q", c.State, api.CredentialDisabled)
	}
}

// TestPastExpiryEndsCredential: any expires_at that has passed ends the
// credential at once, the zero time included (it used to read as "never
// expires": state active, expires_at null); only null clears the expiry.
func TestPastExpiryEndsCredential(t *testing.T) {
	e := newEnv(t)
	for _, past := range []string{
		"0001-01-01T00:00:00Z",
		"0001-01-01T01:00:00+01:00", // the zero instant in another zone
		"1970-01-01T00:00:00Z",
		e.now.Add(-time.Second).Format(time.RFC3339),
		e.now.Format(time.RFC3339),
	} {
		t.Run(past, func(t *testing.T) {
			c := e.createCredential(map[string]any{"username": "u" + strconv.Itoa(len(e.bodies)), "password": "correct-horse-battery"})
			var got api.Credential
			e.ok(http.StatusOK, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"expires_at": past}, &got)
			if got.State != api.CredentialExpired || got.ExpiresAt == nil || got.ExpiresAt.After(e.now) {
				t.Fatalf("PATCH expires_at %s: got state %q expires_at %v, want expired at or before %v", past, got.State, got.ExpiresAt, e.now)
			}
			e.ok(http.StatusOK, "GET", "/v1/credentials/"+c.ID, nil, &got)
			if got.State != api.CredentialExpired {
				t.Fatalf("GET after PATCH expires_at %s: got state %q, want expired", past, got.State)
			}
			e.ok(http.StatusOK, "PATCH", "/v1/credentials/"+c.ID, `{"expires_at":null}`, &got)
			if got.State != api.CredentialActive || got.ExpiresAt != nil {
				t.Fatalf("PATCH expires_at null: got state %q expires_at %v, want active and null", got.State, got.ExpiresAt)
			}
		})
	}
}
