package api

import (
	"fmt"
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

// readQuery parses the query string: only the given parameters and the
// page ones are allowed, each at most once, so that a typo is an error
// rather than an unfiltered list.
func readQuery(r *http.Request, allowed ...string) (url.Values, page, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, page{}, newError(http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("malformed query string: %v", err))
	}
	for name, vs := range q {
		if name != paramPageSize && name != paramPageAfter && !slices.Contains(allowed, name) {
			known := strings.Join(append(slices.Clone(allowed), paramPageSize, paramPageAfter), ", ")
			return nil, page{}, paramError(name, fmt.Sprintf("unknown query parameter %q; known: %s", name, known))
		}
		if len(vs) > 1 {
			return nil, page{}, paramError(name, fmt.Sprintf("query parameter %q given %d times", name, len(vs)))
		}
		if len(vs[0]) > maxParamLen {
			return nil, page{}, paramError(name, fmt.Sprintf("query parameter %q is longer than %d bytes", name, maxParamLen))
		}
	}
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

// unpaginated refuses page parameters on a list that is never paginated
// (the API keys), rather than ignoring them.
func unpaginated(r *http.Request) error {
	q := r.URL.Query()
	for _, name := range []string{paramPageSize, paramPageAfter} {
		if q.Has(name) {
			return paramError(name, "this list is not paginated: it is always whole")
		}
	}
	return nil
}

// isUUID reports whether s is a UUID in any form uuid.Parse reads: the
// store makes canonical ones, an import keeps the form it was given.
func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}
