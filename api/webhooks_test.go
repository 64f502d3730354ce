package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/webhook"
)

type fakeWebhookLog struct{ url string }

func (f fakeWebhookLog) Deliveries(string) []webhook.Delivery {
	return []webhook.Delivery{{URL: f.url}}
}

// TestWebhookURLPasswordMasked: the password of a webhook URL's userinfo
// is never shown, to admin or read-only keys, in connections or in the
// delivery log (it used to be returned verbatim).
func TestWebhookURLPasswordMasked(t *testing.T) {
	const secret = "s3cr3t-hook-pass"
	e := newEnv(t)
	e.srv.SetWebhookLog(fakeWebhookLog{url: "http://hook:" + secret + "@127.0.0.1:9/hook"})
	var c api.Connection
	e.ok(http.StatusCreated, "POST", "/v1/connections", `{"name":"hooked","webhook_event_url":"http://hook:`+secret+`@127.0.0.1:9/hook","webhook_event_failover_url":"http://only-user@127.0.0.1:9/b"}`, &c)
	if c.WebhookEventURL != "http://hook:***@127.0.0.1:9/hook" || c.WebhookEventFailoverURL != "http://only-user@127.0.0.1:9/b" {
		t.Fatalf("got %q and %q, want the password masked and the user kept", c.WebhookEventURL, c.WebhookEventFailoverURL)
	}
	var key api.APIKey
	e.ok(http.StatusCreated, "POST", "/v1/api-keys", `{"name":"dash","scope":"read"}`, &key)
	for _, k := range []string{e.key, key.Key} {
		for _, path := range []string{"/v1/connections", "/v1/connections/" + c.ID, "/v1/connections/" + c.ID + "/webhook_deliveries"} {
			rec := e.doKey(k, "GET", path, nil)
			if rec.Code != 200 || strings.Contains(rec.Body.String(), secret) || !strings.Contains(rec.Body.String(), "hook:***@") {
				t.Fatalf("GET %s: got %d %s, want 200 with the password masked", path, rec.Code, rec.Body)
			}
		}
	}
}

// TestURLPortsInRange: a port out of 1 to 65535 is a 422 naming the field,
// in webhook URLs (http://127.0.0.22:99999/x was stored, and every
// delivery failed), gateways and pbx_uri (sip:192.0.2.10:0 was taken as
// port 0, sip:[2001:db8::1]:99999 as the host "2001:db8::1]:99999").
func TestURLPortsInRange(t *testing.T) {
	e := newEnv(t)
	route := func(gw string) string {
		return `{"name":"p","outbound_routes":[{"prefix":"+1","gateways":["sip:192.0.2.10",` + strconv.Quote(gw) + `]}]}`
	}
	cases := []struct {
		name, body, pointer string
	}{
		{"webhook port too big", `{"name":"p","webhook_event_url":"http://127.0.0.22:99999/x"}`, "/webhook_event_url"},
		{"webhook port zero", `{"name":"p","webhook_event_url":"http://127.0.0.22:0/x"}`, "/webhook_event_url"},
		{"webhook IPv6 port too big", `{"name":"p","webhook_event_url":"http://[::1]:65536/x"}`, "/webhook_event_url"},
		{"failover port too big", `{"name":"p","webhook_event_url":"http://127.0.0.22:9/x","webhook_event_failover_url":"https://127.0.0.22:70000/fo"}`, "/webhook_event_failover_url"},
		{"gateway port zero", route("sip:192.0.2.11:0"), "/outbound_routes/0/gateways/1"},
		{"gateway port too big", route("sip:gw.example:65536;transport=tcp"), "/outbound_routes/0/gateways/1"},
		{"gateway port not a number", route("sip:gw.example:5060abc"), "/outbound_routes/0/gateways/1"},
		{"gateway IPv6 port too big", route("sip:[2001:db8::1]:99999"), "/outbound_routes/0/gateways/1"},
		{"gateway IPv6 port zero", route("sips:[2001:db8::1]:0"), "/outbound_routes/0/gateways/1"},
		{"pbx_uri port zero", `{"name":"p","pbx_uri":"sip:192.0.2.10:0"}`, "/pbx_uri"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkError(t, e.do("POST", "/v1/connections", c.body), http.StatusUnprocessableEntity, api.CodeInvalidValue, c.pointer)
			checkError(t, e.do("PATCH", "/v1/connections/default", strings.Replace(c.body, `"name":"p",`, "", 1)),
				http.StatusUnprocessableEntity, api.CodeInvalidValue, c.pointer)
		})
	}
	// The bounds themselves are ports.
	e.ok(http.StatusCreated, "POST", "/v1/connections", `{"name":"ok","webhook_event_url":"http://127.0.0.22:65535/x","webhook_event_failover_url":"http://127.0.0.22:1/fo",`+
		`"pbx_uri":"sip:192.0.2.10:5080","outbound_routes":[{"prefix":"+1","gateways":["sip:[2001:db8::1]:5080","sip:gw.example:1;transport=tcp","sip:[2001:db8::2]"]}]}`, nil)
}

// TestWebhookFailoverNeedsPrimary: a failover URL without a primary one is
// a 422: the dispatcher only fails over from webhook_event_url, and a
// connection with a failover alone was stored and never notified anyone.
func TestWebhookFailoverNeedsPrimary(t *testing.T) {
	e := newEnv(t)
	const fo = "http://127.0.0.22:9999/fo-only"
	checkError(t, e.do("POST", "/v1/connections", `{"name":"fo","webhook_event_failover_url":"`+fo+`"}`),
		http.StatusUnprocessableEntity, api.CodeInvalidValue, "/webhook_event_failover_url")
	checkError(t, e.do("POST", "/v1/connections", `{"name":"fo","webhook_event_url":"","webhook_event_failover_url":"`+fo+`"}`),
		http.StatusUnprocessableEntity, api.CodeInvalidValue, "/webhook_event_failover_url")
	var plain, both api.Connection
	e.ok(http.StatusCreated, "POST", "/v1/connections", `{"name":"plain"}`, &plain)
	checkError(t, e.do("PATCH", "/v1/connections/"+plain.ID, `{"webhook_event_failover_url":"`+fo+`"}`),
		http.StatusUnprocessableEntity, api.CodeInvalidValue, "/webhook_event_failover_url")
	e.ok(http.StatusCreated, "POST", "/v1/connections", `{"name":"both","webhook_event_url":"http://127.0.0.22:9/p","webhook_event_failover_url":"`+fo+`"}`, &both)
	// Removing the primary while the failover stays.
	checkError(t, e.do("PATCH", "/v1/connections/"+both.ID, `{"webhook_event_url":""}`),
		http.StatusUnprocessableEntity, api.CodeRequired, "/webhook_event_url")
	checkError(t, e.do("PATCH", "/v1/connections/"+both.ID, `{"webhook_event_url":null}`),
		http.StatusUnprocessableEntity, api.CodeRequired, "/webhook_event_url")
	stored, err := e.db.Connection(both.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.WebhookEventURL != "http://127.0.0.22:9/p" || stored.WebhookEventFailoverURL != fo {
		t.Fatalf("after refused PATCHes: got %q and %q, want both URLs kept", stored.WebhookEventURL, stored.WebhookEventFailoverURL)
	}
	// Both cleared, or the failover alone, is fine.
	e.ok(http.StatusOK, "PATCH", "/v1/connections/"+both.ID, `{"webhook_event_failover_url":""}`, nil)
	e.ok(http.StatusOK, "PATCH", "/v1/connections/"+both.ID, `{"webhook_event_url":"","webhook_event_failover_url":""}`, nil)
}

// TestMaskedWebhookPasswordKept: a URL sent back as answers show it, its
// password masked as ***, keeps the stored password (it used to store
// "***" as the password); *** in any other URL is a 422 naming the field.
func TestMaskedWebhookPasswordKept(t *testing.T) {
	e := newEnv(t)
	const (
		url = "http://hook:s3cr3t%40pass@127.0.0.1:9/hook?x=1"
		fo  = "https://fo:an0ther@127.0.0.1:10/fo"
	)
	var c api.Connection
	e.ok(http.StatusCreated, "POST", "/v1/connections", map[string]any{"name": "masked", "webhook_event_url": url, "webhook_event_failover_url": fo}, &c)
	if c.WebhookEventURL != "http://hook:***@127.0.0.1:9/hook?x=1" || c.WebhookEventFailoverURL != "https://fo:***@127.0.0.1:10/fo" {
		t.Fatalf("got %q and %q, want the passwords masked", c.WebhookEventURL, c.WebhookEventFailoverURL)
	}
	stored := func() (string, string) {
		t.Helper()
		got, err := e.db.Connection(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.WebhookEventURL, got.WebhookEventFailoverURL
	}
	// The connection as read, sent back.
	e.ok(http.StatusOK, "PATCH", "/v1/connections/"+c.ID, map[string]any{
		"name": "renamed", "webhook_event_url": c.WebhookEventURL, "webhook_event_failover_url": c.WebhookEventFailoverURL}, nil)
	if u, f := stored(); u != url || f != fo {
		t.Fatalf("after sending the masked URLs back: stored %q and %q, want %q and %q", u, f, url, fo)
	}
	for _, tc := range []struct{ field, value string }{
		{"webhook_event_url", "http://hook:***@127.0.0.1:9/other?x=1"},   // path
		{"webhook_event_url", "http://hook:***@127.0.0.1:9/hook?x=2"},    // query
		{"webhook_event_url", "http://other:***@127.0.0.1:9/hook?x=1"},   // user
		{"webhook_event_url", "https://hook:***@127.0.0.1:9/hook?x=1"},   // scheme
		{"webhook_event_url", "http://hook:***@127.0.0.1:19/hook?x=1"},   // port
		{"webhook_event_failover_url", "https://fo:***@127.0.0.2:10/fo"}, // host
	} {
		checkError(t, e.do("PATCH", "/v1/connections/"+c.ID, map[string]any{tc.field: tc.value}),
			http.StatusUnprocessableEntity, api.CodeInvalidValue, "/"+tc.field)
	}
	if u, f := stored(); u != url || f != fo {
		t.Fatalf("after refused PATCHes: stored %q and %q, want %q and %q", u, f, url, fo)
	}
	// A new connection has no password the mask could stand for.
	checkError(t, e.do("POST", "/v1/connections", map[string]any{"name": "new", "webhook_event_url": c.WebhookEventURL}),
		http.StatusUnprocessableEntity, api.CodeInvalidValue, "/webhook_event_url")
	// A new password replaces the stored one.
	e.ok(http.StatusOK, "PATCH", "/v1/connections/"+c.ID, map[string]any{"webhook_event_url": "http://hook:n3w@127.0.0.1:9/hook?x=1"}, nil)
	if u, _ := stored(); u != "http://hook:n3w@127.0.0.1:9/hook?x=1" {
		t.Fatalf("after a new password: stored %q", u)
	}
}
