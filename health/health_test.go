package health_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sipwarden/sipwarden/health"
)

func TestReadiness(t *testing.T) {
	r := health.NewReadiness("store", "not open yet", "sip", "not serving yet")
	check := func(wantCode int, wantBody string) {
		t.Helper()
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != wantCode || rec.Body.String() != wantBody {
			t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body.String(), wantCode, wantBody)
		}
	}
	check(503, "not ready\nsip: not serving yet\nstore: not open yet\n")
	r.Ready("store")
	check(503, "not ready\nsip: not serving yet\n")
	r.Ready("sip")
	check(200, "ready\n")
	r.NotReady("sip.udp", "listener stopped")
	check(503, "not ready\nsip.udp: listener stopped\n")
}

func TestLive(t *testing.T) {
	rec := httptest.NewRecorder()
	health.Live(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Fatalf("got %d %q, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body.String())
	}
}
