package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sipwarden/sipwarden/api"
)

// generatedUsername is what the server makes a username of: a prefix and
// 13 random lowercase letters and digits, within the username rules.
var generatedUsername = regexp.MustCompile(`^gencred[a-z0-9]{13}$`)

// createdWithPassword is a POST /v1/credentials answer with the generated
// password.
type createdWithPassword struct {
	api.Credential
	Password string `json:"password"`
}

// TestCreateCredentialGenerated: a credential created with a connection_id
// and a name only (Telnyx's on-demand credentials) gets a generated
// username and password, the password in the create answer only; it was
// a 422 naming both fields.
func TestCreateCredentialGenerated(t *testing.T) {
	e := newEnv(t)
	var conn api.Connection
	e.ok(http.StatusCreated, "POST", "/v1/connections", map[string]any{"name": "pbx"}, &conn)

	var c createdWithPassword
	e.ok(http.StatusCreated, "POST", "/v1/credentials", map[string]any{"connection_id": conn.ID, "name": "My-new-credential"}, &c)
	if !generatedUsername.MatchString(c.Username) {
		t.Errorf("generated username: got %q, want gencred and 13 lowercase letters or digits", c.Username)
	}
	if c.ConnectionID != conn.ID || c.Name != "My-new-credential" || c.State != api.CredentialActive {
		t.Errorf("got %+v, want connection %s, the name, active", c.Credential, conn.ID)
	}
	if n := utf8.RuneCountInString(c.Password); n != 24 || strings.ContainsAny(c.Password, "0O1lIo") {
		t.Errorf("generated password %q: got %d characters, want 24 without look-alikes", c.Password, n)
	}
	// The stored HA1s are those of the answered username and password.
	stored, err := e.db.Credential(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"MD5", "SHA-256", "SHA-512-256"} {
		if got, want := stored.HA1[alg], ha1(t, alg, c.Username, testRealm, c.Password); got != want {
			t.Errorf("stored %s HA1: got %s, want that of the answered password %s", alg, got, want)
		}
	}
	// Shown once: never by GET or a list.
	for _, path := range []string{"/v1/credentials/" + c.ID, "/v1/credentials", "/v1/credentials?username=" + c.Username} {
		rec := e.do("GET", path, nil)
		if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), c.Password) || strings.Contains(rec.Body.String(), `"password"`) {
			t.Errorf("GET %s: got %d %s, want 200 without the password", path, rec.Code, rec.Body)
		}
	}
	// Another one gets another username and password.
	var c2 createdWithPassword
	// Joiners stay allowed in names (emoji sequences, Persian), unlike
	// other invisible format characters (TestValidation).
	e.ok(http.StatusCreated, "POST", "/v1/credentials", map[string]any{"name": "second \U0001f468\u200d\U0001f4bb \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"}, &c2)
	if c2.Username == c.Username || c2.Password == c.Password || c2.ConnectionID != "default" {
		t.Errorf("second: got %q %q on %q, want a new username and password on default", c2.Username, c2.Password, c2.ConnectionID)
	}

	// Either one alone.
	var named createdWithPassword
	e.ok(http.StatusCreated, "POST", "/v1/credentials", map[string]any{"username": "alice"}, &named)
	if named.Username != "alice" || named.Password == "" {
		t.Errorf("username given: got %q and password %q, want alice and a generated password", named.Username, named.Password)
	}
	rec := e.do("POST", "/v1/credentials", map[string]any{"password": "correct-horse-battery"})
	if rec.Code != http.StatusCreated || strings.Contains(rec.Body.String(), `"password"`) {
		t.Errorf("password given: got %d %s, want 201 without a password", rec.Code, rec.Body)
	}
}

// TestGeneratedPasswordLength: a generated password is at least
// http.min_password_length characters.
func TestGeneratedPasswordLength(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MinPasswordLength = 40 })
	var c createdWithPassword
	e.ok(http.StatusCreated, "POST", "/v1/credentials", map[string]any{"name": "long"}, &c)
	if n := utf8.RuneCountInString(c.Password); n != 40 {
		t.Errorf("generated password: got %d characters, want 40", n)
	}
}

// TestGeneratedUsernameTaken: a generated username another credential has
// is drawn again, not answered 409.
func TestGeneratedUsernameTaken(t *testing.T) {
	e := newEnv(t)
	e.createCredential(map[string]any{"username": "gencredtaken", "password": "correct-horse-battery"})
	draws := []string{"gencredtaken", "gencredtaken", "gencredfree"}
	e.srv.SetUsernameGenerator(func() string {
		u := draws[0]
		if len(draws) > 1 {
			draws = draws[1:]
		}
		return u
	})
	var c createdWithPassword
	e.ok(http.StatusCreated, "POST", "/v1/credentials", map[string]any{"name": "retried"}, &c)
	if c.Username != "gencredfree" {
		t.Errorf("got username %q, want gencredfree (the third draw)", c.Username)
	}
	stored, err := e.db.Credential(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stored.HA1["MD5"], ha1(t, "MD5", "gencredfree", testRealm, c.Password); got != want {
		t.Errorf("HA1 after a retry: got %s, want that of the username finally used", got)
	}
	// A generator that only ever collides ends, as a 409.
	e.srv.SetUsernameGenerator(func() string { return "gencredtaken" })
	checkError(t, e.do("POST", "/v1/credentials", map[string]any{"name": "stuck"}), http.StatusConflict, api.CodeUsernameTaken, "/username")
}
