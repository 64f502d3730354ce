package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/console"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// TestAssets: the page and each asset with its content type; the page
// with a CSP that allows no inline script or style; 404 for the rest.
func TestAssets(t *testing.T) {
	h := console.Handler()
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/console/console.js" defer></script>`},
		{"/console/console.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/console/console.css", "text/css; charset=utf-8", "#secret-value"},
		{"/console/favicon.svg", "image/svg+xml", "<svg"},
	} {
		rec := get(t, h, "GET", tc.path)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != tc.ctype || !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: %d %q, body contains %q: %v", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.contains,
				strings.Contains(rec.Body.String(), tc.contains))
		}
		if rec.Header().Get("ETag") == "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", tc.path, rec.Header())
		}
	}
	page := get(t, h, "GET", "/")
	csp := page.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	// Nothing inline the CSP would refuse: no script without src, no
	// event-handler or style attributes, no <style>.
	body := page.Body.String()
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `\son[a-z]+=`, `\sstyle=`, `<style`} {
		if m := regexp.MustCompile(re).FindString(body); m != "" {
			t.Errorf("index.html has inline %q", m)
		}
	}
	for _, p := range []string{"/index.html", "/console/", "/console/nope.js", "/console/../go.mod", "/x"} {
		if rec := get(t, h, "GET", p); rec.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
	if rec := get(t, h, "POST", "/"); rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d %v", rec.Code, rec.Header())
	}
	if rec := get(t, h, "HEAD", "/console/console.js"); rec.Code != 200 {
		t.Errorf("HEAD: %d", rec.Code)
	}
	b, _ := io.ReadAll(get(t, h, "GET", "/console/console.js").Body)
	if strings.Contains(string(b), "innerHTML") || strings.Contains(string(b), "localStorage") {
		t.Error("console.js uses innerHTML or localStorage")
	}
}
