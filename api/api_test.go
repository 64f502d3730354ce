package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
)

const (
	testRealm    = "test.example"
	testAdminKey = "test-admin-key-0123456789abcdef"
)

// fakeLocations is a location table backed by a slice, until the lead's
// end-to-end test runs the real registrar.
type fakeLocations struct {
	mu sync.Mutex
	bs []store.Binding
}

func (f *fakeLocations) Bindings(aor string) []store.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Binding
	for _, b := range f.bs {
		if aor == "" || b.AOR == aor {
			out = append(out, b)
		}
	}
	return out
}

func (f *fakeLocations) RemoveBinding(id string) (store.Binding, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.bs {
		if b.ID == id {
			f.bs = slices.Delete(f.bs, i, i+1)
			return b, true
		}
	}
	return store.Binding{}, false
}

func (f *fakeLocations) RemoveWhere(aor string, drop func(store.Binding) bool) []store.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	var gone []store.Binding
	f.bs = slices.DeleteFunc(f.bs, func(b store.Binding) bool {
		if b.AOR == aor && drop(b) {
			gone = append(gone, b)
			return true
		}
		return false
	})
	return gone
}

// Sync: the slice is all there is.
func (f *fakeLocations) Sync() error { return nil }

// Writable: always.
func (f *fakeLocations) Writable() error { return nil }

func (f *fakeLocations) add(bs ...store.Binding) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bs = append(f.bs, bs...)
}

func (f *fakeLocations) count(aor string) int { return len(f.Bindings(aor)) }

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is an API server on a real store in a temporary directory.
type env struct {
	t      testing.TB
	srv    *api.Server
	ended  *lifecycle.Keeper
	h      http.Handler
	db     *store.DB
	locs   *fakeLocations
	key    string
	logs   *syncBuffer
	now    time.Time
	bodies []string // every response body, for the leak test
}

func openStore(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "sipwarden.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newEnv(t testing.TB, mod ...func(*api.Config)) *env {
	t.Helper()
	e := &env{t: t, locs: &fakeLocations{}, logs: &syncBuffer{}, key: testAdminKey,
		now: time.Now().UTC().Truncate(time.Second)}
	e.db = openStore(t, t.TempDir())
	e.ended = lifecycle.New(e.locs, nil, e.db, func() time.Time { return e.now }, nil)
	cfg := api.Config{Realm: testRealm, AdminKey: testAdminKey, Now: func() time.Time { return e.now }, Lifecycle: e.ended}
	for _, m := range mod {
		m(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := api.New(cfg, e.db, e.locs, logger)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.srv, e.h = srv, srv.Handler()
	return e
}

// do sends a request with the env's key; body is sent as is when it is a
// string, else as JSON.
func (e *env) do(method, path string, body any) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.doKey(e.key, method, path, body)
}

func (e *env) doKey(key, method, path string, body any) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	e.bodies = append(e.bodies, rec.Body.String())
	return rec
}

// ok sends a request that must answer want, and decodes its data into out.
func (e *env) ok(want int, method, path string, body, out any) {
	e.t.Helper()
	rec := e.do(method, path, body)
	if rec.Code != want {
		e.t.Fatalf("%s %s: got status %d, want %d; body %s", method, path, rec.Code, want, rec.Body)
	}
	if out != nil {
		decodeData(e.t, rec.Body.Bytes(), out)
	}
}

type listResponse[T any] struct {
	Data []T `json:"data"`
	Meta struct {
		NextCursor *string `json:"next_cursor"`
		PageSize   int     `json:"page_size"`
	} `json:"meta"`
}

func decodeData(t testing.TB, raw []byte, out any) {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatalf("decode data %s: %v", env.Data, err)
	}
}

func (e *env) createCredential(body map[string]any) api.Credential {
	e.t.Helper()
	var c api.Credential
	e.ok(http.StatusCreated, "POST", "/v1/credentials", body, &c)
	return c
}

// checkError asserts an error response: status, the first object's code
// and source pointer (or parameter, for a pointer starting with "?").
func checkError(t *testing.T, rec *httptest.ResponseRecorder, status int, code, pointer string) api.Error {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("got status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %s: %v", rec.Body, err)
	}
	if len(e.Errors) == 0 {
		t.Fatalf("error body %s has no errors", rec.Body)
	}
	o := e.Errors[0]
	if o.Code != code {
		t.Errorf("got code %q, want %q; body %s", o.Code, code, rec.Body)
	}
	if o.Title == "" || o.Detail == "" {
		t.Errorf("got title %q detail %q, want both; body %s", o.Title, o.Detail, rec.Body)
	}
	var got string
	if o.Source != nil {
		got = o.Source.Pointer
		if o.Source.Parameter != "" {
			got = "?" + o.Source.Parameter
		}
	}
	if got != pointer {
		t.Errorf("got source %q, want %q; body %s", got, pointer, rec.Body)
	}
	return e
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	rec := e.doKey("", "GET", "/healthz", nil)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "{\n  \"status\": \"ok\"\n}" {
		t.Fatalf("got %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
}

func TestAuthentication(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.key")
	e := newEnv(t, func(c *api.Config) { c.AdminKey = ""; c.AdminKeyFile = keyFile })
	generated := readKey(t, keyFile)
	id, _, _ := strings.Cut(strings.TrimPrefix(generated, "swk_"), "_")

	cases := []struct {
		name   string
		header string
		want   int
	}{
		{"none", "", http.StatusUnauthorized},
		{"basic scheme", "Basic " + generated, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"wrong key", "Bearer swk_" + id + "_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized},
		{"unknown key id", "Bearer swk_00000000-0000-0000-0000-000000000000_" + strings.Repeat("A", 43), http.StatusUnauthorized},
		{"not a key", "Bearer hello", http.StatusUnauthorized},
		{"truncated key", "Bearer " + generated[:len(generated)-1], http.StatusUnauthorized},
		{"generated key", "Bearer " + generated, http.StatusOK},
		{"lowercase scheme", "bearer " + generated, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v1/connections", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("got %d, want %d; body %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusUnauthorized {
				checkError(t, rec, http.StatusUnauthorized, api.CodeUnauthorized, "")
				if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="sipwarden"` {
					t.Errorf("got WWW-Authenticate %q", got)
				}
			}
		})
	}

	// A configured key is accepted, and no other key is generated.
	e2 := newEnv(t)
	if rec := e2.do("GET", "/v1/connections", nil); rec.Code != http.StatusOK {
		t.Fatalf("configured key: got %d, want 200", rec.Code)
	}
	if rec := e2.doKey(testAdminKey+"x", "GET", "/v1/connections", nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("configured key plus a byte: got %d, want 401", rec.Code)
	}
	// Unauthenticated requests to unknown routes learn nothing either.
	if rec := e2.doKey("", "GET", "/v1/nothing", nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("unknown route without key: got %d, want 401", rec.Code)
	}
}

// TestEveryRouteNeedsAKey walks the route table: every route that is not
// public answers 401 without a key, and the public ones do not.
func TestEveryRouteNeedsAKey(t *testing.T) {
	e := newEnv(t)
	routes := e.srv.RoutePatterns()
	if len(routes) < 20 {
		t.Fatalf("got %d routes, want the whole table", len(routes))
	}
	for r, public := range routes {
		method, pattern, _ := strings.Cut(r, " ")
		path := strings.NewReplacer("{id}", "default", "{ip}", "192.0.2.1", "{number}", "+15550100").Replace(pattern)
		if strings.Contains(path, "{") {
			t.Fatalf("%s: no value for its wildcard", r)
		}
		rec := e.doKey("", method, path, "{}")
		if got := rec.Code == http.StatusUnauthorized; got == public {
			t.Errorf("%s without key: got %d, public %v", r, rec.Code, public)
		}
	}
}

func readKey(t *testing.T, path string) string {
	t.Helper()
	b, err := readFile(path)
	if err != nil {
		t.Fatalf("read admin key: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func TestConnections(t *testing.T) {
	e := newEnv(t)
	var c api.Connection
	rec := e.do("POST", "/v1/connections", map[string]any{"name": "pbx-trunk"})
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: got %d, want 201; %s", rec.Code, rec.Body)
	}
	decodeData(t, rec.Body.Bytes(), &c)
	if c.ID == "" || c.Name != "pbx-trunk" || !c.Active || c.CreatedAt.IsZero() {
		t.Fatalf("created %+v", c)
	}
	if got := rec.Header().Get("Location"); got != "/v1/connections/"+c.ID {
		t.Errorf("got Location %q", got)
	}

	var got api.Connection
	e.ok(200, "GET", "/v1/connections/"+c.ID, nil, &got)
	if got.ID != c.ID || got.Name != c.Name {
		t.Errorf("get: got %+v, want %+v", got, c)
	}

	rec = e.do("GET", "/v1/connections", nil)
	var list listResponse[api.Connection]
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != 200 {
		t.Fatalf("list: %d %s %v", rec.Code, rec.Body, err)
	}
	ids := []string{}
	for _, x := range list.Data {
		ids = append(ids, x.ID)
	}
	if !slices.Contains(ids, store.DefaultConnectionID) || !slices.Contains(ids, c.ID) || list.Meta.NextCursor != nil || list.Meta.PageSize != 100 {
		t.Errorf("list: got ids %v meta %+v, want default and %s, no cursor, page size 100", ids, list.Meta, c.ID)
	}

	e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"active": false}, &got)
	if got.Active || got.Name != "pbx-trunk" {
		t.Errorf("patch active: got %+v", got)
	}
	e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"name": "renamed"}, &got)
	if got.Active || got.Name != "renamed" {
		t.Errorf("patch name: got %+v", got)
	}

	// In use: 409 until its credential is gone.
	cred := e.createCredential(map[string]any{"username": "carol", "password": "correct-horse-battery", "connection_id": c.ID})
	checkError(t, e.do("DELETE", "/v1/connections/"+c.ID, nil), 409, api.CodeConnectionInUse, "")
	e.ok(204, "DELETE", "/v1/credentials/"+cred.ID, nil, nil)
	rec = e.do("DELETE", "/v1/connections/"+c.ID, nil)
	if rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("delete: got %d %q, want 204 and no body", rec.Code, rec.Body)
	}
	checkError(t, e.do("GET", "/v1/connections/"+c.ID, nil), 404, api.CodeNotFound, "")
	checkError(t, e.do("DELETE", "/v1/connections/"+store.DefaultConnectionID, nil), 409, api.CodeDefaultConnection, "")
}

func TestCredentialLifecycle(t *testing.T) {
	e := newEnv(t)
	exp := e.now.Add(48 * time.Hour)
	c := e.createCredential(map[string]any{
		"username": "alice", "password": "correct-horse-battery", "name": "Alice's desk phone", "tag": "sales",
		"expires_at": exp.Format(time.RFC3339), "algorithms": []string{"SHA-256", "MD5"},
	})
	if c.ID == "" || c.Username != "alice" || c.ConnectionID != store.DefaultConnectionID || !c.Enabled ||
		c.Name != "Alice's desk phone" || c.Tag != "sales" || c.ExpiresAt == nil || !c.ExpiresAt.Equal(exp) ||
		!slices.Equal(c.Algorithms, []string{"SHA-256", "MD5"}) || c.CreatedAt.IsZero() {
		t.Fatalf("created %+v", c)
	}
	// The store holds the HA1 of every algorithm for the realm.
	sc, err := e.db.Credential(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Realm != testRealm || len(sc.HA1) != 3 || sc.HA1["MD5"] == "" || sc.HA1["SHA-256"] == "" || sc.HA1["SHA-512-256"] == "" {
		t.Fatalf("stored realm %q HA1 %v, want all three for %q", sc.Realm, sc.HA1, testRealm)
	}

	var got api.Credential
	e.ok(200, "GET", "/v1/credentials/"+c.ID, nil, &got)
	if got.ID != c.ID || got.Username != "alice" {
		t.Fatalf("get: got %+v", got)
	}

	// The JSON keys of a credential, exactly.
	rec := e.do("GET", "/v1/credentials/"+c.ID, nil)
	var raw struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(raw.Data))
	for k := range raw.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"algorithms", "connection_id", "created_at", "enabled", "expires_at", "id", "name", "state", "tag", "updated_at", "username"}
	if !slices.Equal(keys, want) {
		t.Errorf("credential keys: got %v, want %v", keys, want)
	}

	// PATCH: null clears expiry and algorithms; "" clears a label.
	e.ok(200, "PATCH", "/v1/credentials/"+c.ID, `{"expires_at":null,"algorithms":null,"tag":""}`, &got)
	if got.ExpiresAt != nil || len(got.Algorithms) != 0 || got.Tag != "" || got.Name != c.Name || !got.Enabled {
		t.Errorf("patch clear: got %+v", got)
	}
	if rec := e.do("GET", "/v1/credentials/"+c.ID, nil); !strings.Contains(rec.Body.String(), `"expires_at": null`) {
		t.Errorf("expires_at of a credential without expiry: want null in %s", rec.Body)
	}
	e.ok(200, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"algorithms": []string{"sha-512-256"}}, &got)
	if !slices.Equal(got.Algorithms, []string{"SHA-512-256"}) {
		t.Errorf("patch algorithms: got %v, want canonical [SHA-512-256]", got.Algorithms)
	}
	// A new password: new HA1 values.
	e.ok(200, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": "another-long-password"}, &got)
	sc2, _ := e.db.Credential(c.ID)
	if sc2.HA1["MD5"] == sc.HA1["MD5"] || sc2.HA1["SHA-256"] == sc.HA1["SHA-256"] {
		t.Errorf("password change kept the old HA1")
	}
	// An empty PATCH changes nothing.
	e.ok(200, "PATCH", "/v1/credentials/"+c.ID, `{}`, &got)
	if got.ID != c.ID {
		t.Errorf("empty patch: got %+v", got)
	}

	rec = e.do("DELETE", "/v1/credentials/"+c.ID, nil)
	if rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("delete: got %d %q", rec.Code, rec.Body)
	}
	checkError(t, e.do("GET", "/v1/credentials/"+c.ID, nil), 404, api.CodeNotFound, "")
	checkError(t, e.do("DELETE", "/v1/credentials/"+c.ID, nil), 404, api.CodeNotFound, "")
}

func TestCredentialDefaults(t *testing.T) {
	e := newEnv(t)
	c := e.createCredential(map[string]any{"username": "bob", "password": "correct-horse-battery", "enabled": false})
	if c.Enabled || c.ExpiresAt != nil || c.Algorithms == nil || len(c.Algorithms) != 0 || c.ConnectionID != "default" {
		t.Fatalf("got %+v, want disabled, no expiry, [] algorithms, default connection", c)
	}
}

func TestCredentialList(t *testing.T) {
	e := newEnv(t)
	var conn api.Connection
	e.ok(201, "POST", "/v1/connections", map[string]any{"name": "trunk"}, &conn)
	mk := func(u, tag, connID string, enabled bool) string {
		return e.createCredential(map[string]any{"username": u, "password": "correct-horse-battery", "tag": tag,
			"connection_id": connID, "enabled": enabled}).ID
	}
	a := mk("a", "x", "default", true)
	b := mk("b", "y", conn.ID, true)
	c := mk("c", "x", conn.ID, false)
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{a, b, c}},
		{"?tag=x", []string{a, c}},
		{"?connection_id=" + conn.ID, []string{b, c}},
		{"?enabled=false", []string{c}},
		{"?enabled=true&tag=x", []string{a}},
		{"?username=b", []string{b}},
		{"?username=nobody", []string{}},
	}
	for _, tc := range cases {
		rec := e.do("GET", "/v1/credentials"+tc.query, nil)
		var l listResponse[api.Credential]
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || rec.Code != 200 {
			t.Fatalf("%s: %d %s", tc.query, rec.Code, rec.Body)
		}
		got := []string{}
		for _, x := range l.Data {
			got = append(got, x.ID)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, want)
		}
		if !strings.Contains(rec.Body.String(), `"data": [`) {
			t.Errorf("%s: data must be an array, even empty: %s", tc.query, rec.Body)
		}
	}
}

// TestPagination walks 250 credentials 100 at a time: each exactly once,
// no cursor after the last page, while new credentials are created
// between pages.
func TestPagination(t *testing.T) {
	e := newEnv(t)
	want := map[string]bool{}
	for i := range 250 {
		c := e.createCredential(map[string]any{"username": fmt.Sprintf("user%03d", i), "password": "correct-horse-battery"})
		want[c.ID] = true
	}
	seen := map[string]int{}
	after := ""
	pages := 0
	var sizes []int
	for {
		path := "/v1/credentials?page[size]=100"
		if after != "" {
			path += "&page[after]=" + after
		}
		rec := e.do("GET", path, nil)
		var l listResponse[api.Credential]
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || rec.Code != 200 {
			t.Fatalf("page %d: %d %s", pages, rec.Code, rec.Body)
		}
		if l.Meta.PageSize != 100 {
			t.Errorf("page_size: got %d, want 100", l.Meta.PageSize)
		}
		pages++
		sizes = append(sizes, len(l.Data))
		for _, c := range l.Data {
			seen[c.ID]++
		}
		if pages == 1 {
			// Inserts under way do not disturb the walk.
			e.createCredential(map[string]any{"username": "late-comer", "password": "correct-horse-battery"})
		}
		if l.Meta.NextCursor == nil {
			if strings.Contains(rec.Body.String(), "next_cursor") {
				t.Errorf("last page: next_cursor must be omitted: %s", rec.Body)
			}
			break
		}
		if *l.Meta.NextCursor == "" || pages > 10 {
			t.Fatalf("page %d: bad cursor %v", pages, l.Meta.NextCursor)
		}
		after = *l.Meta.NextCursor
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("credential %s seen %d times, want 1", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("credential %s seen %d times", id, n)
		}
	}
	if sizes[0] != 100 || sizes[1] != 100 || len(sizes) != 3 {
		t.Errorf("page sizes: got %v, want [100 100 50 or 51]", sizes)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxBodyBytes = 4096 })
	taken := e.createCredential(map[string]any{"username": "taken", "password": "correct-horse-battery"})
	past := e.now.Add(-time.Minute).Format(time.RFC3339)
	ok := func(kv ...any) map[string]any {
		m := map[string]any{"username": "newuser", "password": "correct-horse-battery"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
				continue
			}
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name         string
		method, path string
		body         any
		status       int
		code         string
		pointer      string
		detail       string // a part of the detail, when set
	}{
		{"syntax", "POST", "/v1/credentials", `{"username": "x",}`, 400, api.CodeInvalidJSON, "", "offset 18"},
		{"truncated", "POST", "/v1/credentials", `{"username": "x"`, 400, api.CodeInvalidJSON, "", "ends"},
		// Cut short after a field the route does not take: the syntax is
		// what is wrong (it was unknown_field).
		{"truncated after an unknown field", "POST", "/v1/credentials", `{"x":1`, 400, api.CodeInvalidJSON, "", "ends"},
		{"garbage after an unknown field", "POST", "/v1/credentials", `{"x":1} ]`, 400, api.CodeInvalidJSON, "", ""},
		{"empty body", "POST", "/v1/credentials", ``, 400, api.CodeInvalidJSON, "", "empty"},
		{"array body", "POST", "/v1/credentials", `[]`, 400, api.CodeInvalidJSON, "", "object"},
		{"trailing data", "POST", "/v1/credentials", `{"username":"a"} {}`, 400, api.CodeInvalidJSON, "", "after"},
		{"wrong type", "POST", "/v1/credentials", `{"username":"a","password":"correct-horse-battery","enabled":"yes"}`, 400, api.CodeInvalidJSON, "/enabled", `"enabled"`},
		{"wrong type in list", "POST", "/v1/credentials", `{"algorithms":[5]}`, 400, api.CodeInvalidJSON, "/algorithms/0", "algorithms"},
		{"unknown field", "POST", "/v1/credentials", `{"username":"a","passwd":"x"}`, 400, api.CodeUnknownField, "/passwd", "passwd"},
		{"too large", "POST", "/v1/credentials", `{"name":"` + strings.Repeat("x", 5000) + `"}`, 413, api.CodeBodyTooLarge, "", ""},
		{"short password", "POST", "/v1/credentials", ok("password", "short"), 422, api.CodeTooShort, "/password", "12"},
		// Absent, a username or password is generated; given empty or
		// null, it is refused naming the field.
		{"empty password", "POST", "/v1/credentials", ok("password", ""), 422, api.CodeRequired, "/password", "omit it"},
		{"null password", "POST", "/v1/credentials", `{"username":"newuser","password":null}`, 422, api.CodeRequired, "/password", "password"},
		{"empty username", "POST", "/v1/credentials", ok("username", ""), 422, api.CodeRequired, "/username", "omit it"},
		{"null username", "POST", "/v1/credentials", `{"username":null,"password":"correct-horse-battery"}`, 422, api.CodeRequired, "/username", "username"},
		{"long username", "POST", "/v1/credentials", ok("username", strings.Repeat("u", 65)), 422, api.CodeTooLong, "/username", "64"},
		{"username with @", "POST", "/v1/credentials", ok("username", "a@b"), 422, api.CodeInvalidCharacters, "/username", "'@'"},
		{"username with space", "POST", "/v1/credentials", ok("username", "a b"), 422, api.CodeInvalidCharacters, "/username", ""},
		{"username with colon", "POST", "/v1/credentials", ok("username", "a:b"), 422, api.CodeInvalidCharacters, "/username", ""},
		{"username not ASCII", "POST", "/v1/credentials", ok("username", "jürgen"), 422, api.CodeInvalidCharacters, "/username", ""},
		{"long name", "POST", "/v1/credentials", ok("name", strings.Repeat("n", 129)), 422, api.CodeTooLong, "/name", "128"},
		{"long tag", "POST", "/v1/credentials", ok("tag", strings.Repeat("t", 129)), 422, api.CodeTooLong, "/tag", "128"},
		{"control in name", "POST", "/v1/credentials", ok("name", "a\nb"), 422, api.CodeInvalidCharacters, "/name", ""},
		{"bidi override in name", "POST", "/v1/credentials", ok("name", "admin\u202Etxt.exe"), 422, api.CodeInvalidCharacters, "/name", "bidirectional"},
		{"line separator in tag", "POST", "/v1/credentials", ok("tag", "a\u2028b"), 422, api.CodeInvalidCharacters, "/tag", "line separators"},
		{"zero-width space in name", "POST", "/v1/credentials", ok("name", "al\u200bice"), 422, api.CodeInvalidCharacters, "/name", "invisible"},
		{"byte order mark in tag", "POST", "/v1/credentials", ok("tag", "\ufeffdesk"), 422, api.CodeInvalidCharacters, "/tag", "invisible"},
		{"tag character in name", "POST", "/v1/credentials", ok("name", "a\U000E0041b"), 422, api.CodeInvalidCharacters, "/name", "invisible"},
		{"unknown algorithm", "POST", "/v1/credentials", ok("algorithms", []string{"MD5", "SHA-1"}), 422, api.CodeInvalidValue, "/algorithms/1", "SHA-1"},
		{"empty algorithm name", "POST", "/v1/credentials", ok("algorithms", []string{""}), 422, api.CodeInvalidValue, "/algorithms/0", ""},
		{"duplicate algorithm", "POST", "/v1/credentials", ok("algorithms", []string{"MD5", "md5"}), 422, api.CodeInvalidValue, "/algorithms/1", "twice"},
		{"empty algorithms", "POST", "/v1/credentials", ok("algorithms", []string{}), 422, api.CodeInvalidValue, "/algorithms", ""},
		{"expiry in the past", "POST", "/v1/credentials", ok("expires_at", past), 422, api.CodeInPast, "/expires_at", ""},
		{"expiry not a time", "POST", "/v1/credentials", ok("expires_at", "tomorrow"), 422, api.CodeInvalidValue, "/expires_at", "RFC 3339"},
		{"unknown connection", "POST", "/v1/credentials", ok("connection_id", "nope"), 422, api.CodeUnknownConnection, "/connection_id", ""},
		{"duplicate username", "POST", "/v1/credentials", ok("username", "taken"), 409, api.CodeUsernameTaken, "/username", ""},
		{"get unknown", "GET", "/v1/credentials/nope", nil, 404, api.CodeNotFound, "", `"nope"`},
		{"patch unknown", "PATCH", "/v1/credentials/nope", `{"name":"x"}`, 404, api.CodeNotFound, "", ""},
		{"delete unknown", "DELETE", "/v1/credentials/nope", nil, 404, api.CodeNotFound, "", ""},
		{"patch username", "PATCH", "/v1/credentials/" + taken.ID, `{"username":"other"}`, 422, api.CodeInvalidValue, "/username", ""},
		{"patch short password", "PATCH", "/v1/credentials/" + taken.ID, `{"password":"short"}`, 422, api.CodeTooShort, "/password", ""},
		{"patch null enabled", "PATCH", "/v1/credentials/" + taken.ID, `{"enabled":null}`, 422, api.CodeInvalidValue, "/enabled", ""},
		{"patch empty algorithms", "PATCH", "/v1/credentials/" + taken.ID, `{"algorithms":[]}`, 422, api.CodeInvalidValue, "/algorithms", ""},
		{"patch unknown field", "PATCH", "/v1/credentials/" + taken.ID, `{"ha1":"x"}`, 400, api.CodeUnknownField, "/ha1", ""},
		{"connection without name", "POST", "/v1/connections", `{"active":true}`, 422, api.CodeRequired, "/name", ""},
		{"connection long name", "POST", "/v1/connections", map[string]any{"name": strings.Repeat("c", 129)}, 422, api.CodeTooLong, "/name", ""},
		{"connection wrong type", "POST", "/v1/connections", `{"name":"x","active":1}`, 400, api.CodeInvalidJSON, "/active", ""},
		{"connection patch null active", "PATCH", "/v1/connections/default", `{"active":null}`, 422, api.CodeInvalidValue, "/active", ""},
		{"patch unknown connection", "PATCH", "/v1/connections/nope", `{"name":"x"}`, 404, api.CodeNotFound, "", ""},
		{"method", "PUT", "/v1/credentials", `{}`, 405, api.CodeMethodNotAllowed, "", "PUT"},
		{"method on item", "POST", "/v1/credentials/" + taken.ID, `{}`, 405, api.CodeMethodNotAllowed, "", ""},
		{"no route", "GET", "/v1/nothing", nil, 404, api.CodeNotFound, "", ""},
		{"trailing slash", "GET", "/v1/credentials/", nil, 404, api.CodeNotFound, "", ""},
		{"unknown parameter", "GET", "/v1/credentials?page[limit]=5", nil, 400, api.CodeInvalidParameter, "?page[limit]", ""},
		{"page size zero", "GET", "/v1/credentials?page[size]=0", nil, 400, api.CodeInvalidParameter, "?page[size]", ""},
		{"page size too big", "GET", "/v1/credentials?page[size]=1001", nil, 400, api.CodeInvalidParameter, "?page[size]", ""},
		{"page size not a number", "GET", "/v1/connections?page[size]=ten", nil, 400, api.CodeInvalidParameter, "?page[size]", ""},
		{"enabled not a bool", "GET", "/v1/credentials?enabled=yes", nil, 400, api.CodeInvalidParameter, "?enabled", ""},
		{"repeated parameter", "GET", "/v1/credentials?tag=a&tag=b", nil, 400, api.CodeInvalidParameter, "?tag", ""},
		{"bad registration cursor", "GET", "/v1/registrations?page[after]=%%%", nil, 400, api.CodeInvalidParameter, "", ""},
		{"garbage registration cursor", "GET", "/v1/registrations?page[after]=xyz", nil, 400, api.CodeInvalidParameter, "?page[after]", ""},
		// The stores' lists answered a cursor they never gave with an
		// empty page (or the whole list).
		{"garbage credential cursor", "GET", "/v1/credentials?page[after]=~~garbage~~", nil, 400, api.CodeInvalidParameter, "?page[after]", ""},
		{"garbage connection cursor", "GET", "/v1/connections?page[after]=0", nil, 400, api.CodeInvalidParameter, "?page[after]", ""},
		{"garbage number cursor", "GET", "/v1/numbers?page[after]=abc", nil, 400, api.CodeInvalidParameter, "?page[after]", ""},
		{"paging the API keys", "GET", "/v1/api-keys?page[size]=1", nil, 400, api.CodeInvalidParameter, "?page[size]", ""},
		{"delete unknown registration", "DELETE", "/v1/registrations/nope", nil, 404, api.CodeNotFound, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(tc.method, tc.path, tc.body)
			got := checkError(t, rec, tc.status, tc.code, tc.pointer)
			if tc.detail != "" && !strings.Contains(got.Errors[0].Detail, tc.detail) {
				t.Errorf("got detail %q, want it to contain %q", got.Errors[0].Detail, tc.detail)
			}
			if tc.status == 405 && rec.Header().Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
}

// TestValidationListsEveryField: one 422 names every bad field.
func TestValidationListsEveryField(t *testing.T) {
	e := newEnv(t)
	rec := e.do("POST", "/v1/credentials", map[string]any{"username": "a b", "password": "x", "tag": strings.Repeat("t", 200)})
	got := checkError(t, rec, 422, api.CodeInvalidCharacters, "/username")
	var ptrs []string
	for _, o := range got.Errors {
		ptrs = append(ptrs, o.Source.Pointer)
	}
	if want := []string{"/username", "/password", "/tag"}; !slices.Equal(ptrs, want) {
		t.Errorf("got pointers %v, want %v", ptrs, want)
	}
}

func TestUsernameCharacters(t *testing.T) {
	e := newEnv(t)
	u := "Az09-_.!~*'()&=+$,"
	c := e.createCredential(map[string]any{"username": u, "password": "correct-horse-battery"})
	if c.Username != u {
		t.Errorf("got username %q, want %q", c.Username, u)
	}
	c = e.createCredential(map[string]any{"username": strings.Repeat("u", 64), "password": "correct-horse-battery"})
	if len(c.Username) != 64 {
		t.Errorf("64-character username refused")
	}
}

func TestMinPasswordLength(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MinPasswordLength = 20 })
	checkError(t, e.do("POST", "/v1/credentials", map[string]any{"username": "u", "password": strings.Repeat("p", 19)}), 422, api.CodeTooShort, "/password")
	e.createCredential(map[string]any{"username": "u", "password": "correct-horse-battery"})
}

// TestWeakPasswordsRefused (issue 15 item 9): long enough is not enough.
func TestWeakPasswordsRefused(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"aaaaaaaaaaaa", "abababababab", "123412341234", "123456789012", "abcdefghijklm", "daveydavey12", "daveyDAVEY!!"} {
		checkError(t, e.do("POST", "/v1/credentials", map[string]any{"username": "davey", "password": p}), 422, api.CodeWeakPassword, "/password")
	}
	c := e.createCredential(map[string]any{"username": "davey", "password": "davey-Vq7#kL2p"})
	checkError(t, e.do("PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": "DAVEY1234davey"}), 422, api.CodeWeakPassword, "/password")
	e.ok(200, "PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": "plum-orbit-78-glass"}, nil)
}

func TestRegistrations(t *testing.T) {
	e := newEnv(t)
	mk := func(id, aor string, in time.Duration) store.Binding {
		return store.Binding{ID: id, AOR: aor, CredentialID: "cred-" + aor, Contact: "sip:" + aor + "@192.0.2.1:5060",
			// Stored as the Contact parameter is sent (RFC 5626 4.1:
			// quoted), shown without the quotes.
			Source: "192.0.2.1:5060", Transport: "udp", UserAgent: "Zoiper", InstanceID: `"<urn:uuid:1>"`,
			Expires: e.now.Add(in), RegisteredAt: e.now.Add(-time.Minute)}
	}
	e.locs.add(mk("b2", "bob", time.Hour), mk("a1", "alice", 90*time.Second), mk("b1", "bob", time.Hour), mk("c1", "carol", time.Hour))

	var all []api.Registration
	e.ok(200, "GET", "/v1/registrations", nil, &all)
	var ids []string
	for _, r := range all {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"a1", "b1", "b2", "c1"}) {
		t.Fatalf("got %v, want sorted by username then id", ids)
	}
	a := all[0]
	if a.Username != "alice" || a.ExpiresIn != 90 || a.Contact != "sip:alice@192.0.2.1:5060" || a.Source != "192.0.2.1:5060" ||
		a.Transport != "udp" || a.UserAgent != "Zoiper" || a.InstanceID != "<urn:uuid:1>" || !a.ExpiresAt.Equal(e.now.Add(90*time.Second)) {
		t.Errorf("got %+v", a)
	}

	var bob []api.Registration
	e.ok(200, "GET", "/v1/registrations?username=bob", nil, &bob)
	if len(bob) != 2 {
		t.Errorf("username=bob: got %d, want 2", len(bob))
	}

	// Pages of 3: a binding that goes away between pages does not make
	// the walk skip another.
	rec := e.do("GET", "/v1/registrations?page[size]=3", nil)
	var p1 listResponse[api.Registration]
	json.Unmarshal(rec.Body.Bytes(), &p1)
	if len(p1.Data) != 3 || p1.Meta.NextCursor == nil {
		t.Fatalf("page 1: %s", rec.Body)
	}
	e.ok(204, "DELETE", "/v1/registrations/b2", nil, nil)
	rec = e.do("GET", "/v1/registrations?page[size]=3&page[after]="+*p1.Meta.NextCursor, nil)
	var p2 listResponse[api.Registration]
	json.Unmarshal(rec.Body.Bytes(), &p2)
	if len(p2.Data) != 1 || p2.Data[0].ID != "c1" || p2.Meta.NextCursor != nil {
		t.Fatalf("page 2: %s", rec.Body)
	}
	checkError(t, e.do("DELETE", "/v1/registrations/b2", nil), 404, api.CodeNotFound, "")
}

func TestCredentialRemovalDropsBindings(t *testing.T) {
	e := newEnv(t)
	var removed []string
	e.ended.OnEnded(func(c store.Credential, _ lifecycle.Reason, _ []store.Binding) { removed = append(removed, c.Username) })
	bind := func(aor string) {
		e.locs.add(store.Binding{ID: aor + "-b", AOR: aor, Expires: e.now.Add(time.Hour)})
	}
	for _, u := range []string{"dave", "erin", "frank"} {
		e.createCredential(map[string]any{"username": u, "password": "correct-horse-battery"})
		bind(u)
	}
	byName := func(u string) api.Credential {
		var l []api.Credential
		e.ok(200, "GET", "/v1/credentials?username="+u, nil, &l)
		return l[0]
	}

	// Renaming keeps the bindings.
	e.ok(200, "PATCH", "/v1/credentials/"+byName("dave").ID, map[string]any{"name": "Dave"}, nil)
	if e.locs.count("dave") != 1 || len(removed) != 0 {
		t.Fatalf("rename removed bindings")
	}
	// Disabling drops them and runs the hook; disabling again does not.
	e.ok(200, "PATCH", "/v1/credentials/"+byName("dave").ID, map[string]any{"enabled": false}, nil)
	if e.locs.count("dave") != 0 || !slices.Equal(removed, []string{"dave"}) {
		t.Fatalf("disable: bindings %d, hook %v", e.locs.count("dave"), removed)
	}
	e.ok(200, "PATCH", "/v1/credentials/"+byName("dave").ID, map[string]any{"enabled": false}, nil)
	if len(removed) != 1 {
		t.Errorf("second disable ran the hook again")
	}
	// An expiry in the past ends it too.
	e.ok(200, "PATCH", "/v1/credentials/"+byName("erin").ID, map[string]any{"expires_at": e.now.Add(-time.Second).Format(time.RFC3339)}, nil)
	if e.locs.count("erin") != 0 || !slices.Equal(removed, []string{"dave", "erin"}) {
		t.Fatalf("past expiry: bindings %d, hook %v", e.locs.count("erin"), removed)
	}
	// Deleting.
	e.ok(204, "DELETE", "/v1/credentials/"+byName("frank").ID, nil, nil)
	if e.locs.count("frank") != 0 || !slices.Equal(removed, []string{"dave", "erin", "frank"}) {
		t.Fatalf("delete: bindings %d, hook %v", e.locs.count("frank"), removed)
	}
}

// TestSecretsNeverLeak: no response body and no log line holds a password,
// an HA1 or the admin key, whatever the route.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.key")
	e := newEnv(t, func(c *api.Config) { c.AdminKey = ""; c.AdminKeyFile = keyFile })
	e.key = readKey(t, keyFile)
	pw1, pw2 := "first-SECRET-password-1", "second-SECRET-password-2"
	c := e.createCredential(map[string]any{"username": "grace", "password": pw1, "name": "g"})
	e.do("GET", "/v1/credentials/"+c.ID, nil)
	e.do("GET", "/v1/credentials", nil)
	e.do("GET", "/v1/credentials?username=grace", nil)
	e.do("PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": pw2})
	e.do("PATCH", "/v1/credentials/"+c.ID, map[string]any{"password": pw2, "bogus": 1})
	e.do("PATCH", "/v1/credentials/"+c.ID, `{"password": "`+pw2+`",}`)
	e.do("POST", "/v1/credentials", map[string]any{"username": "grace", "password": pw1}) // 409
	e.do("POST", "/v1/credentials", map[string]any{"username": "bad user", "password": pw1})
	e.do("POST", "/v1/credentials", `{"username":"h","password":"`+pw1+`","enabled":"x"}`)
	e.do("DELETE", "/v1/credentials/"+c.ID, nil)
	e.doKey(e.key+"x", "GET", "/v1/credentials", nil)

	secrets := []string{pw1, pw2, e.key, e.key[strings.LastIndex(e.key, "_")+1:]}
	for _, pw := range []string{pw1, pw2} {
		for _, alg := range []string{"MD5", "SHA-256", "SHA-512-256"} {
			secrets = append(secrets, ha1(t, alg, "grace", testRealm, pw))
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, keyFile) {
		t.Errorf("log does not name the key file %s:\n%s", keyFile, logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log holds secret %q:\n%s", s, logs)
		}
		for _, b := range e.bodies {
			if strings.Contains(b, s) {
				t.Errorf("response holds secret %q: %s", s, b)
			}
		}
	}
	for _, b := range e.bodies {
		if strings.Contains(strings.ToLower(b), "ha1") && !strings.Contains(b, `unknown field`) {
			t.Errorf("response mentions ha1: %s", b)
		}
		if strings.Contains(b, `"realm"`) || strings.Contains(b, `"password"`) {
			t.Errorf("response has a realm or password field: %s", b)
		}
	}
}
