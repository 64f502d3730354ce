package server

import (
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
)

// In a cluster the proxy sees UDP bindings from anywhere and connection
// bindings only of its own listeners.
func TestOwnFlows(t *testing.T) {
	loc := registrar.NewLocation(nil, nil, nil)
	exp := time.Now().Add(time.Hour)
	loc.Apply("alice", []store.Binding{
		{ID: "1", AOR: "alice", Transport: "udp", LocalAddr: "127.0.0.2:5060", Expires: exp},
		{ID: "2", AOR: "alice", Transport: "tcp", LocalAddr: "127.0.0.2:5060", Expires: exp},
		{ID: "3", AOR: "alice", Transport: "tcp", LocalAddr: "127.0.0.1:5060", Expires: exp},
		{ID: "4", AOR: "alice", Transport: "udp", LocalAddr: "127.0.0.1:5060", Expires: exp.Add(-2 * time.Hour)},
	})
	o := ownFlows{loc: loc, own: map[string]bool{"127.0.0.1:5060": true}}
	var got []string
	for _, b := range o.Lookup("alice") {
		got = append(got, b.ID)
	}
	if want := []string{"1", "3"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v (node 2's TCP flow and the expired binding left out)", got, want)
	}
}
