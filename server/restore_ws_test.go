package server_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/server/servertest"
	"github.com/sipwarden/sipwarden/store"
)

// TestWebSocketBindingsNotRestored: a binding made over ws or wss names
// a browser reachable only over the WebSocket it registered over, which
// did not outlive the process that held it. Found in the store at start
// (a kill, or a shutdown that closed the store before the WebSockets),
// it is dropped and cleared, while the same AOR's other bindings stay.
func TestWebSocketBindingsNotRestored(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "sipwarden.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b := func(id, aor, transport, contact string) store.Binding {
		return store.Binding{ID: id, AOR: aor, Contact: contact, Source: "127.0.0.24:40000", Transport: transport,
			CallID: id, CSeq: 1, Expires: now.Add(time.Hour), RegisteredAt: now, UpdatedAt: now}
	}
	db.SaveBindings("alice", []store.Binding{
		b("a1", "alice", "udp", "sip:alice@127.0.0.24:40000"),
		b("a2", "alice", "ws", "sip:x@abc.invalid;transport=ws"),
	})
	db.SaveBindings("bob", []store.Binding{b("b1", "bob", "wss", "sip:y@def.invalid;transport=ws")})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := servertest.Config(t, dir)
	s := servertest.Start(t, cfg)
	var regs []struct {
		Username  string `json:"username"`
		Transport string `json:"transport"`
	}
	if code := s.API(t, "GET", "/v1/registrations", nil, &regs); code != 200 {
		t.Fatalf("GET /v1/registrations: %d", code)
	}
	if len(regs) != 1 || regs[0].Username != "alice" || regs[0].Transport != "udp" {
		t.Fatalf("registrations after start: %+v, want alice's udp binding only", regs)
	}
	s.Stop()

	db, err = store.Open(filepath.Join(dir, "sipwarden.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	left, err := db.LoadBindings(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != "a1" {
		t.Errorf("stored bindings after the start: %+v, want a1 only", left)
	}
}
