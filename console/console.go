// Package console is the operator's web console, embedded in the binary
// and served at / on the HTTP listener: plain HTML, CSS and JavaScript
// (static/), no framework and no build step. The page talks to the /v1
// management API of its own origin with an API key the operator types in,
// kept in the tab's sessionStorage only.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static/*
var static embed.FS

// CSP of the console: its own script, style and images only, nothing
// inline; requests to its own origin only (the API and /metrics); no
// frames, forms sent nowhere, not framable.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// AssetPrefix is the path under which the page's assets are served.
const AssetPrefix = "/console/"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

type asset struct {
	name, ctype, etag string
	data              []byte
}

type handler struct {
	page   *asset
	assets map[string]*asset // by file name
}

// Handler serves the console: GET / is the page, GET /console/NAME its
// assets (console.js, console.css, favicon.svg); anything else is 404.
// Mount it as mux.Handle("GET /{$}", h) and mux.Handle("GET /console/", h).
func Handler() http.Handler {
	h := &handler{assets: map[string]*asset{}}
	// Reading the embedded directory cannot fail (go:embed checked it at
	// build time); TestAssets fails if one went missing.
	entries, _ := fs.ReadDir(static, "static")
	for _, e := range entries {
		ctype, ok := contentTypes[path.Ext(e.Name())]
		if !ok || e.IsDir() {
			continue
		}
		data, err := static.ReadFile("static/" + e.Name())
		if err != nil {
			continue
		}
		sum := sha256.Sum256(data)
		a := &asset{name: e.Name(), ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, data: data}
		if e.Name() == "index.html" {
			h.page = a
		} else {
			h.assets[e.Name()] = a
		}
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var a *asset
	switch p := r.URL.Path; {
	case p == "/":
		a = h.page
	case strings.HasPrefix(p, AssetPrefix):
		a = h.assets[strings.TrimPrefix(p, AssetPrefix)]
	}
	if a == nil {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if a == h.page {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Permissions-Policy", "microphone=(), camera=(), geolocation=()")
		hd.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}
