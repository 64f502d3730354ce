package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzCredentialCreate posts arbitrary bodies: the API must never panic,
// never answer 5xx, always answer JSON, and never echo a password.
func FuzzCredentialCreate(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice","password":"correct-horse-battery"}`,
		`{"username":"bob","password":"correct-horse-battery","connection_id":"default","name":"Bob","tag":"x","enabled":false,"expires_at":"2099-01-01T00:00:00Z","algorithms":["SHA-256","MD5"]}`,
		`{"username":"a b","password":"x","algorithms":[]}`,
		`{"username":null,"password":null,"expires_at":null,"algorithms":null}`,
		`{"expires_at":"2000-01-01T00:00:00Z"}`,
		`{"username":"` + strings.Repeat("u", 70) + `"}`,
		`{"username": "x",}`,
		`[]`,
		``,
		`{"username":"c","password":"correct-horse-battery"} trailing`,
		`{"algorithms":[1,2]}`,
		`{"name":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e := *e // the same server, reporting to this input's t
		e.t, e.bodies = t, nil
		rec := e.do("POST", "/v1/credentials", string(body))
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("not JSON: %s", rec.Body)
		}
		if rec.Code == http.StatusCreated {
			var in struct{ Username, Password, Name, Tag, ConnectionID string }
			leak := json.Unmarshal(body, &in) == nil && strings.Contains(rec.Body.String(), in.Password) &&
				!strings.Contains(in.Username+"\x00"+in.Name+"\x00"+in.Tag+"\x00"+in.ConnectionID, in.Password)
			if leak {
				t.Fatalf("response echoes the password: %s", rec.Body)
			}
		}
	})
}
