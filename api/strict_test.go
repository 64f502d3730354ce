package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/api"
)

// TestBodiesAreStrict: request bodies are refused, naming the field, for
// what encoding/json lets through silently: an unknown key inside a nested
// object (a misspelt "prefix" used to make a catch-all route), a key in
// the wrong case ({"NAME": ...} used to set name), a key given twice, and
// a string that is not UTF-8 (an invalid byte in a password used to turn
// into U+FFFD, and the HA1 into that of another password).
func TestBodiesAreStrict(t *testing.T) {
	e := newEnv(t)
	cred := e.createCredential(map[string]any{"username": "strict", "password": "correct-horse-battery"})
	cases := []struct {
		name, method, path, body string
		status                   int
		code, pointer            string
	}{
		{"unknown nested field", "POST", "/v1/connections",
			`{"name":"t","outbound_routes":[{"prefx":"+44","gateways":["sip:192.0.2.10"]}]}`,
			400, api.CodeUnknownField, "/outbound_routes/0/prefx"},
		{"nested field in the wrong case", "POST", "/v1/connections",
			`{"name":"t","outbound_routes":[{"Prefix":"+44","gateways":["sip:192.0.2.10"]}]}`,
			400, api.CodeUnknownField, "/outbound_routes/0/Prefix"},
		{"top-level field in the wrong case", "POST", "/v1/connections", `{"NAME":"t"}`,
			400, api.CodeUnknownField, "/NAME"},
		{"wrong case in a PATCH", "PATCH", "/v1/credentials/" + cred.ID, `{"Enabled":false}`,
			400, api.CodeUnknownField, "/Enabled"},
		{"unknown field", "POST", "/v1/credentials", `{"username":"x","password":"correct-horse-battery","passwd":"y"}`,
			400, api.CodeUnknownField, "/passwd"},
		{"duplicate key", "POST", "/v1/credentials", `{"username":"dup","password":"correct-horse-battery","username":"admin"}`,
			400, api.CodeInvalidJSON, "/username"},
		{"duplicate key by escape", "POST", "/v1/connections", `{"name":"a","n\u0061me":"b"}`,
			400, api.CodeInvalidJSON, "/name"},
		{"duplicate nested key", "POST", "/v1/connections",
			`{"name":"t","outbound_routes":[{"prefix":"+44","prefix":"","gateways":["sip:192.0.2.10"]}]}`,
			400, api.CodeInvalidJSON, "/outbound_routes/0/prefix"},
		{"invalid UTF-8 in a password", "POST", "/v1/credentials", "{\"username\":\"utf\",\"password\":\"correct-horse-\xff-battery\"}",
			400, api.CodeInvalidJSON, "/password"},
		{"lone surrogate escape", "POST", "/v1/credentials", `{"username":"utf","password":"correct-horse-\udc00-battery"}`,
			400, api.CodeInvalidJSON, "/password"},
		{"high surrogate without its low one", "PATCH", "/v1/credentials/" + cred.ID, `{"name":"a\ud83d"}`,
			400, api.CodeInvalidJSON, "/name"},
		{"invalid UTF-8 in a nested string", "POST", "/v1/connections", "{\"name\":\"t\",\"allowed_cidrs\":[\"10.0.0.0/8\",\"\xc3\"]}",
			400, api.CodeInvalidJSON, "/allowed_cidrs/1"},
		// 600,000 brackets took gigabytes before nesting was bounded. In a
		// field of any JSON type (state): where a string is wanted, the
		// first bracket is already the wrong type.
		{"deep nesting", "POST", "/v1/credentials", `{"state":` + strings.Repeat("[", 600_000) + `}`,
			400, api.CodeInvalidJSON, "/state/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0"},
		{"deep nesting in a string field", "POST", "/v1/connections", `{"name":` + strings.Repeat("[", 600_000) + `}`,
			400, api.CodeInvalidJSON, "/name"},
		{"route without a prefix", "POST", "/v1/connections",
			`{"name":"t","outbound_routes":[{"gateways":["sip:192.0.2.10"]}]}`,
			422, api.CodeRequired, "/outbound_routes/0/prefix"},
		{"route with a null prefix", "POST", "/v1/connections",
			`{"name":"t","outbound_routes":[{"prefix":null,"gateways":["sip:192.0.2.10"]}]}`,
			422, api.CodeRequired, "/outbound_routes/0/prefix"},
		{"import: wrong case", "POST", "/v1/import", `{"username":"imp","HA1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}`,
			400, api.CodeUnknownField, "/0/HA1"},
		{"import: duplicate algorithm", "POST", "/v1/import",
			`{"username":"imp","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9","MD5":"00000000000000000000000000000000"}}`,
			400, api.CodeInvalidJSON, "/0/ha1/MD5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkError(t, e.do(c.method, c.path, c.body), c.status, c.code, c.pointer)
		})
	}
	// What is valid still is: an explicit "" prefix routes every number,
	// valid surrogate pairs and non-ASCII text pass, a pointer escapes "/".
	var conn api.Connection
	e.ok(http.StatusCreated, "POST", "/v1/connections",
		`{"name":"caf\u00e9 \ud83d\ude00 ok","outbound_routes":[{"prefix":"","gateways":["sip:192.0.2.10"]}]}`, &conn)
	if conn.Name != "café 😀 ok" || len(conn.OutboundRoutes) != 1 || conn.OutboundRoutes[0].Prefix != "" {
		t.Fatalf("valid body: got %+v", conn)
	}
	checkError(t, e.do("POST", "/v1/connections", `{"name":"t","a/b~c":1}`), 400, api.CodeUnknownField, "/a~1b~0c")
}

// TestWrongTypeNamesTheValue: a value of the wrong JSON type is named by
// its whole pointer, array indices included (encoding/json gave
// /outbound_routes/prefix for /outbound_routes/1/prefix), and a number that
// is not an integer for an integer field says so, with the field's range
// (it said "got number 1e3, want number").
func TestWrongTypeNamesTheValue(t *testing.T) {
	e := newEnv(t)
	const gw = `"gateways":["sip:192.0.2.10"]`
	cases := []struct {
		name, path, body, pointer, detail string
	}{
		{"route prefix", "/v1/connections", `{"name":"t","outbound_routes":[{"prefix":"+1",` + gw + `},{"prefix":5,` + gw + `}]}`,
			"/outbound_routes/1/prefix", "got number 5, want string"},
		{"gateway", "/v1/connections", `{"name":"t","outbound_routes":[{"prefix":"+1","gateways":["sip:192.0.2.10",7]}]}`,
			"/outbound_routes/0/gateways/1", "want string"},
		{"route not an object", "/v1/connections", `{"name":"t","outbound_routes":["+1"]}`, "/outbound_routes/0", "got string, want object"},
		{"cidr", "/v1/connections", `{"name":"t","allowed_cidrs":[1]}`, "/allowed_cidrs/0", "want string"},
		{"algorithm", "/v1/credentials", `{"username":"x","password":"correct-horse-battery","algorithms":["MD5",5]}`, "/algorithms/1", "want string"},
		{"import ha1", "/v1/import", `{"username":"imp","ha1":{"MD5":5}}`, "/0/ha1/MD5", "want string"},
		{"exponent", "/v1/connections", `{"name":"t","max_calls":1e3}`, "/max_calls", "got number 1e3, want an integer from 0 to 1000000"},
		{"point zero", "/v1/connections", `{"name":"t","max_calls":5.0}`, "/max_calls", "want an integer from 0 to 1000000"},
		{"fraction", "/v1/connections", `{"name":"t","max_registrations":1.5}`, "/max_registrations", "want an integer from 0 to 1000000"},
		{"past int64", "/v1/connections", `{"name":"t","max_calls":99999999999999999999}`, "/max_calls", "want an integer from 0 to 1000000"},
		{"string for an integer", "/v1/connections", `{"name":"t","max_calls":"5"}`, "/max_calls", "got string, want an integer from 0 to 1000000"},
		{"timeout", "/v1/connections", `{"name":"t","webhook_timeout_secs":2.5}`, "/webhook_timeout_secs", "want an integer from 0 to 60"},
		{"boolean", "/v1/connections", `{"name":"t","active":"yes"}`, "/active", "got string, want boolean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := checkError(t, e.do("POST", c.path, c.body), http.StatusBadRequest, api.CodeInvalidJSON, c.pointer)
			if d := got.Errors[0].Detail; !strings.Contains(d, c.detail) {
				t.Errorf("got detail %q, want it to contain %q", d, c.detail)
			}
		})
	}
	// Integers in range, nulls and floats where they belong still pass.
	e.ok(http.StatusCreated, "POST", "/v1/connections", `{"name":"t","max_calls":1000,"max_registrations":0,"webhook_timeout_secs":null,"outbound_routes":null}`, nil)
}
