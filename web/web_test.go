package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/web"
)

// servePhone serves web.Phone at /phone as the server will, with the
// default WebSocket ports.
func servePhone(t *testing.T) *httptest.Server {
	t.Helper()
	return servePhoneWith(t, web.Ports{})
}

// servePhoneWith is servePhone for a server whose ws and wss listeners
// have ports.
func servePhoneWith(t *testing.T, ports web.Ports) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h := web.Phone(ports)
	mux.Handle("/phone", h)
	mux.Handle("/phone/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func TestPhoneAssets(t *testing.T) {
	srv := servePhone(t)
	client := &http.Client{CheckRedirect: noRedirect}
	for _, tc := range []struct {
		method, path string
		status       int
		ctype        string
		body         string // a part of the body
		csp          bool
		location     string
	}{
		{"GET", "/phone/", 200, "text/html; charset=utf-8", `<script src="jssip.min.js"`, true, ""},
		{"GET", "/phone/index.html", 200, "text/html; charset=utf-8", `id="log"`, true, ""},
		{"HEAD", "/phone/", 200, "text/html; charset=utf-8", "", true, ""},
		{"GET", "/phone/phone.js", 200, "text/javascript; charset=utf-8", "authorization_jwt", false, ""},
		{"GET", "/phone/phone.css", 200, "text/css; charset=utf-8", "#log", false, ""},
		{"GET", "/phone/favicon.svg", 200, "image/svg+xml", "<svg", false, ""},
		{"GET", "/phone/jssip.min.js", 200, "text/javascript; charset=utf-8", "JsSIP 3.13.8 (MIT License", false, ""},
		{"GET", "/phone", 301, "", "", false, "/phone/"},
		{"GET", "/phone?server=ws://x:1", 301, "", "", false, "/phone/?server=ws://x:1"},
		{"GET", "/phone/nothing.js", 404, "", "", false, ""},
		{"GET", "/phone/web.go", 404, "", "", false, ""},
		{"POST", "/phone/", 405, "", "", false, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status: got %d, want %d", res.StatusCode, tc.status)
			}
			if tc.ctype != "" {
				if got := res.Header.Get("Content-Type"); got != tc.ctype {
					t.Errorf("Content-Type: got %q, want %q", got, tc.ctype)
				}
				if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("X-Content-Type-Options: got %q, want nosniff", got)
				}
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body: does not contain %q", tc.body)
			}
			csp := res.Header.Get("Content-Security-Policy")
			if tc.csp {
				for _, d := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self' ws://127.0.0.1:5066 wss://127.0.0.1:7443", "frame-ancestors 'none'"} {
					if !strings.Contains(csp, d) {
						t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
					}
				}
				if strings.Contains(csp, "unsafe") {
					t.Errorf("Content-Security-Policy %q allows unsafe sources", csp)
				}
			}
			if tc.location != "" {
				if got := res.Header.Get("Location"); got != tc.location {
					t.Errorf("Location: got %q, want %q", got, tc.location)
				}
			}
		})
	}
}

// An unchanged asset is answered 304 to a conditional request.
func TestPhoneETag(t *testing.T) {
	srv := servePhone(t)
	res, err := http.Get(srv.URL + "/phone/jssip.min.js")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req, _ := http.NewRequest("GET", srv.URL+"/phone/jssip.min.js", nil)
	req.Header.Set("If-None-Match", etag)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("status: got %d, want 304", res.StatusCode)
	}
}

// The page carries the server's WebSocket ports for its default server
// URL (phone.js reads the meta tag), the defaults without them.
func TestPhonePorts(t *testing.T) {
	for _, tc := range []struct {
		ports web.Ports
		want  string
	}{
		{web.Ports{}, `<meta name="sipwarden-ws-ports" content="5066 7443">`},
		{web.Ports{WS: 15066, WSS: 17443}, `<meta name="sipwarden-ws-ports" content="15066 17443">`},
		{web.Ports{WS: 8080}, `<meta name="sipwarden-ws-ports" content="8080 7443">`},
	} {
		res, err := http.Get(servePhoneWith(t, tc.ports).URL + "/phone/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%+v: the page lacks %s", tc.ports, tc.want)
		}
	}
}

// The page's connect-src names the host it was asked for, on the
// server's ports, and only when that host is an address or a DNS name:
// anything else would be copied into the header.
func TestPhoneConnectSrc(t *testing.T) {
	srv := servePhoneWith(t, web.Ports{WS: 5080, WSS: 5443})
	for host, want := range map[string]string{
		"127.0.0.1:8080":           "connect-src 'self' ws://127.0.0.1:5080 wss://127.0.0.1:5443",
		"[::1]:8080":               "connect-src 'self' ws://[::1]:5080 wss://[::1]:5443",
		"sip.example.com":          "connect-src 'self' ws://sip.example.com:5080 wss://sip.example.com:5443",
		"x.example; script-src *":  "connect-src 'self'",
		"a..b":                     "connect-src 'self'",
		"-bad.example:80":          "connect-src 'self'",
		"x.example:80 wss://evil:": "connect-src 'self'",
	} {
		req, err := http.NewRequest("GET", srv.URL+"/phone/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.HasSuffix(csp, "; "+want) {
			t.Errorf("Host %q: Content-Security-Policy %q, want it to end with %q", host, csp, want)
		}
	}
}
