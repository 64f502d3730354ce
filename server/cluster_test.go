package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/config"
)

// startCluster starts n nodes sharing the Redis r, each with its own data
// dir and loopback ports; edit, when not nil, adjusts every node's
// configuration.
func startCluster(t *testing.T, r *redistest.Server, n int, edit func(*config.Config)) []*testServer {
	t.Helper()
	nodes := make([]*testServer, n)
	for i := range nodes {
		cfg := testConfig(t, t.TempDir())
		cfg.Cluster = config.Cluster{RedisURL: r.URL(), NodeName: fmt.Sprintf("node%d", i+1),
			Advertise: "127.0.0.1:1", Timeout: config.Duration(500 * time.Millisecond)}
		if edit != nil {
			edit(&cfg)
		}
		nodes[i] = startServer(t, cfg)
	}
	return nodes
}

// TestClusterReplayRefusedOnAnotherNode: a digest answer accepted by node
// 1 and replayed to node 2 is refused (the nonce counts live in Redis),
// while a fresh answer to node 1's nonce through node 2 is accepted (the
// nonce key and epoch are shared).
func TestClusterReplayRefusedOnAnotherNode(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, nil)
	for _, n := range nodes {
		n.createCredential(t, "alice", pw, nil) // not shared yet: on each node
	}
	u1 := newRawUA(t, "udp", "127.0.0.1", nodes[0].Addr("udp"))
	u2 := newRawUA(t, "udp", "127.0.0.1", nodes[1].Addr("udp"))
	nonce := u1.nonce()
	answer := digestAuth("alice", pw, nonce)
	callID := randHex(8)
	if st, _ := u1.exchange(u1.registerMsg("alice", callID, 2, answer, ""), 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("answer to node 1: got %q, want 200", st)
	}
	st, raw := u2.exchange(u2.registerMsg("alice", callID, 3, answer, ""), 2*time.Second)
	if st != "SIP/2.0 401 Unauthorized" || !strings.Contains(strings.ToLower(raw), "stale=true") {
		t.Fatalf("replay to node 2: got %q, want 401 with stale=true", st)
	}
	if st, _ := u1.exchange(u1.registerMsg("alice", callID, 4, answer, ""), 2*time.Second); st != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("replay to node 1: got %q, want 401", st)
	}
	// Node 1's nonce answered afresh (nc 1 of another nonce would do too)
	// is accepted by node 2: same key, same epoch.
	nonce = u1.nonce()
	if st, _ := u2.exchange(u2.registerMsg("alice", randHex(8), 2, digestAuth("alice", pw, nonce), ""), 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("node 1's nonce answered to node 2: got %q, want 200", st)
	}
}

// TestClusterBanShared: failures through two nodes add up; a scanner
// banned through node 1 is refused by node 2; a ban lifted through node 2
// is lifted on node 1.
func TestClusterBanShared(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, func(c *config.Config) { c.Guard.MaxFailures = 4 })
	for _, n := range nodes {
		n.createCredential(t, "alice", pw, nil)
	}
	const scanner = "127.0.0.9"
	fail := func(n *testServer, i int) {
		t.Helper()
		u := newRawUA(t, "udp", scanner, n.Addr("udp"))
		user := fmt.Sprintf("v%d", i)
		if st, _ := u.exchange(u.registerMsg(user, randHex(8), 2, digestAuth(user, "wrong-password-x", u.nonce()), ""), 2*time.Second); st != "SIP/2.0 403 Forbidden" {
			t.Fatalf("failure %d: got %q, want 403", i, st)
		}
	}
	// Three failures: two on node 1, one on node 2. No node alone reached 4.
	fail(nodes[0], 0)
	fail(nodes[0], 1)
	fail(nodes[1], 2)
	if bs := nodes[1].bans(t); len(bs) != 0 {
		t.Fatalf("banned after 3 failures: %+v", bs)
	}
	fail(nodes[1], 3) // the fourth, across the cluster
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("ban listed on node %d", i+1), 3*time.Second, func() bool {
			bs := n.bans(t)
			return len(bs) == 1 && bs[0].IP == scanner
		})
		u := newRawUA(t, "udp", scanner, n.Addr("udp"))
		if st := u.register("alice", pw); st != "SIP/2.0 403 Forbidden" {
			t.Fatalf("banned scanner on node %d with the right password: got %q, want 403", i+1, st)
		}
	}
	// A source banned by node 1's own count (4 failures there) is refused
	// by node 2.
	const other = "127.0.0.10"
	u := newRawUA(t, "udp", other, nodes[0].Addr("udp"))
	for i := range 4 {
		user := fmt.Sprintf("w%d", i)
		u.exchange(u.registerMsg(user, randHex(8), 2, digestAuth(user, "wrong-password-x", u.nonce()), ""), 2*time.Second)
	}
	waitFor(t, "node 1's ban on node 2", 3*time.Second, func() bool {
		return newRawUA(t, "udp", other, nodes[1].Addr("udp")).register("alice", pw) == "SIP/2.0 403 Forbidden"
	})
	// Lifted through node 2: node 1 serves the scanner again.
	if code := nodes[1].api(t, "DELETE", "/v1/bans/"+scanner, nil, nil); code != 204 {
		t.Fatalf("DELETE /v1/bans/%s on node 2: %d", scanner, code)
	}
	waitFor(t, "lift reaching node 1", 3*time.Second, func() bool {
		return newRawUA(t, "udp", scanner, nodes[0].Addr("udp")).register("alice", pw) == "SIP/2.0 200 OK"
	})
}
