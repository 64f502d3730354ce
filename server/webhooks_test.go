package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/webhook"
)

// hookReceiver is a real HTTP server on loopback that keeps the events
// it gets whose signature verifies under secret, and counts the others.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	events []hookEvent
	bad    int
}

type hookEvent struct {
	Type         string         `json:"event_type"`
	ConnectionID string         `json:"connection_id"`
	Payload      map[string]any `json:"payload"`
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		var v struct{ Data hookEvent }
		if !webhook.Verify(h.secret, r.Header.Get("Sipwarden-Signature"), b, time.Now(), time.Minute) || json.Unmarshal(b, &v) != nil {
			h.bad++
			w.WriteHeader(400)
			return
		}
		h.events = append(h.events, v.Data)
		w.WriteHeader(204)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// hookedConn is a connection as created, with the webhook secret shown
// once.
type hookedConn struct {
	ID     string `json:"id"`
	Secret string `json:"webhook_secret"`
}

// hookedConnection creates the connection "hooked", whose events go to rcv.
func hookedConnection(t *testing.T, ts *testServer, rcv *hookReceiver) hookedConn {
	t.Helper()
	var conn hookedConn
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "hooked", "webhook_event_url": rcv.srv.URL + "/sip"}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	return conn
}

func (h *hookReceiver) find(typ string) (hookEvent, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.Type == typ {
			return e, true
		}
	}
	return hookEvent{}, false
}

func (h *hookReceiver) waitFor(t *testing.T, typ string) hookEvent {
	t.Helper()
	var e hookEvent
	waitFor(t, "webhook event "+typ, 10*time.Second, func() bool {
		var ok bool
		e, ok = h.find(typ)
		return ok
	})
	return e
}

// TestWebhooksOfRegistrationsAndCalls (issue 16): a connection's webhook
// receiver gets the events of a real registration and call, each with a
// valid signature; with the receiver down the SIP traffic goes on and the
// deliveries retry, fail over and are listed as failed.
func TestWebhooksOfRegistrationsAndCalls(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Registrar.MinExpires = 1
	cfg.Webhooks.Attempts = 2
	cfg.Webhooks.Backoff = config.Duration(10 * time.Millisecond)
	ts := startServer(t, cfg)
	rcv := newHookReceiver(t)
	var conn struct {
		ID     string `json:"id"`
		Secret string `json:"webhook_secret"`
	}
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "hooked", "webhook_event_url": rcv.srv.URL + "/sip",
		"webhook_timeout_secs": 2}, &conn); code != 201 || !strings.HasPrefix(conn.Secret, "whsec_") {
		t.Fatalf("create connection: %d %+v", code, conn)
	}
	rcv.mu.Lock()
	rcv.secret = conn.Secret
	rcv.mu.Unlock()
	aliceCred := ts.createCredential(t, "alice", alicePass, map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "bob", bobPass, nil)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	alice.register(t, alicePass, "")
	reg := rcv.waitFor(t, "registration.created")
	// The contact and the credential, as registration.removed gives them
	// (created and refreshed came without).
	if reg.ConnectionID != conn.ID || reg.Payload["username"] != "alice" || reg.Payload["credential_id"] != aliceCred.ID ||
		!strings.HasPrefix(fmt.Sprint(reg.Payload["contact"]), "sip:alice@") {
		t.Errorf("registration.created %+v", reg)
	}
	alice.register(t, alicePass, "")
	if ref := rcv.waitFor(t, "registration.refreshed"); !strings.HasPrefix(fmt.Sprint(ref.Payload["contact"]), "sip:alice@") {
		t.Errorf("registration.refreshed %+v", ref)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sess, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v (statuses %v)", err, statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")
	rcv.waitFor(t, "call.initiated")
	rcv.waitFor(t, "call.answered")
	if h := rcv.waitFor(t, "call.hangup"); h.Payload["hangup_cause"] != "normal_clearing" || h.Payload["call_id"] == "" {
		t.Errorf("call.hangup %+v", h)
	}
	// A failed call: hung up with the callee's status.
	bob.mode.Store("busy")
	if _, _, err := alice.call(ctx, t, "bob", "alice", alicePass); dialogStatus(err) != 486 {
		t.Fatalf("busy call: %v", err)
	}
	waitFor(t, "the busy call's hang-up", 10*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, e := range rcv.events {
			if e.Type == "call.hangup" && e.Payload["hangup_cause"] == "user_busy" {
				return true
			}
		}
		return false
	})
	// A short registration expires.
	short := newPhone(t, ts, "udp")
	wantStatus(t, short.register(t, regOpts{user: "alice", pass: alicePass, expires: "1", contactUser: "alice-short"}), 200)
	rcv.waitFor(t, "registration.expired")
	rcv.mu.Lock()
	if rcv.bad != 0 {
		t.Errorf("%d deliveries did not verify", rcv.bad)
	}
	for _, e := range rcv.events {
		if e.ConnectionID != conn.ID {
			t.Errorf("event %s for connection %s, want only %s's", e.Type, e.ConnectionID, conn.ID)
		}
	}
	rcv.mu.Unlock()

	// The receiver down, its failover too: SIP goes on, deliveries fail.
	dead := freeUDP(t, "127.0.0.1") // no TCP listener there either
	if code := ts.api(t, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"webhook_event_url": "http://" + dead + "/a",
		"webhook_event_failover_url": "http://" + dead + "/b"}, nil); code != 200 {
		t.Fatalf("PATCH: %d", code)
	}
	bob.mode.Store("answer")
	start := time.Now()
	sess, statuses, err = alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call with the receiver down: %v (statuses %v)", err, statuses)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("call set-up took %v with the receiver down", d)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")
	var dels []webhook.Delivery
	waitFor(t, "failed deliveries on both URLs", 10*time.Second, func() bool {
		if code := ts.api(t, "GET", "/v1/connections/"+conn.ID+"/webhook_deliveries", nil, &dels); code != 200 {
			t.Fatalf("GET webhook_deliveries: %d", code)
		}
		a, b := 0, 0
		for _, d := range dels {
			if !d.OK && strings.HasSuffix(d.URL, "/a") {
				a++
			}
			if !d.OK && strings.HasSuffix(d.URL, "/b") {
				b++
			}
		}
		return a >= 2 && b >= 2
	})
	waitFor(t, "the failure counted", 10*time.Second, func() bool {
		return scrape(t, ts.metricsURL())["sipwarden_webhook_failed_total"] >= 1
	})
}

// TestWebhooksOfRemovals: a binding removed otherwise than by its device
// (an operator's DELETE, its credential disabled or deleted, its
// connection deactivated) makes a
// registration.removed event for the credential's connection, with the
// binding's own contact; a deleted credential's too, although it can no
// longer be looked up when the event is delivered.
func TestWebhooksOfRemovals(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	rcv := newHookReceiver(t)
	conn := hookedConnection(t, ts, rcv)
	rcv.mu.Lock()
	rcv.secret = conn.Secret
	rcv.mu.Unlock()
	cred := ts.createCredential(t, "alice", alicePass, map[string]any{"connection_id": conn.ID})
	removed := func() []hookEvent {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		var out []hookEvent
		for _, e := range rcv.events {
			if e.Type == "registration.removed" {
				out = append(out, e)
			}
		}
		return out
	}
	register := func(contactUser string) {
		t.Helper()
		wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "alice", pass: alicePass, contactUser: contactUser}), 200)
	}
	for i, step := range []struct {
		name   string
		remove func()
	}{
		{"DELETE /v1/registrations", func() {
			rs := ts.registrations(t, "alice")
			if len(rs) != 1 {
				t.Fatalf("registrations: %+v", rs)
			}
			if code := ts.api(t, "DELETE", "/v1/registrations/"+rs[0].ID, nil, nil); code != 204 {
				t.Fatalf("DELETE registration: %d", code)
			}
		}},
		{"credential disabled", func() {
			if code := ts.api(t, "PATCH", "/v1/credentials/"+cred.ID, map[string]any{"enabled": false}, nil); code != 200 {
				t.Fatalf("disable: %d", code)
			}
			if code := ts.api(t, "PATCH", "/v1/credentials/"+cred.ID, map[string]any{"enabled": true}, nil); code != 200 {
				t.Fatalf("enable: %d", code)
			}
		}},
		// The only connection with a webhook, deactivated: it still
		// hears of the bindings its deactivation removed.
		{"connection deactivated", func() {
			if code := ts.api(t, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"active": false}, nil); code != 200 {
				t.Fatalf("deactivate: %d", code)
			}
			if code := ts.api(t, "PATCH", "/v1/connections/"+conn.ID, map[string]any{"active": true}, nil); code != 200 {
				t.Fatalf("activate: %d", code)
			}
		}},
		{"credential deleted", func() {
			if code := ts.api(t, "DELETE", "/v1/credentials/"+cred.ID, nil, nil); code != 204 {
				t.Fatalf("delete credential: %d", code)
			}
		}},
	} {
		contactUser := fmt.Sprintf("alice-dev%d", i)
		register(contactUser)
		step.remove()
		waitFor(t, "registration.removed after "+step.name, 10*time.Second, func() bool { return len(removed()) == i+1 })
		e := removed()[i]
		if e.ConnectionID != conn.ID || e.Payload["username"] != "alice" || !strings.Contains(fmt.Sprint(e.Payload["contact"]), contactUser) {
			t.Errorf("%s: registration.removed %+v, want alice's %s binding for connection %s", step.name, e, contactUser, conn.ID)
		}
	}
}

// TestWebhookSecretRotated: POST .../actions/rotate_webhook_secret answers
// a new secret once, and the next event is signed with it, not the old
// one; a lost or leaked secret used to mean a new connection.
func TestWebhookSecretRotated(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	rcv := newHookReceiver(t)
	conn := hookedConnection(t, ts, rcv)
	old := conn.Secret
	ts.createCredential(t, "alice", alicePass, map[string]any{"connection_id": conn.ID})
	if code := ts.api(t, "POST", "/v1/connections/"+conn.ID+"/actions/rotate_webhook_secret", nil, &conn); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	if !strings.HasPrefix(conn.Secret, "whsec_") || conn.Secret == old {
		t.Fatalf("rotated secret %q (old %q)", conn.Secret, old)
	}
	var got map[string]any
	if code := ts.api(t, "GET", "/v1/connections/"+conn.ID, nil, &got); code != 200 || got["webhook_secret"] != nil {
		t.Fatalf("GET connection: %d, webhook_secret %v: shown again", code, got["webhook_secret"])
	}
	// The receiver accepts only the old secret: the event is refused.
	rcv.mu.Lock()
	rcv.secret = old
	rcv.mu.Unlock()
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "alice", pass: alicePass}), 200)
	waitFor(t, "an event refused under the old secret", 10*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.bad > 0
	})
	// Under the new one, the next event verifies.
	rcv.mu.Lock()
	rcv.secret = conn.Secret
	rcv.mu.Unlock()
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "alice", pass: alicePass, contactUser: "second"}), 200)
	rcv.waitFor(t, "registration.created")
}
