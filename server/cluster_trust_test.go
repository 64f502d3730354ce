package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/config"
)

// TestClusterTrustsNodesOverUDPOnly: a node relays a call to another over
// UDP only, so a node's address is trusted over UDP only. Over TCP (as
// over TLS and WebSocket) a request from another node's IP comes from a
// phone or a browser sharing that IP (a reverse proxy on a node's host
// connects from 127.0.0.1, the IP of every node's loopback listener): it
// is challenged like any other, not relayed with whatever From it names.
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
	// Over UDP from B's address: trusted (B relaying a call).
	fromB := newRawUA(t, "udp", ips[1], a.Addr("udp"))
	waitFor(t, "A trusting B's address over UDP", 2*time.Second, func() bool {
		st, _ := fromB.exchange(fromB.inviteMsg("relay", randHex(8), 1, ""), 500*time.Millisecond)
		return !strings.HasPrefix(st, "SIP/2.0 407")
	})
	_ = bob.recv(3 * time.Second) // the relayed INVITE
	// Over TCP from B's address: challenged.
	overTCP := newRawUA(t, "tcp", ips[1], a.Addr("tcp"))
	if st, _ := overTCP.exchange(overTCP.inviteMsg("mallory", randHex(8), 1, ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 407") {
		t.Fatalf("INVITE without credentials over TCP from B's address to A: got %q, want 407", st)
	}
}
