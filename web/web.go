// Package web holds the pages the server's HTTP listener serves, embedded
// in the binary: the test phone at /phone (JsSIP over WebSocket), built
// from web/phone. Only phone/jssip.min.js is generated (`make web`, from
// web/package.json); it is committed, so building the server needs no
// npm.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed phone/*
var phoneFS embed.FS

// Content-Security-Policy of the phone page: its own scripts and styles
// only, nothing inline; no frames, forms sent nowhere, not framable.
// connect-src (cspFor) lets it open WebSockets to this server only: the
// page's own origin (a reverse proxy in front of both) and the page's host
// on the server's ws and wss ports. With any host allowed, a link naming
// another server (the page took it from ?server=) made the page send the
// user's token, or a digest answer to guess the password from, there.
const phoneCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"media-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// cspFor is the phone page's Content-Security-Policy for a request to
// host (the Host header: what the browser's location says): connect-src
// 'self', and ws://host:WS and wss://host:WSS when host is an IP address
// or a DNS name (anything else would be copied into the header).
func (p Ports) cspFor(host string) string {
	src := "'self'"
	if h := hostOf(host); h != "" {
		src += " ws://" + h + ":" + strconv.Itoa(p.ws()) + " wss://" + h + ":" + strconv.Itoa(p.wss())
	}
	return phoneCSP + "; connect-src " + src
}

// hostOf returns the host part of a Host header, bracketed when it is an
// IPv6 address, or "" when it is neither an IP address nor a DNS name.
func hostOf(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Is6() && !a.Is4In6() {
			return "[" + a.String() + "]"
		}
		return a.String()
	}
	if h == "" || len(h) > 253 {
		return ""
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return ""
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return ""
			}
		}
	}
	return h
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Ports are the server's WebSocket listener ports, for the phone page's
// default server URL; 0: the default (5066 for ws, 7443 for wss).
type Ports struct{ WS, WSS int }

// defaultPorts is what the page says without the server's ports.
const defaultPorts = `<meta name="sipwarden-ws-ports" content="5066 7443">`

// ws and wss are the ports, defaults filled in.
func (p Ports) ws() int {
	if p.WS == 0 {
		return 5066
	}
	return p.WS
}

func (p Ports) wss() int {
	if p.WSS == 0 {
		return 7443
	}
	return p.WSS
}

// into writes p into the page's sipwarden-ws-ports meta tag.
func (p Ports) into(page []byte) []byte {
	tag := `<meta name="sipwarden-ws-ports" content="` + strconv.Itoa(p.ws()) + " " + strconv.Itoa(p.wss()) + `">`
	return bytes.Replace(page, []byte(defaultPorts), []byte(tag), 1)
}

type asset struct {
	name  string
	ctype string
	etag  string
	data  []byte
}

type phoneHandler struct {
	assets map[string]*asset // by file name; "" is the page
	ports  Ports
}

// Phone returns the handler of the test phone page and its assets. It
// works under any prefix: a path ending in "/" (or in "/index.html")
// gets the page, one whose last element names an asset (phone.js,
// phone.css, jssip.min.js, favicon.svg) gets that asset, and one without a trailing
// slash or a dot (such as "/phone") is redirected to itself with the
// slash, so that the page's relative asset links resolve. Mount it as
// mux.Handle("/phone", h) and mux.Handle("/phone/", h).
//
// ports are the server's ws and wss listener ports, which the page takes
// as its default server URL's (0: the defaults, 5066 and 7443).
func Phone(ports Ports) http.Handler {
	h := &phoneHandler{assets: map[string]*asset{}, ports: ports}
	// Reading an embedded directory cannot fail (go:embed checked it at
	// build time); TestPhoneAssets fails if an asset went missing.
	entries, _ := fs.ReadDir(phoneFS, "phone")
	for _, e := range entries {
		name := e.Name()
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok || e.IsDir() {
			continue
		}
		data, err := phoneFS.ReadFile("phone/" + name)
		if err != nil {
			continue
		}
		if name == "index.html" {
			data = ports.into(data)
		}
		sum := sha256.Sum256(data)
		a := &asset{name: name, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, data: data}
		h.assets[name] = a
		if name == "index.html" {
			h.assets[""] = a
		}
	}
	return h
}

func (h *phoneHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	base := ""
	if !strings.HasSuffix(p, "/") {
		base = path.Base(p)
	}
	a, ok := h.assets[base]
	if !ok {
		if base != "" && !strings.Contains(base, ".") {
			target := p + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
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
	if a.ctype == contentTypes[".html"] {
		hd.Set("Content-Security-Policy", h.ports.cspFor(r.Host))
		hd.Set("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
		hd.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}
