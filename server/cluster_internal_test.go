package server

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
)

// In a cluster the proxy sees UDP bindings from anywhere, connection
// bindings of its own listeners, and for another live node's connections
// one binding relaying the request to that node.
func TestOwnFlows(t *testing.T) {
	o := alicesFlows()
	var got []string
	for _, b := range o.Lookup("alice") {
		// A relay's mark (TestOwnFlowsRelayed checks it) left out.
		contact, _, _ := strings.Cut(b.Contact, ";sw-relayed=")
		if contact != b.Contact {
			contact += ";sw-relayed"
		}
		got = append(got, b.ID+" "+contact+" "+b.Source)
	}
	want := []string{
		"1 sip:alice@192.0.2.1:5000 192.0.2.1:5000",
		"2 sip:alice@example.com;sw-relayed 127.0.0.2:5070", // node 2's TCP flow, through node 2
		"3 sip:alice@192.0.2.1:5003;transport=tcp 192.0.2.1:5003",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q (the expired binding left out)", got, want)
	}
}

// alicesFlows is node 1's view (127.0.0.1:5060) of alice's bindings: over
// UDP through node 2, over TCP on node 2 (live, advertised at
// 127.0.0.2:5070), over TCP on node 1, an expired one.
func alicesFlows() ownFlows {
	loc := registrar.NewLocation(nil, nil, nil)
	exp := time.Now().Add(time.Hour)
	loc.Merge("alice", []store.Binding{
		{ID: "1", AOR: "alice", Transport: "udp", Contact: "sip:alice@192.0.2.1:5000", Source: "192.0.2.1:5000", LocalAddr: "127.0.0.2:5060", Expires: exp},
		{ID: "2", AOR: "alice", Transport: "tcp", Contact: "sip:alice@192.0.2.1:5002;transport=tcp", Source: "192.0.2.1:5002", LocalAddr: "127.0.0.2:5060", Expires: exp},
		{ID: "3", AOR: "alice", Transport: "tcp", Contact: "sip:alice@192.0.2.1:5003;transport=tcp", Source: "192.0.2.1:5003", LocalAddr: "127.0.0.1:5060", Expires: exp},
		{ID: "4", AOR: "alice", Transport: "udp", Contact: "sip:alice@192.0.2.1:5004", Source: "192.0.2.1:5004", LocalAddr: "127.0.0.1:5060", Expires: exp.Add(-2 * time.Hour)},
	}, nil)
	peers := map[string]string{"127.0.0.2:5060": "127.0.0.2:5070"} // live nodes
	return ownFlows{
		loc: loc, own: map[string]bool{"127.0.0.1:5060": true}, domain: "example.com",
		peer:   func(a string) (string, bool) { adv, ok := peers[a]; return adv, ok },
		member: func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.2") },
		marks:  newRelayMarks(testRelayKey),
	}
}

// testRelayKey is the nonce key of the relay marks in these tests.
var testRelayKey = []byte("0123456789abcdef0123456789abcdef")

// A request another node relayed (marked, from a member's address, over
// UDP, to the cluster's domain) goes down this node's own connections
// only: never relayed again, never to a UDP device the relaying node rang
// itself. A mark from anyone else, over another transport, or not signed
// with the cluster's key for this call to this AOR within the last minute
// changes nothing.
func TestOwnFlowsRelayed(t *testing.T) {
	o := alicesFlows()
	call := relayed{aor: "alice", host: "example.com", callID: "c1", fromTag: "t1"}
	with := func(r relayed, change func(*relayed)) relayed { change(&r); return r }
	mark := newRelayMarks(testRelayKey).sign(call)
	old := newRelayMarks(testRelayKey)
	old.now = func() time.Time { return time.Now().Add(-2 * relayMarkWindow) }
	ids := func(bs []store.Binding) (out []string) {
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	all := []string{"1", "2", "3"}
	for _, c := range []struct {
		name, ruri, source, transport, callID string
		want                                  []string
	}{
		{"relayed by node 2", "sip:alice@example.com;sw-relayed=" + mark, "127.0.0.2:40000", "UDP", "c1", []string{"3"}},
		{"marked by a stranger", "sip:alice@example.com;sw-relayed=" + mark, "192.0.2.7:5060", "UDP", "c1", all},
		{"from node 2 over TCP", "sip:alice@example.com;sw-relayed=" + mark, "127.0.0.2:40000", "TCP", "c1", all},
		{"from node 2 unmarked", "sip:alice@example.com", "127.0.0.2:40000", "UDP", "c1", all},
		{"from node 2, an empty mark", "sip:alice@example.com;sw-relayed", "127.0.0.2:40000", "UDP", "c1", all},
		{"from node 2, to another domain", "sip:alice@other.example;sw-relayed=" + mark, "127.0.0.2:40000", "UDP", "c1", all},
		{"from node 2, another call's mark", "sip:alice@example.com;sw-relayed=" + mark, "127.0.0.2:40000", "UDP", "c2", all},
		{"from node 2, another AOR's mark", "sip:alice@example.com;sw-relayed=" + newRelayMarks(testRelayKey).sign(with(call, func(r *relayed) { r.aor = "bob" })), "127.0.0.2:40000", "UDP", "c1", all},
		{"from node 2, another key's mark", "sip:alice@example.com;sw-relayed=" + newRelayMarks([]byte("another key, 32 bytes long......")).sign(call), "127.0.0.2:40000", "UDP", "c1", all},
		{"from node 2, no key's mark", "sip:alice@example.com;sw-relayed=" + newRelayMarks(nil).sign(call), "127.0.0.2:40000", "UDP", "c1", all},
		{"from node 2, a stale mark", "sip:alice@example.com;sw-relayed=" + old.sign(call), "127.0.0.2:40000", "UDP", "c1", all},
	} {
		var ru sip.Uri
		if err := sip.ParseUri(c.ruri, &ru); err != nil {
			t.Fatal(err)
		}
		req := sip.NewRequest(sip.INVITE, ru)
		req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "carol", Host: "example.com"}, Params: sip.HeaderParams{{K: "tag", V: "t1"}}})
		cid := sip.CallIDHeader(c.callID)
		req.AppendHeader(&cid)
		req.SetSource(c.source)
		req.SetTransport(c.transport)
		if got := ids(o.LookupFor(req, "alice")); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// An AOR with no binding this node reaches is reached through the node
// holding its connection (once per node), not through a dead node.
func TestOwnFlowsThroughPeer(t *testing.T) {
	loc := registrar.NewLocation(nil, nil, nil)
	exp := time.Now().Add(time.Hour)
	loc.Merge("bob", []store.Binding{
		{ID: "1", AOR: "bob", Transport: "tcp", Contact: "sip:bob@192.0.2.1:5555;transport=tcp", Source: "192.0.2.1:5555", LocalAddr: "127.0.0.2:5060", Expires: exp},
		{ID: "2", AOR: "bob", Transport: "tls", Source: "192.0.2.1:5556", LocalAddr: "127.0.0.2:5061", Expires: exp},
		{ID: "3", AOR: "bob", Transport: "tcp", Source: "192.0.2.1:5557", LocalAddr: "127.0.0.9:5060", Expires: exp}, // a dead node
	}, nil)
	peers := map[string]string{"127.0.0.2:5060": "127.0.0.2:5070", "127.0.0.2:5061": "127.0.0.2:5070"}
	o := ownFlows{loc: loc, own: map[string]bool{"127.0.0.1:5060": true}, domain: "example.com",
		peer: func(a string) (string, bool) { adv, ok := peers[a]; return adv, ok }, marks: newRelayMarks(testRelayKey)}
	got := o.Lookup("bob")
	if len(got) != 1 {
		t.Fatalf("got %+v, want one hop to 127.0.0.2:5070", got)
	}
	mark, signed := strings.CutPrefix(got[0].Contact, "sip:bob@example.com;sw-relayed=")
	if b := got[0]; b.Source != "127.0.0.2:5070" || b.Transport != "udp" || !signed || !o.marks.valid(relayed{aor: "bob", host: "example.com"}, mark) {
		t.Errorf("got %+v, want sip:bob@example.com;sw-relayed=<bob's mark> over udp to 127.0.0.2:5070", b)
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
