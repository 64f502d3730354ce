package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
