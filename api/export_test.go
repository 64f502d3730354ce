package api

// Hooks for the black-box tests of package api_test.

// RoutePatterns returns every pattern of the route table, and whether it
// is served without an API key.
func (s *Server) RoutePatterns() map[string]bool {
	out := map[string]bool{}
	for _, r := range s.routeTable() {
		out[r.pattern] = r.public
	}
	return out
}

// ErrorCodes lists every error code the server may answer.
func ErrorCodes() []string {
	var out []string
	for code := range titles {
		if code != codeHTTPError { // client side only
			out = append(out, code)
		}
	}
	return out
}

// OpenAPIDoc is the embedded document, as served.
func OpenAPIDoc() string { return openAPIDoc }

// RouteQuery returns the query parameters the route pattern takes.
func RouteQuery(pattern string) []string {
	names, _ := routeQuery(pattern)
	return names
}

// SetUsernameGenerator replaces how usernames are generated for
// credentials created without one.
func (s *Server) SetUsernameGenerator(f func() string) { s.newUsername = f }
