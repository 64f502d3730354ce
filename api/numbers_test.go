package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/sipwarden/sipwarden/api"
)

// TestNumberRefusesParameters: a number with URI parameters or control
// characters is refused naming /number; it used to be stored as the part
// before ';' ("+1555;evil\r\nVia: x" became +1555), the rest unchecked.
func TestNumberRefusesParameters(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{
		"+15551234567;evil\r\nVia: x",
		"tel:+1-555-123-4567;ext=2",
		"+15551234567;",
		"+1555123*;x",
		"+15551234567\r\n",
		"+1555\t1234567",
		"+1555\u00851234567", // NEL, a C1 control
	} {
		t.Run(n, func(t *testing.T) {
			rec := e.do("POST", "/v1/numbers", map[string]any{"number": n, "connection_id": "default"})
			checkError(t, rec, http.StatusUnprocessableEntity, api.CodeInvalidValue, "/number")
		})
	}
	var got api.Number
	e.ok(http.StatusCreated, "POST", "/v1/numbers", map[string]any{"number": "tel:+1 (555) 123-4567", "connection_id": "default"}, &got)
	if got.Number != "+15551234567" {
		t.Fatalf("tel: URI with separators: got %q, want +15551234567", got.Number)
	}
}

// TestNumbersPageThrough: the numbers' cursors (numbers and patterns) are
// taken back, now that a cursor the API never gave is refused.
func TestNumbersPageThrough(t *testing.T) {
	e := newEnv(t)
	want := []string{"+15551234567", "+15551234568", "+1555777*"}
	for _, n := range want {
		e.ok(http.StatusCreated, "POST", "/v1/numbers", map[string]any{"number": n, "connection_id": "default"}, &api.Number{})
	}
	var got []string
	path := "/v1/numbers?page[size]=1"
	for range len(want) + 1 {
		var l listResponse[api.Number]
		rec := e.do("GET", path, nil)
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		for _, n := range l.Data {
			got = append(got, n.Number)
		}
		if l.Meta.NextCursor == nil {
			break
		}
		path = "/v1/numbers?page[size]=1&page[after]=" + url.QueryEscape(*l.Meta.NextCursor)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged through %v, want %v", got, want)
	}
}
