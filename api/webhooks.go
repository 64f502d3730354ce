package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/webhook"
)

// WebhookLog backs GET /v1/connections/{id}/webhook_deliveries:
// *webhook.Dispatcher.
type WebhookLog interface {
	Deliveries(connectionID string) []webhook.Delivery
}

// maxWebhookTimeout bounds webhook_timeout_secs.
const maxWebhookTimeout = 60

// checkWebhookURL validates a webhook URL: absolute http or https, and a
// host that resolves now (an unreachable URL is a 422, not a stream of
// failed deliveries). "" clears.
func (v *validation) checkWebhookURL(ctx context.Context, pointer, field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 2048 {
		v.add(pointer, CodeInvalidValue, "%s must be an absolute http or https URL, not %q", field, truncate(s, 64))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, u.Hostname()); err != nil {
		v.add(pointer, CodeInvalidValue, "%s is unreachable: its host %q does not resolve", field, truncate(u.Hostname(), 64))
	}
}

// checkWebhooks validates the webhook fields the body sets.
func (v *validation) checkWebhooks(ctx context.Context, b *connectionBody) {
	if s, ok := b.WebhookEventURL.value(); ok {
		v.checkWebhookURL(ctx, "/webhook_event_url", "webhook_event_url", s)
	}
	if s, ok := b.WebhookEventFailoverURL.value(); ok {
		v.checkWebhookURL(ctx, "/webhook_event_failover_url", "webhook_event_failover_url", s)
	}
	if n, ok := b.WebhookTimeoutSecs.value(); ok && (n < 0 || n > maxWebhookTimeout) {
		v.add("/webhook_timeout_secs", CodeInvalidValue, "webhook_timeout_secs must be from 1 to %d (0: the default, 10), not %d", maxWebhookTimeout, n)
	}
}

// applyWebhooks sets the webhook fields the body set on c, and makes its
// secret when it gets a URL without having one; it returns the secret
// made ("" when none was), shown once in the answer.
func applyWebhooks(b *connectionBody, c *store.Connection) (string, error) {
	if b.WebhookEventURL.Set {
		c.WebhookEventURL, _ = b.WebhookEventURL.value()
	}
	if b.WebhookEventFailoverURL.Set {
		c.WebhookEventFailoverURL, _ = b.WebhookEventFailoverURL.value()
	}
	if b.WebhookTimeoutSecs.Set {
		c.WebhookTimeoutSecs, _ = b.WebhookTimeoutSecs.value()
	}
	if c.WebhookEventURL == "" || c.WebhookSecret != "" {
		return "", nil
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return "", err
	}
	c.WebhookSecret = secret
	return secret, nil
}

// rotateWebhookSecret replaces the connection's webhook secret with a new
// one, answered once: a secret lost or leaked used to mean a new
// connection (and moving its credentials and numbers to it). The
// dispatcher reads the secret from the store for every event, so the
// next one is signed with it.
func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	if err := decodeOptionalEmpty(r); err != nil {
		return err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	id := r.PathValue("id")
	c, err := s.db.UpdateConnection(id, func(c *store.Connection) error {
		c.WebhookSecret = secret
		c.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return storeErr("update", "connection", id, err)
	}
	s.log.InfoContext(r.Context(), "webhook secret rotated", "connection_id", c.ID)
	out := connectionOut(c)
	out.WebhookSecret = secret // shown once
	writeJSON(w, http.StatusOK, envelope{Data: out})
	return nil
}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := readQuery(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := s.db.Connection(id); err != nil {
		return storeErr("get", "connection", id, err)
	}
	out := []webhook.Delivery{}
	if s.webhooks != nil {
		out = append(out, s.webhooks.Deliveries(id)...)
	}
	for i := range out {
		out[i].URL = maskURLPassword(out[i].URL)
	}
	writeJSON(w, http.StatusOK, envelope{Data: out})
	return nil
}

// SetWebhookLog gives the server the webhook dispatcher's delivery log.
func (s *Server) SetWebhookLog(l WebhookLog) { s.webhooks = l }

// maskURLPassword returns s with the password of its userinfo, if any,
// replaced by *** (as net/http's client errors show it): a webhook URL's
// password is write-only, like gateway_password, and answers reach
// read-only keys too. Anything that does not parse is returned as is (the
// API refused it when it was set).
func maskURLPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	// url.UserPassword would escape the stars.
	u.User = url.User(u.User.Username())
	out := u.String()
	head := u.Scheme + "://" + u.User.String()
	if !strings.HasPrefix(out, head+"@") {
		return u.Redacted()
	}
	return head + ":***" + out[len(head):]
}
