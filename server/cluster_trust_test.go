package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/config"
)

// TestClusterTrustsNodesOverUDPOnly: a node relays a call to another over
// UDP only, signed with the cluster's key, so only such a relay from a
// node's address is trusted. Over TCP (as over TLS and WebSocket) a
// request from another node's IP comes from a phone or a browser sharing
// that IP (a reverse proxy on a node's host connects from 127.0.0.1, the
// IP of every node's loopback listener); over UDP a source address is
// forged blind at no cost. Either is challenged like any other request,
// not relayed with whatever From it names.
func TestClusterTrustsNodesOverUDPOnly(t *testing.T) {
	r := redistest.Start(t)
	ips := []string{"127.0.0.102", "127.0.0.103"}
	nodes := startNodesOn(t, r, ips, func(c *config.Config, ip string) {
		c.HTTP.Listen = ip + ":0"
	})
	a := nodes[0]
	a.createCredential(t, "bob", pw, nil)
	bob := newRawUA(t, "tcp", "127.0.0.104", a.Addr("tcp"))
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob over TCP on A: %q", st)
	}
	// Over UDP from B's address, signed: trusted (B relaying a call).
	fromB := newRawUA(t, "udp", ips[1], a.Addr("udp"))
	// exchange waits for a final answer, which bob (who never answers)
	// does not give: what shows the trust is the INVITE reaching him.
	waitFor(t, "B's signed relay reaching bob through A", 3*time.Second, func() bool {
		if err := fromB.send(signedRelay(t, fromB, "relay", "bob", clusterNonceKey, nil)); err != nil {
			t.Fatal(err)
		}
		inv := bob.recv(300 * time.Millisecond)
		return strings.HasPrefix(inv, "INVITE sip:bob") && strings.Contains(inv, "From: <sip:relay@")
	})
	// Another call's mark: the same INVITE but for its Call-ID.
	otherCall := func(msg string) string { return strings.Replace(msg, "Call-ID: ", "Call-ID: other-", 1) }
	for _, c := range []struct {
		name string
		ua   *rawUA
		msg  func(*rawUA) string
	}{
		{"unsigned, over UDP from B's address", fromB, func(u *rawUA) string { return u.inviteMsg("mallory", randHex(8), 1, "") }},
		{"a mark for another AOR", fromB, func(u *rawUA) string { return signedRelay(t, u, "mallory", "alice", clusterNonceKey, nil) }},
		{"a mark under another key", fromB, func(u *rawUA) string { return signedRelay(t, u, "mallory", "bob", make([]byte, 32), nil) }},
		{"another call's mark", fromB, func(u *rawUA) string { return signedRelay(t, u, "mallory", "bob", clusterNonceKey, otherCall) }},
		{"signed, from no node's address", newRawUA(t, "udp", "127.0.0.105", a.Addr("udp")), func(u *rawUA) string {
			return signedRelay(t, u, "mallory", "bob", clusterNonceKey, nil)
		}},
		{"signed, over TCP from B's address", newRawUA(t, "tcp", ips[1], a.Addr("tcp")), func(u *rawUA) string {
			return signedRelay(t, u, "mallory", "bob", clusterNonceKey, nil)
		}},
	} {
		if st, _ := c.ua.exchange(c.msg(c.ua), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 407") {
			t.Errorf("%s: INVITE without credentials got %q, want 407", c.name, st)
		}
	}
}
