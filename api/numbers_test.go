package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
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

// TestNumberPathRefusesParameters: the number of the path is held to the
// rules of a body's: /v1/numbers/+1555;foo was read as +1555 (DELETE
// deleted it), as were ;ext=99 and a trailing line break.
func TestNumberPathRefusesParameters(t *testing.T) {
	e := newEnv(t)
	e.ok(http.StatusCreated, "POST", "/v1/numbers", map[string]any{"number": "+1555", "connection_id": "default"}, nil)
	for _, path := range []string{"+1555;foo", "+1555;ext=99", "+1555%0A", "%2B1555%3Bfoo", "+1555%09", "+"} {
		for _, method := range []string{"GET", "PATCH", "DELETE"} {
			t.Run(method+" "+path, func(t *testing.T) {
				var body any
				if method == "PATCH" {
					body = `{"connection_id":"default"}`
				}
				got := checkError(t, e.do(method, "/v1/numbers/"+path, body), http.StatusUnprocessableEntity, api.CodeInvalidValue, "?number")
				if path != "+" && !strings.Contains(got.Errors[0].Detail, "without parameters (;...) or control characters") {
					t.Errorf("got detail %q, want the body's reason", got.Errors[0].Detail)
				}
			})
		}
	}
	e.ok(http.StatusOK, "GET", "/v1/numbers/+1555", nil, nil)
	e.ok(http.StatusOK, "GET", "/v1/numbers/1555", nil, nil)
}

// TestNumberWithoutDigits: "+", "*", "+*" and "tel:" are given, so not a
// 422 required (as they were) but invalid_value saying what is missing.
func TestNumberWithoutDigits(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"+", "*", "+*", "tel:", "tel:+*", " + "} {
		t.Run(n, func(t *testing.T) {
			got := checkError(t, e.do("POST", "/v1/numbers", map[string]any{"number": n, "connection_id": "default"}),
				http.StatusUnprocessableEntity, api.CodeInvalidValue, "/number")
			if !strings.Contains(got.Errors[0].Detail, "no digits") {
				t.Errorf("got detail %q, want it to say the number holds no digits", got.Errors[0].Detail)
			}
		})
	}
	for _, body := range []map[string]any{{"number": "", "connection_id": "default"}, {"connection_id": "default"}} {
		checkError(t, e.do("POST", "/v1/numbers", body), http.StatusUnprocessableEntity, api.CodeRequired, "/number")
	}
}
