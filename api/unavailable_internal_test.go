package api

import (
	"fmt"
	"net/http"
	"testing"
)

// redisDown is what the cluster returns while Redis is unreachable: an
// error answering 503.
type redisDown struct{}

func (redisDown) Error() string   { return "cluster: redis unavailable" }
func (redisDown) HTTPStatus() int { return http.StatusServiceUnavailable }

// TestUnavailableCode: an API write refused because the cluster's Redis
// is down answers 503 with the code "unavailable" (openapi.json's list:
// unavailable (503)), not 503 with "internal_error", which is 500's.
func TestUnavailableCode(t *testing.T) {
	e, internal := asAPIError(fmt.Errorf("create credential: %w", redisDown{}))
	if e.Status != http.StatusServiceUnavailable || !internal {
		t.Fatalf("status %d internal %v, want 503 and logged", e.Status, internal)
	}
	if got := e.Errors[0]; got.Code != "unavailable" || got.Title != "Service unavailable" {
		t.Errorf("code %q title %q, want unavailable / Service unavailable", got.Code, got.Title)
	}
}
