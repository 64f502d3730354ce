package api

import (
	_ "embed" // openapi.json
	"io"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 description of this API, written by hand
// and checked by openapi_test.go against the route table, its own
// examples and the answers of the real handlers.
//
//go:embed openapi.json
var openAPIDoc string

// serveOpenAPI answers GET /v1/openapi.json, without an API key.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, openAPIDoc) // the client went away; nothing left to tell it
}
