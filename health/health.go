// Package health answers the liveness and readiness probes: GET /healthz
// (the process is alive and serving HTTP) and GET /readyz (every listener
// is bound and serving, and the store is open).
package health

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Readiness is the set of conditions that keep the server from taking
// traffic, each named by a component ("store", "sip", "sip.udp",
// "server"). It is ready when none is left. Safe for concurrent use.
type Readiness struct {
	mu      sync.Mutex
	blocked map[string]string // component -> why it is not ready
}

// NewReadiness returns a Readiness that waits for the given components,
// each with the reason given until it is marked ready: pairs of component
// and reason.
func NewReadiness(pending ...string) *Readiness {
	r := &Readiness{blocked: make(map[string]string)}
	for i := 0; i+1 < len(pending); i += 2 {
		r.blocked[pending[i]] = pending[i+1]
	}
	return r
}

// NotReady marks component as not ready, for reason (shown by /readyz: no
// secrets).
func (r *Readiness) NotReady(component, reason string) {
	r.mu.Lock()
	r.blocked[component] = reason
	r.mu.Unlock()
}

// Ready marks component as ready.
func (r *Readiness) Ready(component string) {
	r.mu.Lock()
	delete(r.blocked, component)
	r.mu.Unlock()
}

// Reasons returns "component: reason" for every unmet condition, sorted;
// none when ready.
func (r *Readiness) Reasons() []string {
	r.mu.Lock()
	out := make([]string, 0, len(r.blocked))
	for c, why := range r.blocked {
		out = append(out, c+": "+why)
	}
	r.mu.Unlock()
	slices.Sort(out)
	return out
}

// ServeHTTP answers GET /readyz: 200 "ready", or 503 with one unmet
// condition per line, in plain text.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	reasons := r.Reasons()
	if len(reasons) == 0 {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ready\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("not ready\n" + strings.Join(reasons, "\n") + "\n"))
}

// Live answers GET /healthz: 200 {"status":"ok"} while the process serves
// HTTP, whether or not it is ready (the same answer as the API's own
// /healthz, which the Go client's Health calls).
func Live(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
}
