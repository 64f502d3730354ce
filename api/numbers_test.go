package api_test

import (
	"net/http"
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
