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
	peers := map[string]string{"127.0.0.2:5060": "127.0.0.2:5070"} // live nodes
	peer := func(a string) (string, bool) { adv, ok := peers[a]; return adv, ok }
	o := ownFlows{loc: loc, own: map[string]bool{"127.0.0.1:5060": true}, peer: peer, domain: "example.com"}
	var got []string
	for _, b := range o.Lookup("alice") {
		got = append(got, b.ID)
	}
	if want := []string{"1", "3"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v (node 2's TCP flow and the expired binding left out)", got, want)
	}
}

// An AOR with no binding this node reaches is reached through the node
// holding its connection (once per node), not through a dead node.
func TestOwnFlowsThroughPeer(t *testing.T) {
	loc := registrar.NewLocation(nil, nil, nil)
	exp := time.Now().Add(time.Hour)
	loc.Apply("bob", []store.Binding{
		{ID: "1", AOR: "bob", Transport: "tcp", Contact: "sip:bob@192.0.2.1:5555;transport=tcp", Source: "192.0.2.1:5555", LocalAddr: "127.0.0.2:5060", Expires: exp},
		{ID: "2", AOR: "bob", Transport: "tls", Source: "192.0.2.1:5556", LocalAddr: "127.0.0.2:5061", Expires: exp},
		{ID: "3", AOR: "bob", Transport: "tcp", Source: "192.0.2.1:5557", LocalAddr: "127.0.0.9:5060", Expires: exp}, // a dead node
	})
	peers := map[string]string{"127.0.0.2:5060": "127.0.0.2:5070", "127.0.0.2:5061": "127.0.0.2:5070"}
	o := ownFlows{loc: loc, own: map[string]bool{"127.0.0.1:5060": true}, domain: "example.com",
		peer: func(a string) (string, bool) { adv, ok := peers[a]; return adv, ok }}
	got := o.Lookup("bob")
	if len(got) != 1 {
		t.Fatalf("got %+v, want one hop to 127.0.0.2:5070", got)
	}
	if b := got[0]; b.Source != "127.0.0.2:5070" || b.Transport != "udp" || b.Contact != "sip:bob@example.com" {
		t.Errorf("got %+v, want sip:bob@example.com over udp to 127.0.0.2:5070", b)
	}
	if bs := loc.Lookup("bob"); bs[0].Source != "192.0.2.1:5555" {
		t.Errorf("the table's binding was modified: %+v", bs[0])
	}
}

// Nodes of a cluster listening on 0.0.0.0 name their bindings' listener
// by their advertised host, so that the nodes' names differ.
func TestNodeAddr(t *testing.T) {
	for _, c := range []struct{ listen, host, want string }{
		{"0.0.0.0:5060", "192.0.2.10", "192.0.2.10:5060"},
		{"[::]:5061", "192.0.2.10", "192.0.2.10:5061"},
		{"0.0.0.0:7443", "2001:db8::1", "[2001:db8::1]:7443"},
		{"127.0.0.2:5060", "192.0.2.10", "127.0.0.2:5060"},
		{"192.0.2.11:5060", "edge-1.example.net", "192.0.2.11:5060"},
		{"0.0.0.0:5060", "edge-1.example.net", "edge-1.example.net:5060"},
	} {
		if got := nodeAddr(c.listen, c.host); got != c.want {
			t.Errorf("nodeAddr(%q, %q) = %q, want %q", c.listen, c.host, got, c.want)
		}
	}
}
