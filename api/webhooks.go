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
	// url.Parse takes any digits for a port: http://host:99999/ was stored,
	// and every delivery to it failed.
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil { // connections.go
			v.add(pointer, CodeInvalidValue, "%s: %v", field, err)
			return
		}
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

// applyWebhooks sets the webhook fields the body set on c (the stored
// connection for a PATCH, the new one for a POST), and makes its secret
// when it gets a URL without having one; it returns the secret made (""
// when none was), shown once in the answer. A 422 *Error refuses a URL
// whose password is the mask of another URL's (keepMaskedPassword), and a
// failover URL left without a primary: the dispatcher only fails over from
// webhook_event_url, so it would never be used.
func applyWebhooks(b *connectionBody, c *store.Connection) (string, error) {
	for _, f := range []struct {
		o       optional[string]
		pointer string
		dst     *string
	}{
		{b.WebhookEventURL, "/webhook_event_url", &c.WebhookEventURL},
		{b.WebhookEventFailoverURL, "/webhook_event_failover_url", &c.WebhookEventFailoverURL},
	} {
		if !f.o.Set {
			continue
		}
		s, _ := f.o.value()
		kept, err := keepMaskedPassword(f.pointer, s, *f.dst)
		if err != nil {
			return "", err
		}
		*f.dst = kept
	}
	if (b.WebhookEventURL.Set || b.WebhookEventFailoverURL.Set) && c.WebhookEventURL == "" && c.WebhookEventFailoverURL != "" {
		o := fieldError("/webhook_event_url", CodeRequired,
			"webhook_event_url is required while webhook_event_failover_url is set: clear both, or set a primary URL")
		if fo, _ := b.WebhookEventFailoverURL.value(); fo != "" {
			o = fieldError("/webhook_event_failover_url", CodeInvalidValue,
				"webhook_event_failover_url needs webhook_event_url: a failover is only tried when the primary URL fails")
		}
		return "", &Error{Status: statusUnprocessable, Errors: []ErrorObject{o}}
	}
	if b.WebhookTimeoutSecs.Set {
		n, _ := b.WebhookTimeoutSecs.value()
		c.WebhookTimeoutSecs = int(n)
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

// maskedPassword is how answers show the password of a URL's userinfo.
const maskedPassword = "***"

// keepMaskedPassword returns the URL to store for the URL field at pointer,
// given s where stored is: stored when s is stored as answers show it,
// password masked (a client that sends back the connection it read; the
// mask used to become the password), else s. A masked password with
// anything else changed (scheme, user, host, port, path, query) is a 422:
// the mask stands for no password the server could keep.
func keepMaskedPassword(pointer, s, stored string) (string, *Error) {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s, nil
	}
	if p, _ := u.User.Password(); p != maskedPassword {
		return s, nil
	}
	if sameButPassword(u, stored) {
		return stored, nil
	}
	field := pointer[1:]
	return "", &Error{Status: statusUnprocessable, Errors: []ErrorObject{fieldError(pointer, CodeInvalidValue,
		fmt.Sprintf("%s has the password ***, the mask of a stored password, but is not the stored URL otherwise: send the URL with its real password", field))}}
}

// sameButPassword reports whether u and the URL stored are the same but
// for their userinfo's password, which stored has.
func sameButPassword(u *url.URL, stored string) bool {
	s, err := url.Parse(stored)
	if err != nil || s.User == nil {
		return false
	}
	if _, has := s.User.Password(); !has {
		return false
	}
	a, b := *u, *s
	a.User, b.User = url.User(u.User.Username()), url.User(s.User.Username())
	return a.String() == b.String()
}

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
	return head + ":" + maskedPassword + out[len(head):]
}
