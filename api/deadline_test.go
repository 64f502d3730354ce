package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
)

// TestLiftDeadlines: a handler wrapped in LiftDeadlines may run past the
// server's ReadTimeout and WriteTimeout (backup, export, the profiler)
// and its answer arrives whole; the same handler unwrapped loses it.
func TestLiftDeadlines(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(400 * time.Millisecond):
		case <-r.Context().Done():
			return // what pprof.Profile does: an empty answer
		}
		_, _ = io.WriteString(w, "done")
	})
	for _, c := range []struct {
		name string
		h    http.Handler
		want string
	}{{"lifted", api.LiftDeadlines(slow), "done"}, {"not lifted", slow, ""}} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(c.h)
			srv.Config.ReadTimeout = 100 * time.Millisecond
			srv.Config.WriteTimeout = 100 * time.Millisecond
			srv.Start()
			t.Cleanup(srv.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if res, err := srv.Client().Do(req); err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				got = string(b)
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
