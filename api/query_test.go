package api_test

import (
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/api"
)

// TestEveryRouteRefusesUnknownQuery: every route of the table answers a
// query parameter it does not take with 400 invalid_parameter naming it,
// as openapi.json documents, and does nothing else: the write routes
// ignored them (POST /v1/numbers?dry_run=1 created the number, DELETE
// /v1/numbers/{n}?dry_run=1 deleted it).
func TestEveryRouteRefusesUnknownQuery(t *testing.T) {
	checker := newAnswerChecker(t, loadOpenAPI(t))
	e := newEnv(t)
	var level slog.LevelVar
	e.srv.HandleLogLevel(&level)
	cred := e.createCredential(map[string]any{"username": "dry", "password": "correct-horse-battery", "name": "before"})
	e.ok(http.StatusCreated, "POST", "/v1/numbers", map[string]any{"number": "+15550100", "connection_id": "default"}, nil)
	// Bodies the routes would take: only the query is wrong.
	bodies := map[string]string{
		"POST /v1/numbers":           `{"number":"+15550101","connection_id":"default"}`,
		"POST /v1/credentials":       `{"username":"dry2","password":"correct-horse-battery"}`,
		"POST /v1/connections":       `{"name":"dry"}`,
		"PATCH /v1/credentials/{id}": `{"name":"after"}`,
		"PUT /v1/log-level":          `{"level":"debug"}`,
		"POST /v1/api-keys":          `{"name":"dry","scope":"read"}`,
	}
	routes := e.srv.RoutePatterns()
	for _, pattern := range slices.Sorted(maps.Keys(routes)) {
		method, path, _ := strings.Cut(pattern, " ")
		id := "default"
		if strings.HasPrefix(path, "/v1/credentials/") {
			id = cred.ID
		}
		path = strings.NewReplacer("{id}", id, "{ip}", "192.0.2.1", "{number}", "+15550100").Replace(path)
		t.Run(pattern, func(t *testing.T) {
			body := bodies[pattern]
			var rec *httptest.ResponseRecorder
			if body == "" {
				rec = e.do(method, path+"?dry_run=1", nil)
			} else {
				rec = e.do(method, path+"?dry_run=1", body)
			}
			checkError(t, rec, http.StatusBadRequest, api.CodeInvalidParameter, "?dry_run")
			checker.check(httptest.NewRequest(method, path+"?dry_run=1", nil), body, rec, false)
		})
	}
	// Nothing was done.
	e.ok(http.StatusOK, "GET", "/v1/numbers/+15550100", nil, nil)
	checkError(t, e.do("GET", "/v1/numbers/+15550101", nil), http.StatusNotFound, api.CodeNotFound, "")
	var got api.Credential
	e.ok(http.StatusOK, "GET", "/v1/credentials/"+cred.ID, nil, &got)
	if got.Name != "before" {
		t.Errorf("credential name: got %q, want %q", got.Name, "before")
	}
	if level.Level() != slog.LevelInfo {
		t.Errorf("log level: got %v, want %v", level.Level(), slog.LevelInfo)
	}
	var creds []api.Credential
	e.ok(http.StatusOK, "GET", "/v1/credentials?username=dry2", nil, &creds)
	if len(creds) != 0 {
		t.Errorf("got %d credentials dry2, want none", len(creds))
	}
}

// TestUnknownQueryNamesWhatTheRouteTakes: the 400 lists the parameters of
// the route (or says it takes none), and a list answered whole says it is
// not paginated: single objects and the import were told "known:
// page[size], page[after]", and webhook_deliveries ignored page[size].
func TestUnknownQueryNamesWhatTheRouteTakes(t *testing.T) {
	e := newEnv(t)
	cred := e.createCredential(map[string]any{"username": "q", "password": "correct-horse-battery"})
	cases := []struct {
		path, param string
		want        string // in the detail
		notWant     string // not in the detail
	}{
		{"/v1/credentials/" + cred.ID + "?foo=1", "foo", "GET /v1/credentials/{id} takes no query parameters", "page["},
		{"/v1/connections/default?page[size]=1", "page[size]", "takes no query parameters", ""},
		{"/v1/credentials?foo=1", "foo", "takes connection_id, tag, username, enabled, page[size], page[after]", ""},
		{"/v1/numbers?tag=x", "tag", "takes connection_id, credential_id, page[size], page[after]", ""},
		{"/v1/api-keys?page[size]=1", "page[size]", "not paginated", ""},
		{"/v1/connections/default/webhook_deliveries?page[size]=1", "page[size]", "not paginated", ""},
		{"/v1/connections/default/webhook_deliveries?page[after]=x", "page[after]", "not paginated", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			got := checkError(t, e.do("GET", c.path, nil), http.StatusBadRequest, api.CodeInvalidParameter, "?"+c.param)
			d := got.Errors[0].Detail
			if !strings.Contains(d, c.want) || c.notWant != "" && strings.Contains(d, c.notWant) {
				t.Errorf("got detail %q, want it to say %q (and not %q)", d, c.want, c.notWant)
			}
		})
	}
	rec := e.do("POST", "/v1/import?foo=1", `{"username":"imp","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}`)
	if d := checkError(t, rec, http.StatusBadRequest, api.CodeInvalidParameter, "?foo").Errors[0].Detail; !strings.Contains(d, "takes no query parameters") {
		t.Errorf("import: got detail %q, want it to say the route takes no query parameters", d)
	}
	// The lists' own parameters still work.
	e.ok(http.StatusOK, "GET", "/v1/credentials?username=q&page[size]=1", nil, nil)
	e.ok(http.StatusOK, "GET", "/v1/connections/default/webhook_deliveries", nil, nil)
}
