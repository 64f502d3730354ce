package api_test

import (
	"bytes"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sipwarden/sipwarden/api"
)

// The tests of api/openapi.json: it describes exactly the routes of the
// router (TestOpenAPIRoutes), its examples are valid (TestOpenAPIExamples),
// and the real handlers answer what it says (TestOpenAPIDescribesAnswers,
// in openapi_answers_test.go).

const openAPIURL = "file:///openapi.json"

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// openAPI is the document with a JSON Schema 2020-12 compiler (the dialect
// of OpenAPI 3.1) that compiles the schema at any JSON pointer of it.
type openAPI struct {
	doc     map[string]any
	c       *jsonschema.Compiler
	schemas map[string]*jsonschema.Schema
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatalf("read openapi.json: %v", err)
	}
	if string(raw) != api.OpenAPIDoc() {
		t.Fatalf("the embedded document differs from openapi.json: rebuild")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("openapi.json: got %T, want an object", v)
	}
	if got := doc["openapi"]; got != "3.1.0" {
		t.Fatalf("openapi: got %v, want 3.1.0", got)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat() // date-time and the others are checked, not only annotations
	if err := c.AddResource(openAPIURL, doc); err != nil {
		t.Fatalf("add openapi.json: %v", err)
	}
	return &openAPI{doc: doc, c: c, schemas: map[string]*jsonschema.Schema{}}
}

// ptr appends reference tokens to a JSON pointer (RFC 6901).
func ptr(base string, tokens ...string) string {
	for _, tok := range tokens {
		base += "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
	}
	return base
}

// at returns the value at pointer p, or nil.
func (o *openAPI) at(p string) any {
	var v any = o.doc
	if p == "" {
		return v
	}
	for _, tok := range strings.Split(p[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// object returns the object at p, following a $ref (parameters, responses,
// headers), and the pointer it was found at.
func (o *openAPI) object(t *testing.T, p string) (string, map[string]any) {
	t.Helper()
	for range 8 {
		m, ok := o.at(p).(map[string]any)
		if !ok {
			t.Fatalf("%s: got %T, want an object", p, o.at(p))
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return p, m
		}
		target, ok := strings.CutPrefix(ref, "#")
		if !ok {
			t.Fatalf("%s: $ref %q is not local", p, ref)
		}
		p = target
	}
	t.Fatalf("%s: $ref loop", p)
	return "", nil
}

// schema compiles the JSON Schema at pointer p.
func (o *openAPI) schema(t *testing.T, p string) *jsonschema.Schema {
	t.Helper()
	if s, ok := o.schemas[p]; ok {
		return s
	}
	toks := strings.Split(p, "/")
	for i, tok := range toks {
		toks[i] = url.PathEscape(tok)
	}
	s, err := o.c.Compile(openAPIURL + "#" + strings.Join(toks, "/"))
	if err != nil {
		t.Fatalf("compile the schema at %s: %v", p, err)
	}
	o.schemas[p] = s
	return s
}

// validate checks a JSON document (raw bytes) against the schema at p.
func (o *openAPI) validate(t *testing.T, p string, raw []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return o.schema(t, p).Validate(v)
}

// validateAs validates a body of the media type ct: JSON against the
// schema at p, JSON lines line by line against it, and any other type
// (application/octet-stream) not at all.
func (o *openAPI) validateAs(t *testing.T, ct, p string, raw []byte) error {
	t.Helper()
	switch ct {
	case "application/json":
		return o.validate(t, p, raw)
	case "application/x-ndjson":
		for i, line := range bytes.Split(raw, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := o.validate(t, p, line); err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// operation is one method of one path of the document.
type operation struct {
	pattern string // as http.ServeMux reads it: "GET /v1/credentials/{id}"
	ptr     string // the operation object
	path    string
	op      map[string]any
}

func (o *openAPI) operations(t *testing.T) []operation {
	t.Helper()
	paths, ok := o.doc["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatal("the document has no paths")
	}
	var out []operation
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		item := paths[path].(map[string]any)
		for _, m := range httpMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			out = append(out, operation{pattern: strings.ToUpper(m) + " " + path, ptr: ptr("/paths", path, m), path: path, op: op})
		}
	}
	return out
}

// parameters returns the parameters of an operation, the path item's and
// its own, each with its pointer.
func (o *openAPI) parameters(t *testing.T, op operation) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, base := range []string{ptr("/paths", op.path), op.ptr} {
		list, _ := o.at(base + "/parameters").([]any)
		for i := range list {
			_, p := o.object(t, fmt.Sprintf("%s/parameters/%d", base, i))
			out[p["in"].(string)+":"+p["name"].(string)] = p
		}
	}
	return out
}

var wildcard = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIRoutes: every route of the router is documented, every
// documented operation is routed, public routes (no API key) are exactly
// those whose security is empty, and path parameters match the wildcards.
func TestOpenAPIRoutes(t *testing.T) {
	o := loadOpenAPI(t)
	routes := newEnv(t).srv.RoutePatterns()
	if len(routes) == 0 {
		t.Fatal("the route table is empty")
	}
	documented := map[string]bool{}
	opIDs := map[string]string{}
	for _, op := range o.operations(t) {
		sec, has := op.op["security"].([]any)
		public := has && len(sec) == 0
		documented[op.pattern] = public
		id, _ := op.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", op.pattern)
		} else if other, dup := opIDs[id]; dup {
			t.Errorf("%s: operationId %q already used by %s", op.pattern, id, other)
		}
		opIDs[id] = op.pattern

		responses, _ := op.op["responses"].(map[string]any)
		_, has401 := responses["401"]
		if has401 == public {
			t.Errorf("%s: public %v but 401 documented %v", op.pattern, public, has401)
		}
		params := o.parameters(t, op)
		var want []string
		for _, m := range wildcard.FindAllStringSubmatch(op.path, -1) {
			want = append(want, m[1])
			p, ok := params["path:"+m[1]]
			if !ok {
				t.Errorf("%s: path parameter %s not documented", op.pattern, m[1])
			} else if p["required"] != true {
				t.Errorf("%s: path parameter %s not required", op.pattern, m[1])
			}
		}
		var query []string
		for key := range params {
			if name, ok := strings.CutPrefix(key, "path:"); ok && !slices.Contains(want, name) {
				t.Errorf("%s: path parameter %s is not in the path", op.pattern, name)
			}
			if name, ok := strings.CutPrefix(key, "query:"); ok {
				query = append(query, name)
			}
		}
		// The router refuses every other query parameter (routeQuery).
		slices.Sort(query)
		if takes := slices.Sorted(slices.Values(api.RouteQuery(op.pattern))); !slices.Equal(takes, query) {
			t.Errorf("%s: the router takes the query parameters %v, the document lists %v", op.pattern, takes, query)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(routes)) {
		public, ok := documented[p]
		switch {
		case !ok:
			t.Errorf("route %s is not documented in openapi.json", p)
		case public != routes[p]:
			t.Errorf("route %s: public %v in the router, %v in openapi.json (security: [])", p, routes[p], public)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := routes[p]; !ok {
			t.Errorf("openapi.json documents %s, which the router does not have", p)
		}
	}
	if _, ok := o.at("/components/securitySchemes/apiKey").(map[string]any); !ok {
		t.Error("no apiKey security scheme")
	}
}

// TestOpenAPIServed: the document is served at /v1/openapi.json without a
// key, byte for byte.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	rec := e.doKey("", "GET", "/v1/openapi.json", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Body.Bytes(), raw) {
		t.Errorf("served %d bytes that differ from openapi.json (%d bytes)", rec.Body.Len(), len(raw))
	}
}

// TestOpenAPIExamples validates every example of the document against its
// schema: those of request and response bodies, parameters and headers,
// and the examples keyword of schemas. Every body, parameter and header
// must have one.
func TestOpenAPIExamples(t *testing.T) {
	o := loadOpenAPI(t)
	n := 0
	check := func(schemaPtr, where string, v any) {
		t.Helper()
		n++
		if err := o.schema(t, schemaPtr).Validate(v); err != nil {
			t.Errorf("example %s does not match its schema %s: %v", where, schemaPtr, err)
		}
	}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch v := v.(type) {
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s/%d", p, i), x)
			}
		case map[string]any:
			if _, ok := v["schema"].(map[string]any); ok {
				// A media type, parameter or header object.
				found := false
				if ex, ok := v["example"]; ok {
					check(p+"/schema", p+"/example", ex)
					found = true
				}
				if exs, ok := v["examples"].(map[string]any); ok {
					for _, name := range slices.Sorted(maps.Keys(exs)) {
						ex, ok := exs[name].(map[string]any)
						val, has := ex["value"]
						if !ok || !has {
							t.Errorf("%s: example %s has no value", p, name)
							continue
						}
						check(p+"/schema", ptr(p, "examples", name), val)
						found = true
					}
				}
				if !found {
					t.Errorf("%s has no example", p)
				}
			}
			if exs, ok := v["examples"].([]any); ok {
				// The examples keyword of a schema.
				for i, ex := range exs {
					check(p, fmt.Sprintf("%s/examples/%d", p, i), ex)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if k == "example" || k == "examples" {
					continue
				}
				walk(ptr(p, k), v[k])
			}
		}
	}
	walk("", o.doc)
	if n < 50 {
		t.Errorf("validated %d examples, want at least 50: is the walk broken?", n)
	}

	// The schemas are strict enough to catch what the examples could get
	// wrong: a negative control for the walk above.
	bad := []struct{ schema, doc string }{
		{"/components/schemas/CredentialData", `{"data":{"id":"x","connection_id":"default","username":"alice","name":"","tag":"","enabled":true,"expires_at":null,"algorithms":[],"created_at":"2026-01-02T15:04:05Z","updated_at":"2026-01-02T15:04:05Z"}}`},
		{"/components/schemas/CredentialData", `{"data":{"id":"x","connection_id":"default","username":"alice","name":"","tag":"","enabled":true,"state":"paused","expires_at":null,"algorithms":[],"created_at":"2026-01-02T15:04:05Z","updated_at":"2026-01-02T15:04:05Z"}}`},
		{"/components/schemas/CredentialData", `{"data":{"id":"x","connection_id":"default","username":"alice","name":"","tag":"","enabled":true,"state":"active","expires_at":"tomorrow","algorithms":[],"created_at":"2026-01-02T15:04:05Z","updated_at":"2026-01-02T15:04:05Z"}}`},
		{"/components/schemas/CredentialData", `{"data":{"id":"x","connection_id":"default","username":"alice","name":"","tag":"","enabled":true,"state":"active","expires_at":null,"algorithms":[],"created_at":"2026-01-02T15:04:05Z","updated_at":"2026-01-02T15:04:05Z","password":"correct-horse-battery"}}`},
		{"/components/schemas/CredentialCreate", `{"username":"alice","password":""}`},
		{"/components/schemas/CredentialCreate", `{"username":"","name":"x"}`},
		{"/components/schemas/CredentialCreatedData", `{"data":{"id":"x","connection_id":"default","username":"alice","name":"","tag":"","enabled":true,"state":"active","expires_at":null,"algorithms":[],"created_at":"2026-01-02T15:04:05Z","updated_at":"2026-01-02T15:04:05Z","password":""}}`},
		{"/components/schemas/CredentialCreate", `{"username":"a b","password":"correct-horse-battery"}`},
		{"/components/schemas/CredentialUpdate", `{"state":"active"}`},
		{"/components/schemas/Error", `{"errors":[{"code":"not_found"}]}`},
		{"/components/schemas/ConnectionList", `{"data":[],"meta":{"page_size":0}}`},
	}
	for _, b := range bad {
		if err := o.validate(t, b.schema, []byte(b.doc)); err == nil {
			t.Errorf("%s accepts %s", b.schema, b.doc)
		}
	}
}

// TestOpenAPIErrorCodes: every error code of the server is listed in the
// document.
func TestOpenAPIErrorCodes(t *testing.T) {
	o := loadOpenAPI(t)
	desc, _ := o.at("/components/schemas/ErrorObject/properties/code/description").(string)
	codes := api.ErrorCodes()
	sort.Strings(codes)
	if len(codes) < 10 {
		t.Fatalf("got %d error codes, want the server's list", len(codes))
	}
	listed := regexp.MustCompile(`[a-z_]+`).FindAllString(desc, -1)
	for _, c := range codes {
		if !slices.Contains(listed, c) {
			t.Errorf("error code %s is not listed in ErrorObject.code's description", c)
		}
	}
}

// answerChecker validates real answers of the API against the document.
type answerChecker struct {
	t   *testing.T
	o   *openAPI
	mux *http.ServeMux
	ops map[string]operation
	// seen holds the pattern of every operation answered with a 2xx.
	seen map[string]bool
}

func newAnswerChecker(t *testing.T, o *openAPI) *answerChecker {
	a := &answerChecker{t: t, o: o, mux: http.NewServeMux(), ops: map[string]operation{}, seen: map[string]bool{}}
	for _, op := range o.operations(t) {
		a.ops[op.pattern] = op
		a.mux.Handle(op.pattern, http.NotFoundHandler())
	}
	return a
}

// check validates one exchange: the answer's status must be documented for
// the operation, its body must match the documented schema of its
// Content-Type (or be empty when none is documented), and its documented
// required headers must be present and valid. A request body answered
// with a 2xx must match the request schema; one refused as malformed or
// invalid (400, 422) must not, when badBody says the body is the cause.
func (a *answerChecker) check(req *http.Request, reqBody string, rec *httptest.ResponseRecorder, badBody bool) {
	t := a.t
	t.Helper()
	_, pattern := a.mux.Handler(req)
	op, ok := a.ops[pattern]
	if !ok {
		t.Errorf("%s %s: no documented operation", req.Method, req.URL)
		return
	}
	what := fmt.Sprintf("%s %s -> %d", req.Method, req.URL, rec.Code)
	respPtr := ptr(op.ptr, "responses", fmt.Sprint(rec.Code))
	if o, ok := a.o.at(respPtr).(map[string]any); !ok || o == nil {
		t.Errorf("%s: status %d is not documented for %s; body %s", what, rec.Code, pattern, rec.Body)
		return
	}
	if rec.Code < 300 {
		a.seen[pattern] = true
	}
	respPtr, resp := a.o.object(t, respPtr)
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if rec.Body.Len() != 0 {
			t.Errorf("%s: documented without content, answered %q", what, rec.Body)
		}
	} else {
		ct, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if _, ok := content[ct]; err != nil || !ok {
			t.Errorf("%s: Content-Type %q, documented %v", what, rec.Header().Get("Content-Type"), slices.Sorted(maps.Keys(content)))
		} else if err := a.o.validateAs(t, ct, ptr(respPtr, "content", ct, "schema"), rec.Body.Bytes()); err != nil {
			t.Errorf("%s: the answer does not match the document: %v\nbody %s", what, err, rec.Body)
		}
	}
	headers, _ := resp["headers"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		hPtr, h := a.o.object(t, ptr(respPtr, "headers", name))
		v := rec.Header().Get(name)
		if v == "" {
			if h["required"] == true {
				t.Errorf("%s: required header %s missing", what, name)
			}
			continue
		}
		if err := a.o.schema(t, hPtr+"/schema").Validate(v); err != nil {
			t.Errorf("%s: header %s %q does not match the document: %v", what, name, v, err)
		}
	}
	if reqBody == "" {
		return
	}
	if _, ok := op.op["requestBody"].(map[string]any); !ok {
		t.Errorf("%s: sent a body, but the operation documents none", what)
		return
	}
	reqCT := "application/json"
	if rc, _ := a.o.at(ptr(op.ptr, "requestBody", "content")).(map[string]any); rc != nil && rc[reqCT] == nil {
		for ct := range rc {
			reqCT = ct // the one documented
		}
	}
	err := a.o.validateAs(t, reqCT, ptr(op.ptr, "requestBody", "content", reqCT, "schema"), []byte(reqBody))
	switch {
	case rec.Code < 300 && err != nil:
		t.Errorf("%s: the server accepted %s, which the request schema refuses: %v", what, reqBody, err)
	case badBody && err == nil:
		t.Errorf("%s: the server refused %s, which the request schema accepts", what, reqBody)
	}
}
