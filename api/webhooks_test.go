package api_test

import (
	"net/http"
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
