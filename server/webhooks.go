package server

import (
	"time"

	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/webhook"
)

// newWebhooks builds the dispatcher of connections' webhook events.
func (n *Node) newWebhooks() error {
	w := n.cfg.Webhooks
	d, err := webhook.New(webhook.Config{
		QueueSize: w.QueueSize, Workers: w.Workers, Attempts: w.Attempts, Backoff: w.Backoff.D(),
		Logger: n.log.With("component", "webhook"),
	}, webhookDir{n.db}, n.obs.reg)
	if err != nil {
		return err
	}
	n.hooks = d
	return nil
}

// webhookDir resolves events to connections for the dispatcher's workers
// (off the SIP path).
type webhookDir struct{ db *store.DB }

func (w webhookDir) ConnectionOfCredential(id string) (string, bool) {
	c, err := w.db.Credential(id)
	return c.ConnectionID, err == nil
}

func (w webhookDir) ConnectionOfUsername(u string) (string, bool) {
	c, err := w.db.CredentialByUsername(u)
	return c.ConnectionID, err == nil
}

func (w webhookDir) Target(id string) (webhook.Target, bool) {
	c, err := w.db.Connection(id)
	// An inactive connection still hears of what its deactivation ended
	// (its calls' call.hangup, its bindings' registration.removed),
	// delivered after the PATCH that deactivated it; nothing else happens
	// on it.
	if err != nil || c.WebhookEventURL == "" {
		return webhook.Target{}, false
	}
	return webhook.Target{URL: c.WebhookEventURL, FailoverURL: c.WebhookEventFailoverURL,
		Timeout: time.Duration(c.WebhookTimeoutSecs) * time.Second, Secret: c.WebhookSecret}, true
}

// registrationEvent is the registrar's OnEvent hook: a successful
// REGISTER that added, refreshed or removed bindings becomes events of
// its credential's connection. Nothing is made while no connection has a
// webhook (an in-memory check).
func (n *Node) registrationEvent(ev registrar.Event) {
	if ev.Status != 200 || !ev.Authenticated || !n.db.AnyWebhooks() {
		return
	}
	payload := map[string]any{"username": ev.AOR, "source": ev.Source, "transport": ev.Transport}
	// The contact and credential of the binding the REGISTER made or
	// refreshed, as registration.removed and .expired give them (they
	// came without).
	if b, ok := lastBound(ev.Bound); ok {
		payload["contact"], payload["credential_id"] = b.Contact, b.CredentialID
	}
	for _, x := range []struct {
		n   int
		typ string
	}{{ev.Added, webhook.RegistrationCreated}, {ev.Refreshed, webhook.RegistrationRefreshed}} {
		if x.n > 0 {
			n.hooks.Enqueue(webhook.Event{Type: x.typ, Usernames: []string{ev.AOR}, Payload: payload})
		}
	}
	// One per binding removed (Contact expires=0, Contact: *) or replaced
	// by a newer device (last device wins), with that binding's own
	// contact and source, as registration.expired gives them.
	for _, b := range ev.Gone {
		n.hooks.Enqueue(webhook.Event{Type: webhook.RegistrationRemoved, Usernames: []string{ev.AOR},
			Payload: map[string]any{"username": ev.AOR, "contact": b.Contact, "source": b.Source, "transport": b.Transport, "credential_id": b.CredentialID}})
	}
}

// lastBound returns the binding of bs updated last: the one a REGISTER
// made or refreshed.
func lastBound(bs []store.Binding) (store.Binding, bool) {
	var last store.Binding
	for _, b := range bs {
		if b.UpdatedAt.After(last.UpdatedAt) {
			last = b
		}
	}
	return last, len(bs) > 0
}

// bindingRemoved is the location table's removal hook: the
// registration.removed event of a binding an operator removed (through
// this node) or whose connection closed (on this node).
func (n *Node) bindingRemoved(b store.Binding) {
	if n.db.AnyWebhooks() {
		n.hooks.Enqueue(removedEvent(b, "", b.CredentialID))
	}
}

// credentialEnded is the lifecycle keeper's hook: the registration.removed
// events of the bindings of a credential deleted, disabled, expired or
// whose connection was deactivated, addressed to its connection as it
// was (a deleted credential can no longer be looked up when the event is
// delivered). In a cluster every node removes them: the one holdsBinding
// names reports each, as for an expiry.
func (n *Node) credentialEnded(c store.Credential, _ lifecycle.Reason, gone []store.Binding) {
	if len(gone) == 0 || !n.db.AnyWebhooks() {
		return
	}
	for _, b := range gone {
		if n.holdsBinding(b) {
			n.hooks.Enqueue(removedEvent(b, c.ConnectionID, ""))
		}
	}
}

func removedEvent(b store.Binding, connectionID, credentialID string) webhook.Event {
	ev := webhook.Event{Type: webhook.RegistrationRemoved,
		Payload: map[string]any{"username": b.AOR, "contact": b.Contact, "source": b.Source, "transport": b.Transport, "credential_id": b.CredentialID}}
	if connectionID != "" {
		ev.ConnectionIDs = []string{connectionID}
	} else {
		ev.CredentialIDs = []string{credentialID}
	}
	return ev
}

// bindingExpired is the location table's expiry hook: metrics and the
// registration.expired event, from one node of a cluster (holdsBinding).
// Every node removes an expired binding from its copy of the table, by its
// own sweep or by applying another node's; the hook runs on both paths.
func (n *Node) bindingExpired(b store.Binding) {
	if !n.holdsBinding(b) {
		return
	}
	n.obs.bindingExpired(b)
	if !n.db.AnyWebhooks() {
		return
	}
	n.hooks.Enqueue(webhook.Event{Type: webhook.RegistrationExpired, CredentialIDs: []string{b.CredentialID},
		Payload: map[string]any{"username": b.AOR, "contact": b.Contact, "source": b.Source, "transport": b.Transport, "credential_id": b.CredentialID}})
}

// callEvent is the proxy's OnCall hook.
func (n *Node) callEvent(ev proxy.CallEvent) {
	if !n.db.AnyWebhooks() {
		return
	}
	typ := webhook.CallInitiated
	switch ev.Type {
	case proxy.CallAnswered:
		typ = webhook.CallAnswered
	case proxy.CallHangup:
		typ = webhook.CallHangup
	}
	payload := map[string]any{"call_id": ev.CallID, "from": ev.From, "to": ev.To}
	if ev.Type == proxy.CallHangup {
		payload["hangup_cause"] = ev.Cause
		payload["sip_hangup_cause"] = ev.Status
		payload["duration_secs"] = int64(ev.Duration.Round(time.Second) / time.Second)
	}
	n.hooks.Enqueue(webhook.Event{Type: typ, Payload: payload,
		ConnectionIDs: []string{ev.CallerConnection, ev.CalleeConnection},
		CredentialIDs: nonEmpty(ev.CallerCredential, ev.CalleeCredential)})
}

func nonEmpty(ss ...string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
