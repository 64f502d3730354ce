package api

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Cursor pagination, the one style of every list: page[size] items (1 to
// maxPageSize, default defaultPageSize) after the cursor page[after], which
// is the next_cursor of the previous page.
const (
	paramPageSize   = "page[size]"
	paramPageAfter  = "page[after]"
	defaultPageSize = 100
	maxPageSize     = 1000
	maxParamLen     = 512
)

// page is a parsed page request.
type page struct {
	size  int
	after string
}

// routeQuery returns the query parameters the route pattern takes, and
// whether it is a list answered whole (never paginated). Every route
// refuses any other parameter before its handler runs (acceptQuery): a
// write route that ignored ?dry_run=1 did what the caller asked it not to,
// and a typo in a filter would list everything.
func routeQuery(pattern string) (names []string, whole bool) {
	paged := []string{paramPageSize, paramPageAfter}
	switch pattern {
	case "GET /v1/connections", "GET /v1/bans":
		return paged, false
	case "GET /v1/credentials":
		return append([]string{"connection_id", "tag", "username", "enabled"}, paged...), false
	case "GET /v1/numbers":
		return append([]string{"connection_id", "credential_id"}, paged...), false
	case "GET /v1/registrations":
		return append([]string{"username"}, paged...), false
	case "GET /v1/calls":
		return append([]string{"credential_id"}, paged...), false
	case "GET /v1/api-keys", "GET /v1/connections/{id}/webhook_deliveries":
		return nil, true
	}
	return nil, false
}

// acceptQuery returns h behind a check of the query string against what
// the route pattern takes (routeQuery): each parameter known, given at
// most once and at most maxParamLen bytes long, else a 400 naming it.
func acceptQuery(pattern string, h http.Handler) http.Handler {
	names, whole := routeQuery(pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkQuery(r.URL.RawQuery, pattern, names, whole); err != nil {
			writeError(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkQuery checks a raw query string for acceptQuery.
func checkQuery(raw, pattern string, allowed []string, whole bool) *Error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return newError(http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("malformed query string: %v", err))
	}
	for _, name := range slices.Sorted(maps.Keys(q)) { // the same parameter named every time
		vs := q[name]
		switch {
		case slices.Contains(allowed, name):
		case whole && (name == paramPageSize || name == paramPageAfter):
			return paramError(name, fmt.Sprintf("this list is not paginated: it is always whole (%s takes no query parameters)", pattern))
		case len(allowed) == 0:
			return paramError(name, fmt.Sprintf("unknown query parameter %q: %s takes no query parameters", name, pattern))
		default:
			return paramError(name, fmt.Sprintf("unknown query parameter %q: %s takes %s", name, pattern, strings.Join(allowed, ", ")))
		}
		if len(vs) > 1 {
			return paramError(name, fmt.Sprintf("query parameter %q given %d times", name, len(vs)))
		}
		if len(vs[0]) > maxParamLen {
			return paramError(name, fmt.Sprintf("query parameter %q is longer than %d bytes", name, maxParamLen))
		}
	}
	return nil
}

// readQuery returns the query parameters of a list, which acceptQuery has
// checked (none malformed, unknown or repeated), and its page.
func readQuery(r *http.Request) (url.Values, page, error) {
	q := r.URL.Query()
	p := page{size: defaultPageSize, after: q.Get(paramPageAfter)}
	if v := q.Get(paramPageSize); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return nil, page{}, paramError(paramPageSize, fmt.Sprintf("page[size] must be an integer from 1 to %d, not %q", maxPageSize, v))
		}
		p.size = n
	}
	return q, p, nil
}

// boolParam parses an optional true|false parameter.
func boolParam(q url.Values, name string) (*bool, error) {
	switch v := q.Get(name); v {
	case "":
		return nil, nil
	case "true":
		t := true
		return &t, nil
	case "false":
		f := false
		return &f, nil
	default:
		return nil, paramError(name, fmt.Sprintf("%s must be true or false, not %q", name, v))
	}
}

// writeList answers one page of a list.
func writeList[T any](w http.ResponseWriter, items []T, next string, size int) {
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, envelope{Data: items, Meta: &listMeta{NextCursor: next, PageSize: size}})
}

// checkCursor refuses a page[after] that valid says is not a key of the
// list's: a cursor this API never returned used to give an empty page (or
// the whole list), where the registrations' and calls' lists said 400.
func checkCursor(p page, valid func(string) bool) error {
	if p.after != "" && !valid(p.after) {
		return paramError(paramPageAfter, "page[after] is not a cursor this API returned")
	}
	return nil
}

// isUUID reports whether s is a UUID in any form uuid.Parse reads: the
// store makes canonical ones, an import keeps the form it was given.
func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}
