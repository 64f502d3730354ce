package server_test

import (
	"net/url"
	"testing"
	"time"
)

// TestHangupThroughAPI: DELETE /v1/calls/{id} ends a live call, the proxy
// sending BYE to both sides; the same ID again is 404.
func TestHangupThroughAPI(t *testing.T) {
	ts, _, alice, bob, ctx := callPair(t, testConfig(t, t.TempDir()), "tcp", "udp", "answer")
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	_ = sess.Ack(ctx)
	recv(t, bob.acks, "ACK at bob")
	calls := ts.calls(t)
	if len(calls) != 1 {
		t.Fatalf("%d calls listed, want 1", len(calls))
	}
	id, _ := calls[0]["id"].(string)
	path := "/v1/calls/" + url.PathEscape(id)
	if code := ts.api(t, "DELETE", path, nil, nil); code != 204 {
		t.Fatalf("DELETE %s: %d, want 204", path, code)
	}
	recv(t, bob.byes, "BYE at bob")
	recv(t, alice.byes, "BYE at alice")
	waitFor(t, "no calls listed", 3*time.Second, func() bool { return len(ts.calls(t)) == 0 })
	if code := ts.api(t, "DELETE", path, nil, nil); code != 404 {
		t.Errorf("DELETE %s again: %d, want 404", path, code)
	}
}
