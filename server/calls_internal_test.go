package server

import (
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
)

// A call between devices on two cluster nodes is a dialog on both: listed
// once, as the node that authenticated the caller relays it, with what
// the other node knows filled in and the earlier start.
func TestMergeCalls(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	got := mergeCalls([]api.Call{
		{ID: "x;1;2", Node: "node-a", CalleeCredentialID: "bob", StartedAt: t0},
		{ID: "y;1;2", Node: "node-a", StartedAt: t0},
		{ID: "x;1;2", Node: "node-b", CallerCredentialID: "alice", StartedAt: t0.Add(time.Millisecond)},
	})
	if len(got) != 2 {
		t.Fatalf("got %d calls, want 2: %+v", len(got), got)
	}
	x := got[0]
	if x.ID != "x;1;2" || x.Node != "node-b" || x.CallerCredentialID != "alice" || x.CalleeCredentialID != "bob" || !x.StartedAt.Equal(t0) {
		t.Errorf("merged call: %+v, want node-b's with bob as callee and the earlier start", x)
	}
	if got[1].ID != "y;1;2" {
		t.Errorf("the other call: %+v", got[1])
	}
}
