package api_test

import (
	"net/http"
	"testing"

	"github.com/sipwarden/sipwarden/api"
)

// TestImportIDTaken: a record whose id is already a credential's is a 409
// naming the record's id, not a server fault (the store's ErrExists used
// to fall through to 500).
func TestImportIDTaken(t *testing.T) {
	e := newEnv(t)
	const id = "7f0c1a52-2b49-4a8e-9d6f-3e5a1b2c4d5e"
	line := func(user string) string {
		return `{"id":"` + id + `","username":"` + user + `","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}` + "\n"
	}
	e.ok(http.StatusCreated, "POST", "/v1/import", line("imp1"), nil)
	cases := []struct {
		name, body, pointer string
	}{
		{"taken by a stored credential", `{"username":"imp0","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}` + "\n" + line("imp2"), "/1/id"},
		{"twice in one batch", line("imp3"), "/0/id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do("POST", "/v1/import", c.body)
			checkError(t, rec, http.StatusConflict, api.CodeIDTaken, c.pointer)
		})
	}
	// Nothing of a refused batch was created.
	var got []api.Credential
	e.ok(http.StatusOK, "GET", "/v1/credentials?username=imp0", nil, &got)
	if len(got) != 0 {
		t.Fatalf("after a refused import: got %+v, want no imp0", got)
	}
}

// TestEmptyImportHasNoEmptySource: an import without records is a 422
// about the body as a whole, without a source: it had "source": {},
// which openapi.json's ErrorSource (minProperties 1) refuses.
func TestEmptyImportHasNoEmptySource(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{"", "\n\n", "  \n"} {
		rec := e.do("POST", "/v1/import", body)
		got := checkError(t, rec, http.StatusUnprocessableEntity, api.CodeRequired, "")
		if got.Errors[0].Source != nil {
			t.Errorf("body %q: got source %+v, want none; body %s", body, got.Errors[0].Source, rec.Body)
		}
	}
}
