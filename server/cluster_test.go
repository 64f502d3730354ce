package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/server/servertest"
	"github.com/sipwarden/sipwarden/store"
)

// startCluster starts n nodes sharing the Redis r, each with its own data
// dir and loopback ports; edit, when not nil, adjusts every node's
// configuration. Node i listens on 127.0.0.(101+i), not on the
// 127.0.0.1 the tests' phones use: the nodes trust each other's addresses
// (clusterMember), and a phone must not share one.
func startCluster(t *testing.T, r *redistest.Server, n int, edit func(*config.Config)) []*testServer {
	t.Helper()
	nodes := make([]*testServer, n)
	for i := range nodes {
		cfg := testConfig(t, t.TempDir())
		ip := fmt.Sprintf("127.0.0.%d", 101+i)
		cfg.SIP.Listen = config.Listen{UDP: ip + ":0", TCP: ip + ":0", TLS: ip + ":0", WS: ip + ":0", WSS: ip + ":0"}
		cfg.Cluster = config.Cluster{RedisURL: r.URL(), NodeName: fmt.Sprintf("node%d", i+1),
			Advertise: ip + ":1", Timeout: config.Duration(500 * time.Millisecond)}
		if edit != nil {
			edit(&cfg)
		}
		nodes[i] = startServer(t, cfg)
	}
	return nodes
}

// nonceModes runs f with each cluster.nonce_counts.
func nonceModes(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{config.NonceCountsNode, config.NonceCountsCluster} {
		t.Run(mode, func(t *testing.T) { f(t, mode) })
	}
}

// withNonceCounts sets cluster.nonce_counts.
func withNonceCounts(mode string) func(*config.Config) {
	return func(c *config.Config) { c.Cluster.NonceCounts = mode }
}

// TestClusterReplayRefusedOnAnotherNode: a digest answer accepted by node
// 1 and replayed to node 2 is refused in both nonce_counts modes (node:
// node 1's nonce is stale on node 2; cluster: its count is in Redis),
// never 200. A fresh answer to node 1's nonce sent to node 2 is accepted
// in cluster mode (shared key and epoch); in node mode it is challenged
// again with stale=true and a nonce of node 2's, whose answer is
// accepted.
func TestClusterReplayRefusedOnAnotherNode(t *testing.T) {
	nonceModes(t, func(t *testing.T, mode string) {
		r := redistest.Start(t)
		nodes := startCluster(t, r, 2, withNonceCounts(mode))
		waitCredential(t, nodes[1], nodes[0].createCredential(t, "alice", pw, nil))
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
		// Node 1's nonce answered afresh, to node 2.
		nonce = u1.nonce()
		callID = randHex(8)
		st, raw = u2.exchange(u2.registerMsg("alice", callID, 2, digestAuth("alice", pw, nonce), ""), 2*time.Second)
		if mode == config.NonceCountsCluster {
			if st != "SIP/2.0 200 OK" {
				t.Fatalf("node 1's nonce answered to node 2: got %q, want 200 (same key, same epoch)", st)
			}
			return
		}
		m := nonceRE.FindStringSubmatch(raw)
		if st != "SIP/2.0 401 Unauthorized" || !strings.Contains(strings.ToLower(raw), "stale=true") || m == nil || m[1] == nonce {
			t.Fatalf("node 1's nonce answered to node 2: got %q, want 401 with stale=true and a new nonce\n%s", st, raw)
		}
		if st, _ := u2.exchange(u2.registerMsg("alice", callID, 3, digestAuth("alice", pw, m[1]), ""), 2*time.Second); st != "SIP/2.0 200 OK" {
			t.Fatalf("the answer to node 2's own nonce: got %q, want 200", st)
		}
	})
}

// TestClusterNodeNonceCountsStayLocal: with nonce_counts: node, REGISTER
// flows through two nodes leave no nonce state in Redis (no count keys,
// no shared epoch; the count script writes a key for every count it
// accepts), while their bindings are in Redis before
// each 200; with cluster, the same flows leave a count key per nonce (so
// that this test can fail).
func TestClusterNodeNonceCountsStayLocal(t *testing.T) {
	nonceModes(t, func(t *testing.T, mode string) {
		r := redistest.Start(t)
		nodes := startCluster(t, r, 2, withNonceCounts(mode))
		const users = 5
		for i := range users {
			waitCredential(t, nodes[1], nodes[0].createCredential(t, fmt.Sprintf("local%d", i), pw, nil))
		}
		for i := range users {
			for j, n := range nodes {
				u := newRawUA(t, "udp", "127.0.0.1", n.Addr("udp"))
				user := fmt.Sprintf("local%d", i)
				// Twice with the same nonce (nc 1 then 2), as a phone
				// refreshing with its cached nonce: the script's path in
				// cluster mode.
				nonce := u.nonce()
				callID := randHex(8)
				for nc := 1; nc <= 2; nc++ {
					if st, _ := u.exchange(u.registerMsg(user, callID, 1+nc, digestAuthNC(user, pw, nonce, nc), ""), 2*time.Second); st != "SIP/2.0 200 OK" {
						t.Fatalf("%s through node %d, nc %d: got %q, want 200", user, j+1, nc, st)
					}
				}
			}
		}
		keys := r.Do("EVAL \"return #redis.call('KEYS','sipwarden:nc:*')\" 0")
		epoch := r.Do("EXISTS sipwarden:secret:nonce_epoch")
		if mode == config.NonceCountsNode {
			if keys != ":0" || epoch != ":0" {
				t.Errorf("node mode kept nonce state in Redis: %s count keys, epoch %s, want :0, :0", keys, epoch)
			}
		} else if keys == ":0" || epoch != ":1" {
			t.Errorf("cluster mode: %s count keys, epoch %s, want some, :1", keys, epoch)
		}
	})
}

// TestClusterBanShared: failures through two nodes add up; a scanner
// banned through node 1 is refused by node 2; a ban lifted through node 2
// is lifted on node 1.
func TestClusterBanShared(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, func(c *config.Config) { c.Guard.MaxFailures = 4 })
	nodes[0].createCredential(t, "alice", pw, nil)
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
	// Failures from another node's address (forged over UDP, say) ban
	// nothing: a ban of it would refuse every call that node relays.
	peer, _, _ := net.SplitHostPort(nodes[1].Addr("udp"))
	for i := range 4 {
		user := fmt.Sprintf("p%d", i)
		u := newRawUA(t, "udp", peer, nodes[0].Addr("udp"))
		u.exchange(u.registerMsg(user, randHex(8), 2, digestAuth(user, "wrong-password-x", u.nonce()), ""), 2*time.Second)
	}
	if st := newRawUA(t, "udp", peer, nodes[0].Addr("udp")).register("alice", pw); st != "SIP/2.0 200 OK" {
		t.Errorf("from node 2's address after 4 failures: got %q, want 200 (not banned)", st)
	}
	for _, b := range nodes[0].bans(t) {
		if b.IP == peer {
			t.Errorf("node 2's address banned: %+v", b)
		}
	}
}

// TestClusterCredentialsShared: a credential created through node 1's API
// registers through nodes 2 and 3 within a second; one deleted through
// node 3 is refused everywhere and its binding on node 1 is removed; a
// write while Redis is down is answered 503 and stored nowhere; a node
// started later gets every record.
func TestClusterCredentialsShared(t *testing.T) {
	r := redistest.Start(t)
	// The refusals below are failures from 127.0.0.1: not enough to ban it.
	lenient := func(c *config.Config) {
		c.Guard.MaxFailures, c.Guard.UserMaxFailures, c.Guard.LongMaxFailures = 1000, 1000, 1000
	}
	nodes := startCluster(t, r, 3, lenient)
	start := time.Now()
	c := nodes[0].createCredential(t, "bob", pw, nil)
	prevSource := ""
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("bob registering through node %d", i+1), time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("bob", pw) == "SIP/2.0 200 OK"
		})
		// Last device wins (max_contacts 1), once every node has the
		// binding: devices of one AOR registering through two nodes within
		// the replication delay both stay (the nodes merge their sets,
		// TestClusterSimultaneousRegistrations), so the next device waits
		// (three within 64 ms once left node 1 with two).
		for j, m := range nodes {
			waitFor(t, fmt.Sprintf("node %d holding bob's binding from node %d only", j+1, i+1), 2*time.Second, func() bool {
				rs := m.registrations(t, "bob")
				return len(rs) == 1 && rs[0].Source != "" && (i == 0 || rs[0].Source != prevSource)
			})
		}
		prevSource = nodes[0].registrations(t, "bob")[0].Source
	}
	t.Logf("created through node 1, registered through all three within %v", time.Since(start).Round(time.Millisecond))
	// Usernames are unique across the cluster.
	if code := nodes[1].api(t, "POST", "/v1/credentials", map[string]any{"username": "bob", "password": pw}, nil); code != 409 {
		t.Errorf("bob again through node 2: got %d, want 409", code)
	}
	if code := nodes[2].api(t, "DELETE", "/v1/credentials/"+c.ID, nil, nil); code != 204 {
		t.Fatalf("delete through node 3: %d", code)
	}
	waitFor(t, "bob's binding on node 1 removed", time.Second, func() bool { return len(nodes[0].registrations(t, "bob")) == 0 })
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("deleted bob refused by node %d", i+1), time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("bob", pw) != "SIP/2.0 200 OK"
		})
	}
	nodes[1].createCredential(t, "erin", pw, nil)
	// Created through node 2: node 1 has it within the replication delay.
	waitFor(t, "erin registering through node 1", 2*time.Second, func() bool {
		return newRawUA(t, "udp", "127.0.0.1", nodes[0].Addr("udp")).register("erin", pw) == "SIP/2.0 200 OK"
	})
	var erinReg registration
	waitFor(t, "erin's binding on node 2", time.Second, func() bool {
		rs := nodes[1].registrations(t, "erin")
		if len(rs) == 1 {
			erinReg = rs[0]
		}
		return len(rs) == 1
	})
	// Redis down: the API refuses to write rather than store on one node.
	r.Stop()
	if code := nodes[1].api(t, "POST", "/v1/credentials", map[string]any{"username": "carol", "password": pw}, nil); code != 503 {
		t.Errorf("create with redis down: got %d, want 503", code)
	}
	// A registration's removal too: made on node 2 alone, an empty Redis
	// reseeded by another node brought it back, or left the nodes
	// disagreeing (a probe's three runs, three outcomes).
	if code := nodes[1].api(t, "DELETE", "/v1/registrations/"+erinReg.ID, nil, nil); code != 503 {
		t.Errorf("delete a registration with redis down: got %d, want 503", code)
	}
	if rs := nodes[1].registrations(t, "erin"); len(rs) != 1 {
		t.Errorf("the refused removal removed erin's binding on node 2: %v", rs)
	}
	r.Restart() // empty: no persistence
	// The nodes seed the empty Redis again from their replicas: nothing
	// acknowledged is lost, carol (refused) is nowhere, and writes work
	// again without a restart.
	waitFor(t, "a credential created through node 2 after redis came back", 10*time.Second, func() bool {
		return nodes[1].api(t, "POST", "/v1/credentials", map[string]any{"username": "dave", "password": pw}, nil) == 201
	})
	for i, n := range nodes {
		if rs := n.registrations(t, "erin"); len(rs) != 1 || rs[0].ID != erinReg.ID {
			t.Errorf("node %d after redis came back: erin's bindings %v, want the one whose removal was refused", i+1, rs)
		}
	}
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("dave through node %d after redis came back", i+1), 5*time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("dave", pw) == "SIP/2.0 200 OK"
		})
		waitFor(t, fmt.Sprintf("erin, created before redis restarted, through node %d", i+1), 5*time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("erin", pw) == "SIP/2.0 200 OK"
		})
		if st := newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("carol", pw); st == "SIP/2.0 200 OK" {
			t.Errorf("carol, refused with 503, registered through node %d", i+1)
		}
	}
	// A node joining now gets every record.
	late := startCluster(t, r, 1, func(c *config.Config) { lenient(c); c.Cluster.NodeName = "node4" })[0]
	for _, user := range []string{"dave", "erin"} {
		if st := newRawUA(t, "udp", "127.0.0.1", late.Addr("udp")).register(user, pw); st != "SIP/2.0 200 OK" {
			t.Errorf("%s through the late node: got %q, want 200", user, st)
		}
	}
}

// TestClusterRedisDown: with Redis stopped, REGISTER gets 503 with
// Retry-After (never a 200), /readyz says why; when Redis is back
// (empty: no persistence), service resumes without a restart and no
// credential is lost.
func TestClusterRedisDown(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, nil)
	nodes[0].createCredential(t, "alice", pw, nil)
	nodes[0].createCredential(t, "bob", pw, nil)
	for _, n := range nodes {
		waitFor(t, "alice registering", time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("alice", pw) == "SIP/2.0 200 OK"
		})
	}
	// bob registers once, before the outage, and never again.
	if st := newRawUA(t, "udp", "127.0.0.1", nodes[0].Addr("udp")).register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob: %q", st)
	}
	waitFor(t, "bob's binding in redis", time.Second, func() bool { return r.Do("EXISTS sipwarden:binds:bob") == ":1" })
	r.Stop()
	for i, n := range nodes {
		u := newRawUA(t, "udp", "127.0.0.1", n.Addr("udp"))
		var raw string
		waitFor(t, fmt.Sprintf("503 from node %d", i+1), 3*time.Second, func() bool {
			st, rr := u.exchange(u.registerMsg("alice", randHex(8), 1, "", ""), 2*time.Second)
			if st == "SIP/2.0 200 OK" {
				t.Fatalf("node %d answered 200 with redis down", i+1)
			}
			raw = rr
			return st == "SIP/2.0 503 Service Unavailable"
		})
		if !strings.Contains(raw, "Retry-After: 5") {
			t.Errorf("node %d's 503 lacks Retry-After:\n%s", i+1, raw)
		}
		// A failed command marks Redis down at once; /readyz follows the
		// watch's next ping (every second).
		var (
			code int
			body string
		)
		waitFor(t, fmt.Sprintf("node %d /readyz 503", i+1), 3*time.Second, func() bool {
			code, body = readyz(t, n)
			return code == 503
		})
		if !strings.Contains(body, "redis") {
			t.Errorf("node %d /readyz: got %d %q, want 503 naming redis", i+1, code, body)
		}
	}
	r.Restart()
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("node %d serving again", i+1), 10*time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("alice", pw) == "SIP/2.0 200 OK"
		})
		waitFor(t, fmt.Sprintf("node %d ready again", i+1), 5*time.Second, func() bool { c, _ := readyz(t, n); return c == 200 })
	}
	// Redis came back empty: the node that seeded it again wrote its
	// bindings too, so a node starting now sees bob's, registered before
	// the outage.
	waitFor(t, "bob's binding back in redis", 5*time.Second, func() bool { return r.Do("EXISTS sipwarden:binds:bob") == ":1" })
	// And the nonce key (no nonce count check stores it again with
	// nonce_counts: node): the node starting now signs with the same key.
	waitFor(t, "the nonce key back in redis", 5*time.Second, func() bool { return r.Do("EXISTS sipwarden:secret:nonce_key") == ":1" })
	late := startCluster(t, r, 1, func(c *config.Config) { c.Cluster.NodeName = "node3" })[0]
	if bs := late.registrations(t, "bob"); len(bs) != 1 {
		t.Errorf("the late node lists %d bindings of bob after redis came back, want 1", len(bs))
	}
	// A correct answer to the late node's nonce, sent to node 1: stale
	// (another node's epoch), not an unknown nonce (another key).
	u := newRawUA(t, "udp", "127.0.0.1", nodes[0].Addr("udp"))
	nonce := newRawUA(t, "udp", "127.0.0.1", late.Addr("udp")).nonce()
	if st, raw := u.exchange(u.registerMsg("alice", randHex(8), 2, digestAuth("alice", pw, nonce), ""), 2*time.Second); st != "SIP/2.0 401 Unauthorized" || !strings.Contains(strings.ToLower(raw), "stale=true") {
		t.Errorf("the late node's nonce answered to node 1: got %q, want 401 with stale=true (the same key)\n%s", st, raw)
	}
}

// TestClusterReloadFromEmptyRedis: Redis loses everything (FLUSHALL, as a
// restart without persistence) and a node reloads its records before it
// noticed (here for a records message of a version it missed; in the
// field a reload under way while Redis restarted): it keeps its replica rather
// than replace it with nothing, Redis is seeded again from it, and the
// credential still registers through both nodes. It used to empty the
// replica, end every binding, and seed Redis with nothing: every
// credential of the cluster gone.
func TestClusterReloadFromEmptyRedis(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, nil)
	waitCredential(t, nodes[1], nodes[0].createCredential(t, "alice", pw, nil))
	if got := r.Do("FLUSHALL"); got != "+OK" {
		t.Fatalf("FLUSHALL: %s", got)
	}
	// A write of another node, after more than this node has seen: it
	// reloads everything.
	if got := r.Do(`PUBLISH sipwarden:records "{\"version\":1000000,\"node\":\"elsewhere\"}"`); got != ":2" {
		t.Fatalf("PUBLISH to the records channel: %s, want both nodes subscribed", got)
	}
	waitFor(t, "the records back in redis", 5*time.Second, func() bool {
		return r.Do("EXISTS sipwarden:recversion") == ":1" && r.Do("HLEN sipwarden:rec:credentials") != ":0"
	})
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("alice registering through node %d", i+1), 5*time.Second, func() bool {
			return newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")).register("alice", pw) == "SIP/2.0 200 OK"
		})
	}
}

// TestClusterOldRecordMessagesNoReload: messages on the records channel
// with versions a node already holds (a backlog left after it reloaded
// past them) cost it a version check each, not a reload of every record.
func TestClusterOldRecordMessagesNoReload(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, nil)
	for _, u := range []string{"alice", "bob", "carol"} {
		waitCredential(t, nodes[1], nodes[0].createCredential(t, u, pw, nil))
	}
	before := strings.Count(nodes[1].logs.String(), "records reloaded from redis")
	for range 20 {
		if got := r.Do(`PUBLISH sipwarden:records "{\"version\":1,\"node\":\"elsewhere\"}"`); got != ":2" {
			t.Fatalf("PUBLISH to the records channel: %s, want both nodes subscribed", got)
		}
	}
	// A write after them is applied in order: the old ones are behind.
	waitCredential(t, nodes[1], nodes[0].createCredential(t, "dave", pw, nil))
	// One reload is right when an old message is checked while dave's
	// write is in Redis but its message not yet here; one per message
	// (20) is the storm this test is about.
	if got := strings.Count(nodes[1].logs.String(), "records reloaded from redis") - before; got > 1 {
		t.Errorf("node 2 reloaded its records %d times for 20 messages of a version it held, want at most 1", got)
	}
	if st := newRawUA(t, "udp", "127.0.0.1", nodes[1].Addr("udp")).register("carol", pw); st != "SIP/2.0 200 OK" {
		t.Errorf("carol through node 2: %q", st)
	}
}

// TestClusterRedisHangsAtAnswer: Redis stops answering (SIGSTOP) between
// a challenge and its answer, before the node has noticed. The
// REGISTER's correct answer is answered 503 with Retry-After, never 200
// nor 401 stale=true as if it were a replay: with nonce_counts: node
// because its binding cannot be stored, with cluster because its nonce
// count cannot be checked either. An INVITE needs Redis only for its
// nonce count: answered 503 in cluster mode, and as usual in node mode
// (here 404: the callee is not registered). Once Redis answers again, so
// does the node.
func TestClusterRedisHangsAtAnswer(t *testing.T) {
	nonceModes(t, func(t *testing.T, mode string) {
		r := redistest.Start(t)
		// 100 ms: the INVITE is answered before sipgo's automatic 100 Trying
		// (Timer_1xx, 200 ms), whose goroutine clones the request while the
		// proxy writes its Via (forceRport): a data race, outside this test's
		// subject, that -race reports for an INVITE answered after 200 ms.
		node := startCluster(t, r, 1, func(c *config.Config) {
			c.Cluster.Timeout = config.Duration(100 * time.Millisecond)
			c.Cluster.NonceCounts = mode
		})[0]
		node.createCredential(t, "alice", pw, nil)
		for _, method := range []string{"REGISTER", "INVITE"} {
			u := newRawUA(t, "udp", "127.0.0.1", node.Addr("udp"))
			// Redis answers, and the node knows it (the gate lets REGISTERs in).
			waitFor(t, "alice registering", 5*time.Second, func() bool { return u.register("alice", pw) == "SIP/2.0 200 OK" })
			callID := randHex(8)
			var msg func(cseq int, auth string) string
			switch method {
			case "REGISTER":
				msg = func(cseq int, auth string) string { return u.registerMsg("alice", callID, cseq, auth, "") }
			default:
				msg = func(cseq int, auth string) string { return u.inviteMsg("alice", callID, cseq, auth) }
			}
			_, raw := u.exchange(msg(1, ""), 2*time.Second)
			m := nonceRE.FindStringSubmatch(raw)
			if m == nil {
				t.Fatalf("%s: no challenge in %q", method, StatusLineOf(raw))
			}
			answer := digestAuth("alice", pw, m[1])
			if method == "INVITE" {
				answer = digestAnswer("alice", pw, m[1], "INVITE", "sip:bob@sipwarden.test")
			}
			// The node learns that Redis hangs only when a command times
			// out (100 ms): the answer sent now passes the cluster gate.
			r.Pause()
			st, raw := u.exchange(msg(2, answer), 5*time.Second)
			r.Resume()
			want := "SIP/2.0 503 Service Unavailable"
			if method == "INVITE" && mode == config.NonceCountsNode {
				want = "SIP/2.0 404 User Not Found"
			}
			if st != want {
				t.Fatalf("%s answered while redis hangs: got %q, want %q\n%s", method, st, want, raw)
			}
			if strings.HasPrefix(st, "SIP/2.0 503") && !strings.Contains(raw, "Retry-After: 5") {
				t.Errorf("%s: the 503 lacks Retry-After:\n%s", method, raw)
			}
		}
	})
}

// waitCredential waits up to a second for c, created through another
// node, to be on n (replicated through Redis's pub/sub).
func waitCredential(t *testing.T, n *testServer, c credential) {
	t.Helper()
	waitFor(t, c.Username+"'s credential on another node", time.Second, func() bool {
		return n.api(t, "GET", "/v1/credentials/"+c.ID, nil, nil) == 200
	})
}

func readyz(t *testing.T, n *testServer) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + n.Addr("http") + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestClusterBindingsShared: a device registered over UDP through node 1
// is listed by node 2 and called through node 2 (which sends the INVITE
// to it straight); a binding removed through node 2's API is gone from
// node 1; a node started later loads the bindings from Redis; a TCP
// binding held by node 1 is listed everywhere but not used by node 2.
func TestClusterBindingsShared(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, nil)
	nodes[0].createCredential(t, "bob", pw, nil)
	// carol calls through node 2: her credential must have reached it.
	waitCredential(t, nodes[1], nodes[0].createCredential(t, "carol", pw, nil))
	bob := unconnectedUA(t, nodes[0].Addr("udp")) // a phone takes packets from any node
	waitFor(t, "bob's credential on node 1", time.Second, func() bool { return bob.register("bob", pw) == "SIP/2.0 200 OK" })
	waitFor(t, "bob's binding on node 2", time.Second, func() bool {
		bs := nodes[1].registrations(t, "bob")
		return len(bs) == 1 && bs[0].Source == bob.local
	})
	// carol calls bob through node 2.
	carol := newRawUA(t, "udp", "127.0.0.1", nodes[1].Addr("udp"))
	go carol.invite("carol", pw)
	inv := bob.recv(3 * time.Second)
	if !strings.HasPrefix(inv, "INVITE sip:bob") {
		t.Fatalf("bob got %q, want the INVITE forwarded by node 2", StatusLineOf(inv))
	}
	if !strings.Contains(inv, nodes[1].Addr("udp")) {
		t.Errorf("the INVITE bob got does not come through node 2 (%s):\n%s", nodes[1].Addr("udp"), inv)
	}
	// Removed through node 2: gone on node 1 too.
	id := nodes[1].registrations(t, "bob")[0].ID
	if code := nodes[1].api(t, "DELETE", "/v1/registrations/"+id, nil, nil); code != 204 {
		t.Fatalf("DELETE registration on node 2: %d", code)
	}
	waitFor(t, "the removal on node 1", time.Second, func() bool { return len(nodes[0].registrations(t, "bob")) == 0 })
	// A TCP binding on node 1: listed by node 2, not routed by it.
	dave := newRawUA(t, "tcp", "127.0.0.1", nodes[0].Addr("tcp"))
	if st := dave.register("carol", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("carol over TCP on node 1: %q", st)
	}
	waitFor(t, "carol's TCP binding on node 2", time.Second, func() bool { return len(nodes[1].registrations(t, "carol")) == 1 })
	// A node started now loads what Redis holds.
	late := startCluster(t, r, 1, func(c *config.Config) { c.Cluster.NodeName = "node3" })[0]
	if bs := late.registrations(t, "carol"); len(bs) != 1 || bs[0].Transport != "tcp" {
		t.Errorf("the late node lists %+v, want carol's TCP binding", bs)
	}
}

// StatusLineOf is the first line of a message.
func StatusLineOf(raw string) string { l, _, _ := strings.Cut(raw, "\r\n"); return l }

// unconnectedUA is a UDP rawUA that sends to server but, unlike a
// connected socket, receives from anyone (as a phone does).
func unconnectedUA(t *testing.T, server string) *rawUA {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	conn := udpAny{UDPConn: c, to: to}
	return &rawUA{t: t, conn: conn, transport: "udp", local: c.LocalAddr().String()}
}

type udpAny struct {
	*net.UDPConn
	to *net.UDPAddr
}

func (u udpAny) Write(b []byte) (int, error) { return u.WriteToUDP(b, u.to) }
func (u udpAny) Read(b []byte) (int, error) {
	n, _, err := u.ReadFromUDP(b)
	return n, err
}

// clusterNonceKey is the auth.nonce_key of startNodesOn's nodes, so that a
// test can sign a relay as a node does (server.RelayMark).
var clusterNonceKey = bytes.Repeat([]byte{0x5a}, 32)

// signedRelay is u's INVITE from user to bob marked as relayed by a node,
// the mark made under key for a relay to aor of the INVITE markFrom
// makes of it (nil: the INVITE itself): with clusterNonceKey, bob and
// nil, what a node sends the node holding bob's connection.
func signedRelay(t *testing.T, u *rawUA, user, aor string, key []byte, markFrom func(string) string) string {
	t.Helper()
	msg := u.inviteMsg(user, randHex(8), 1, "")
	marked := msg
	if markFrom != nil {
		marked = markFrom(msg)
	}
	m, err := sip.ParseMessage([]byte(marked))
	if err != nil {
		t.Fatal(err)
	}
	mark := server.RelayMark(key, m.(*sip.Request), aor, "sipwarden.test")
	return strings.Replace(msg, "INVITE sip:bob@sipwarden.test SIP/2.0", "INVITE sip:bob@sipwarden.test;sw-relayed="+mark+" SIP/2.0", 1)
}

// startNodesOn starts one cluster node on r per loopback IP: named nodeA,
// nodeB..., every listener on its IP, cluster.advertise its UDP address,
// auth.nonce_key clusterNonceKey; extra, if set, changes each node's
// configuration last.
func startNodesOn(t *testing.T, r *redistest.Server, ips []string, extra func(*config.Config, string)) []*testServer {
	t.Helper()
	var nodes []*testServer
	for i, ip := range ips {
		udp := freeUDP(t, ip)
		nodes = append(nodes, startCluster(t, r, 1, func(c *config.Config) {
			c.Cluster.NodeName = fmt.Sprintf("node%c", 'A'+i)
			c.Cluster.Advertise = udp
			c.Auth.NonceKey = hex.EncodeToString(clusterNonceKey)
			c.SIP.Listen = config.Listen{UDP: udp, TCP: ip + ":0", TLS: ip + ":0", WS: ip + ":0", WSS: ip + ":0"}
			if extra != nil {
				extra(c, ip)
			}
		})[0])
	}
	return nodes
}

// TestClusterCallReachesFlowOnAnotherNode: bob registers over TCP through
// node A; carol, through node B, calls him: B sends the INVITE to A
// (cluster.advertise), A trusts B as a live member of the cluster (no
// proxy.trusted_peers) and sends it down bob's TCP connection. An INVITE
// without credentials from an address that is no node's is challenged;
// one from B's address is trusted while B lives, and challenged once B
// has stopped and its presence expired.
func TestClusterCallReachesFlowOnAnotherNode(t *testing.T) {
	r := redistest.Start(t)
	ips := []string{"127.0.0.2", "127.0.0.3"}
	nodes := startNodesOn(t, r, ips, nil)
	a, b := nodes[0], nodes[1]
	if len(a.Cfg.Proxy.TrustedPeers) != 0 {
		t.Fatalf("node A has proxy.trusted_peers %v: this test is about trust without them", a.Cfg.Proxy.TrustedPeers)
	}
	a.createCredential(t, "bob", pw, nil)
	waitCredential(t, b, a.createCredential(t, "carol", pw, nil)) // she calls through B
	bob := newRawUA(t, "tcp", "127.0.0.1", a.Addr("tcp"))
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob over TCP on A: %q", st)
	}
	waitFor(t, "bob's TCP binding on B", time.Second, func() bool { return len(b.registrations(t, "bob")) == 1 })
	// Not a node: challenged by A, as any caller.
	stranger := newRawUA(t, "udp", "127.0.0.1", a.Addr("udp"))
	if st, _ := stranger.exchange(stranger.inviteMsg("mallory", randHex(8), 1, ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 407") {
		t.Fatalf("INVITE without credentials from 127.0.0.1 (no node's address) to A: got %q, want 407", st)
	}
	// From B's address (another port than B's listeners: trust is by IP),
	// a relay signed with the cluster's key: trusted, since A read the
	// nodes again when B announced itself, so the INVITE without
	// credentials reaches bob.
	fromB := newRawUA(t, "udp", ips[1], a.Addr("udp"))
	waitFor(t, "A trusting B's relays", time.Second, func() bool {
		st, _ := fromB.exchange(signedRelay(t, fromB, "relay", "bob", clusterNonceKey, nil), 500*time.Millisecond)
		return !strings.HasPrefix(st, "SIP/2.0 407")
	})
	if inv := bob.recv(3 * time.Second); !strings.HasPrefix(inv, "INVITE sip:bob") || !strings.Contains(inv, "From: <sip:relay@") {
		t.Fatalf("signed relay from B's address: bob got %q, want it forwarded by A", StatusLineOf(inv))
	}
	// carol, through B, calls bob: B relays to A, which trusts it.
	carol := newRawUA(t, "udp", "127.0.0.1", b.Addr("udp"))
	go carol.invite("carol", pw)
	inv := bob.recv(3 * time.Second)
	if !strings.HasPrefix(inv, "INVITE sip:bob") || !strings.Contains(inv, "From: <sip:carol@") {
		t.Fatalf("bob got %q, want carol's INVITE over his TCP connection", StatusLineOf(inv))
	}
	if !strings.Contains(inv, b.Addr("udp")) || !strings.Contains(inv, a.Addr("udp")) {
		t.Errorf("the INVITE did not pass B (%s) then A (%s):\n%s", b.Addr("udp"), a.Addr("udp"), inv)
	}
	// B stops: once its presence key expires (5 s), A trusts its address
	// no more.
	b.Stop()
	waitFor(t, "B's relays challenged by A after B stopped", 10*time.Second, func() bool {
		st, _ := fromB.exchange(signedRelay(t, fromB, "relay", "bob", clusterNonceKey, nil), time.Second)
		return strings.HasPrefix(st, "SIP/2.0 407")
	})
}

// TestClusterCallForksAcrossNodes: with several devices per AOR, a call
// rings every one of them wherever they registered: a TCP device on the
// node the call came through, a TCP device on another node (through that
// node), a UDP device registered through another node (straight from the
// first node), each once: the node the call is relayed to rings only its
// own connections, not the UDP device again nor back through the first.
func TestClusterCallForksAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	ips := []string{"127.0.0.2", "127.0.0.3"}
	nodes := startNodesOn(t, r, ips, func(c *config.Config, _ string) {
		c.Cluster.NodeName = "fork" + c.Cluster.NodeName[len("node"):]
		c.Registrar.MaxContacts = 3
	})
	a, b := nodes[0], nodes[1]
	a.createCredential(t, "bob", pw, nil)
	waitCredential(t, b, a.createCredential(t, "carol", pw, nil))
	bobTCPOnA := newRawUA(t, "tcp", "127.0.0.1", a.Addr("tcp"))
	bobUDPOnA := newUnconnectedUDPUA(t, a.Addr("udp")) // a phone with a public address: it takes INVITEs from B too
	bobTCPOnB := newRawUA(t, "tcp", "127.0.0.1", b.Addr("tcp"))
	devices := map[string]*rawUA{"TCP on A": bobTCPOnA, "UDP through A": bobUDPOnA, "TCP on B": bobTCPOnB}
	// One after the other, each seen by both nodes before the next
	// (TestClusterSimultaneousRegistrations registers at once).
	for i, name := range []string{"TCP on A", "UDP through A", "TCP on B"} {
		if st := devices[name].register("bob", pw); st != "SIP/2.0 200 OK" {
			t.Fatalf("bob's device %s: %q", name, st)
		}
		for _, n := range nodes {
			waitFor(t, fmt.Sprintf("bob's %d bindings on %s", i+1, n.Cfg.Cluster.NodeName), 2*time.Second, func() bool { return len(n.registrations(t, "bob")) == i+1 })
		}
	}
	// The relayed branch needs B trusted by A: wait for A to know B.
	waitFor(t, "A trusting B's address", 6*time.Second, func() bool {
		fromB := newRawUA(t, "udp", ips[1], a.Addr("udp"))
		st, _ := fromB.exchange(signedRelay(t, fromB, "probe", "bob", clusterNonceKey, nil), 300*time.Millisecond)
		return !strings.HasPrefix(st, "SIP/2.0 407")
	})
	// The probe rang bob's devices through A (and keeps retransmitting to
	// the UDP one): what is not carol's is skipped below.
	carol := newRawUA(t, "udp", "127.0.0.1", b.Addr("udp"))
	go carol.invite("carol", pw)
	fromCarol := func(d *rawUA, until time.Time) string {
		for time.Now().Before(until) {
			if m := d.recv(time.Until(until)); strings.HasPrefix(m, "INVITE ") && strings.Contains(m, "From: <sip:carol@") {
				return m
			}
		}
		return ""
	}
	for name, d := range devices {
		inv := fromCarol(d, time.Now().Add(3*time.Second))
		if inv == "" {
			t.Errorf("bob's device %s did not get carol's INVITE", name)
			continue
		}
		if name == "TCP on A" && !strings.Contains(inv, a.Addr("udp")) {
			t.Errorf("bob's device %s: the INVITE did not pass A:\n%s", name, inv)
		}
		if name != "TCP on A" && strings.Contains(inv, a.Addr("udp")) {
			t.Errorf("bob's device %s: the INVITE passed A, want it from B straight:\n%s", name, inv)
		}
		// Each device rings once: another INVITE of carol's on another
		// branch (UDP retransmissions keep theirs) would be a second ring.
		first := topBranch(inv)
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			if m := fromCarol(d, end); m != "" && topBranch(m) != first {
				t.Errorf("bob's device %s rang twice:\n%s", name, m)
			}
		}
	}
}

// newUnconnectedUDPUA is newRawUA over UDP from 127.0.0.1 on a socket
// that receives from any address (newRawUA's, connected, takes only the
// server's datagrams, as a phone behind a NAT would).
func newUnconnectedUDPUA(t *testing.T, server string) *rawUA {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	c := unconnectedUDP{PacketConn: pc, to: to}
	return &rawUA{t: t, conn: c, transport: "udp", local: pc.LocalAddr().String(), rd: bufio.NewReaderSize(c, 65536)}
}

// unconnectedUDP is a net.Conn writing to one address, reading from any.
type unconnectedUDP struct {
	net.PacketConn
	to net.Addr
}

func (c unconnectedUDP) Read(b []byte) (int, error) {
	n, _, err := c.ReadFrom(b)
	return n, err
}

func (c unconnectedUDP) Write(b []byte) (int, error) { return c.WriteTo(b, c.to) }

func (c unconnectedUDP) RemoteAddr() net.Addr { return c.to }

// topBranch is the branch of a message's first Via.
func topBranch(msg string) string {
	_, rest, _ := strings.Cut(msg, ";branch=")
	br, _, _ := strings.Cut(rest, "\r\n")
	br, _, _ = strings.Cut(br, ";")
	return br
}

// TestClusterCallsListedOnEveryNode: GET /v1/calls on any node lists the
// calls every node relays, each naming its node, and DELETE
// /v1/calls/{id} through another node ends the call (BYE to both sides,
// sent by the node relaying it).
func TestClusterCallsListedOnEveryNode(t *testing.T) {
	nodes, _, alice, bob := clusterCall(t)
	n1, n2 := nodes[0], nodes[1]
	own := n1.calls(t)
	if len(own) != 1 || own[0]["node"] != "node1" {
		t.Fatalf("node 1 lists %v, want its call, node node1", own)
	}
	id, _ := own[0]["id"].(string)
	waitFor(t, "node 2 listing node 1's call", 3*time.Second, func() bool {
		cs := n2.calls(t)
		return len(cs) == 1 && cs[0]["id"] == id && cs[0]["node"] == "node1"
	})
	path := "/v1/calls/" + url.PathEscape(id)
	if code := n2.api(t, "DELETE", path, nil, nil); code != 204 {
		t.Fatalf("DELETE %s through node 2: %d, want 204", path, code)
	}
	recv(t, bob.byes, "BYE at bob")
	recv(t, alice.byes, "BYE at alice")
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("no calls listed by node %d", i+1), 3*time.Second, func() bool { return len(n.calls(t)) == 0 })
	}
	if code := n2.api(t, "DELETE", path, nil, nil); code != 404 {
		t.Errorf("DELETE %s again through node 2: %d, want 404", path, code)
	}
}

// clusterCall starts two nodes on a Redis of its own and sets up a call
// through node 1: alice over TCP calls bob over UDP, who answers; the
// call is acknowledged.
func clusterCall(t *testing.T) (nodes []*testServer, creds callCredentials, alice, bob *device) {
	t.Helper()
	r := redistest.Start(t)
	nodes = startCluster(t, r, 2, nil)
	n1 := nodes[0]
	creds = callSetup(t, n1)
	bob = newDevice(t, n1, "udp", "bob", "")
	bob.mode.Store("answer")
	bob.register(t, bobPass, "")
	alice = newDevice(t, n1, "tcp", "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel) // the dialog outlives this function
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call through node 1: %v", err)
	}
	_ = sess.Ack(ctx)
	recv(t, bob.acks, "ACK at bob")
	return nodes, creds, alice, bob
}

// TestClusterDeleteEndsCallElsewhere: a credential deleted (or disabled)
// through node 2 ends the call node 1 relays for it (BYE to both sides)
// and removes its binding everywhere.
func TestClusterDeleteEndsCallElsewhere(t *testing.T) {
	for _, how := range []string{"delete", "disable"} {
		t.Run(how, func(t *testing.T) { testEndsCallElsewhere(t, how) })
	}
}

func testEndsCallElsewhere(t *testing.T, how string) {
	nodes, creds, alice, bob := clusterCall(t)
	n1 := nodes[0]
	waitFor(t, "bob's binding on node 2", time.Second, func() bool { return len(nodes[1].registrations(t, "bob")) == 1 })
	if how == "delete" {
		if code := nodes[1].api(t, "DELETE", "/v1/credentials/"+creds.bob.ID, nil, nil); code != 204 {
			t.Fatalf("delete bob through node 2: %d", code)
		}
	} else if code := nodes[1].api(t, "PATCH", "/v1/credentials/"+creds.bob.ID, map[string]any{"enabled": false}, nil); code != 200 {
		t.Fatalf("disable bob through node 2: %d", code)
	}
	recv(t, bob.byes, "BYE at bob")
	recv(t, alice.byes, "BYE at alice")
	for i, n := range nodes {
		waitFor(t, fmt.Sprintf("bob's binding gone from node %d", i+1), time.Second, func() bool { return len(n.registrations(t, "bob")) == 0 })
	}
	waitFor(t, "no calls on node 1", 3*time.Second, func() bool { return len(n1.calls(t)) == 0 })
}

// TestClusterNodeRestart: a node stopped and started again (same data dir
// and name) loses nothing: the records and bindings written through it
// and through the others while it was down are there.
func TestClusterNodeRestart(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, nil)
	nodes[0].createCredential(t, "alice", pw, nil)
	if st := newRawUA(t, "udp", "127.0.0.1", nodes[0].Addr("udp")).register("alice", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("alice: %q", st)
	}
	waitFor(t, "alice's binding on node 2", time.Second, func() bool { return len(nodes[1].registrations(t, "alice")) == 1 })
	cfg := nodes[0].Cfg
	nodes[0].Stop()
	nodes[1].createCredential(t, "bob", pw, nil) // while node 1 is down
	if st := newRawUA(t, "udp", "127.0.0.1", nodes[1].Addr("udp")).register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob through node 2: %q", st)
	}
	cfg.SIP.Listen = config.Listen{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", TLS: "127.0.0.1:0", WS: "127.0.0.1:0", WSS: "127.0.0.1:0"}
	cfg.HTTP.Listen = "127.0.0.1:0"
	// As if node 1 had died during an API write, holding the write lock:
	// it releases its own lock at start instead of failing to start (or
	// waiting for the lock to expire).
	if got := r.Do("SET sipwarden:reclock node1/0123456789abcdef PX 10000"); got != "+OK" {
		t.Fatalf("SET reclock: %s", got)
	}
	restart := time.Now()
	again := startServer(t, cfg)
	if d := time.Since(restart); d > 2*time.Second {
		t.Errorf("node 1 took %v to start again with its own stale write lock in redis, want it released at once", d)
	}
	nodes[1].createCredential(t, "carol", pw, nil) // the lock is free
	for _, user := range []string{"alice", "bob"} {
		if bs := again.registrations(t, user); len(bs) != 1 {
			t.Errorf("restarted node 1 lists %d bindings of %s, want 1", len(bs), user)
		}
		if st := newRawUA(t, "udp", "127.0.0.1", again.Addr("udp")).register(user, pw); st != "SIP/2.0 200 OK" {
			t.Errorf("%s through the restarted node 1: %q", user, st)
		}
	}
}

// TestClusterRedisOutageUnderLoad: REGISTERs keep coming through two nodes
// while Redis stops for 2 s and comes back empty: some are answered 503,
// service resumes with no restart, and every REGISTER answered 200 has its
// binding in Redis afterwards (none acknowledged and lost).
func TestClusterRedisOutageUnderLoad(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, func(c *config.Config) { c.Guard.MaxFailures, c.Guard.LongMaxFailures = 100000, 100000 })
	const users = 600
	for i := range users {
		if _, err := nodes[0].Store().CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID,
			Username: fmt.Sprintf("load%04d", i), Enabled: true, Realm: servertest.Realm,
			HA1: map[string]string{"MD5": digest.HA1(digest.MD5, fmt.Sprintf("load%04d", i), servertest.Realm, pw)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Every node has them before Redis goes: a node whose replica lags
	// when Redis comes back empty may be the one that seeds it again
	// (README: a Redis without persistence can lose the last writes).
	waitFor(t, "the credentials on node 2", 10*time.Second, func() bool {
		_, err := nodes[1].Store().CredentialByUsername(fmt.Sprintf("load%04d", users-1))
		return err == nil
	})
	var (
		mu      sync.Mutex
		ok      []string
		status  = map[string]int{}
		next    atomic.Int64
		stopped atomic.Bool
		before  atomic.Int64 // 200s before the outage
		after   atomic.Int64 // 200s after Redis came back
	)
	deadline := time.Now().Add(6 * time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= users {
					return
				}
				user := fmt.Sprintf("load%04d", i)
				st := nodes[w%2].Register(t, "127.0.0.1", user, pw, 600)
				mu.Lock()
				status[st]++
				if st == "SIP/2.0 200 OK" {
					ok = append(ok, user)
					switch {
					case !stopped.Load():
						before.Add(1)
					default:
						after.Add(1)
					}
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond) // about 150 flows/s: the load spans the outage
			}
		}()
	}
	time.Sleep(time.Second)
	stopped.Store(true)
	r.Stop()
	time.Sleep(2 * time.Second)
	r.Restart()
	wg.Wait()
	t.Logf("answers: %v", status)
	if before.Load() == 0 || status["SIP/2.0 503 Service Unavailable"] == 0 {
		t.Fatalf("want 200s before the outage and 503s during it: %v", status)
	}
	waitFor(t, "200s again after redis came back", 10*time.Second, func() bool {
		return nodes[1].Register(t, "127.0.0.1", "load0000", pw, 600) == "SIP/2.0 200 OK"
	})
	mu.Lock()
	acked := append([]string(nil), ok...)
	mu.Unlock()
	waitFor(t, "every acknowledged binding in redis", 10*time.Second, func() bool {
		for _, u := range acked {
			if r.Do("EXISTS sipwarden:binds:"+u) != ":1" {
				return false
			}
		}
		return true
	})
}

// TestClusterExpiryReportedOnce: every node removes an expired binding
// from its copy of the table (its own sweep, or the other node's applied,
// whichever comes first), and exactly one node, the one it was registered
// through, sends the registration.expired webhook: never both, never
// neither. Six bindings registered through both nodes, so that the node
// that did not take the registration sweeps first for some of them.
func TestClusterExpiryReportedOnce(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, func(c *config.Config) { c.Registrar.MinExpires = 1 })
	rcv := newHookReceiver(t)
	var conn struct {
		ID     string `json:"id"`
		Secret string `json:"webhook_secret"`
	}
	if code := nodes[0].api(t, "POST", "/v1/connections", map[string]any{"name": "hooked", "webhook_event_url": rcv.srv.URL + "/sip"}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	rcv.mu.Lock()
	rcv.secret = conn.Secret
	rcv.mu.Unlock()
	const n = 6
	for i := range n {
		user := fmt.Sprintf("exp%d", i)
		nodes[0].createCredential(t, user, pw, map[string]any{"connection_id": conn.ID})
		ph := newPhone(t, nodes[i%2], "udp") // half through each node
		waitFor(t, user+"'s credential on node "+fmt.Sprint(i%2+1), 5*time.Second, func() bool {
			return ph.register(t, regOpts{user: user, pass: pw, expires: "1"}).StatusCode == 200
		})
		time.Sleep(170 * time.Millisecond) // spread the expiries over the sweeps' second
	}
	count := func() map[string]int {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		m := map[string]int{}
		for _, e := range rcv.events {
			if e.Type == "registration.expired" {
				m[fmt.Sprint(e.Payload["username"])]++
			}
		}
		return m
	}
	waitFor(t, "an expiry event for each binding", 10*time.Second, func() bool { return len(count()) == n })
	// Each node sweeps every second: a second event for a binding would
	// have been delivered by now (the receiver is on loopback).
	time.Sleep(2500 * time.Millisecond)
	for user, k := range count() {
		if k != 1 {
			t.Errorf("registration.expired for %s %d times, want once", user, k)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.bad != 0 {
		t.Errorf("%d deliveries did not verify", rcv.bad)
	}
}

// TestClusterRegisterAnsweredOnceStored: a REGISTER through a cluster
// node is answered 200 only once Redis holds its binding set: read
// straight from Redis the moment each 200 arrives (concurrent flows
// through two nodes), the set is there with that REGISTER's Call-ID and
// CSeq; an unregister's 200 comes once the key is gone. With
// redis-server frozen (SIGSTOP) no REGISTER gets 200: 503 with
// Retry-After; after SIGCONT both nodes answer 200 again with no
// restart, and the bindings are in Redis.
func TestClusterRegisterAnsweredOnceStored(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, func(c *config.Config) {
		c.Guard.MaxFailures, c.Guard.UserMaxFailures, c.Guard.LongMaxFailures = 100000, 100000, 100000
	})
	const users = 16
	for i := range users {
		waitCredential(t, nodes[1], nodes[0].createCredential(t, fmt.Sprintf("dur%02d", i), pw, nil))
	}
	// flow runs one REGISTER flow (challenge, answer) of user through u
	// with the given Expires and returns the final status and answer.
	flow := func(u *rawUA, user, callID string, cseq int, expires string) (string, string) {
		msg := func(cseq int, auth string) string {
			return strings.Replace(u.registerMsg(user, callID, cseq, auth, ""), "Expires: 600\r\n", "Expires: "+expires+"\r\n", 1)
		}
		st, raw := u.exchange(msg(cseq, ""), 2*time.Second)
		if !strings.HasPrefix(st, "SIP/2.0 401") {
			return st, raw
		}
		m := nonceRE.FindStringSubmatch(raw)
		if m == nil {
			return "no nonce in " + st, raw
		}
		return u.exchange(msg(cseq+1, digestAuth(user, pw, m[1])), 2*time.Second)
	}
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			user := fmt.Sprintf("dur%02d", i)
			u := newRawUA(t, "udp", "127.0.0.1", nodes[i%2].Addr("udp"))
			callID := randHex(8)
			for k := range 5 {
				cseq := 1 + 2*k
				st, _ := flow(u, user, callID, cseq, "600")
				vs := r.HVals("sipwarden:binds:" + user) // at once: no wait, no retry
				v := strings.Join(vs, "\n")
				if st != "SIP/2.0 200 OK" {
					t.Errorf("%s flow %d: got %q, want 200", user, k, st)
					return
				}
				if len(vs) != 1 || !strings.Contains(v, `"call_id":"`+callID+`","cseq":`+fmt.Sprint(cseq+1)+`,`) {
					t.Errorf("%s flow %d: answered 200 while redis holds %q, want its Call-ID and CSeq %d", user, k, v, cseq+1)
					return
				}
			}
			// Unregistered: the key is gone when the 200 comes.
			if st, _ := flow(u, user, callID, 20, "0"); st != "SIP/2.0 200 OK" {
				t.Errorf("%s unregister: got %q, want 200", user, st)
				return
			}
			if got := r.Do("EXISTS sipwarden:binds:" + user); got != ":0" {
				t.Errorf("%s: unregister answered 200 while redis still holds its set (EXISTS %s)", user, got)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Frozen: no 200, a 503 with Retry-After.
	r.Pause()
	frozen := time.Now()
	count := map[string]int{}
	for k := 0; time.Since(frozen) < 2*time.Second; k++ {
		user := fmt.Sprintf("dur%02d", k%users)
		u := newRawUA(t, "udp", "127.0.0.1", nodes[k%2].Addr("udp"))
		st, raw := flow(u, user, randHex(8), 1, "600")
		count[st]++
		if st == "SIP/2.0 200 OK" {
			r.Resume()
			t.Fatalf("%s through node %d answered 200 with redis frozen", user, k%2+1)
		}
		if st != "SIP/2.0 503 Service Unavailable" || !strings.Contains(raw, "Retry-After: 5") {
			r.Resume()
			t.Fatalf("%s through node %d with redis frozen: got %q, want 503 with Retry-After: 5\n%s", user, k%2+1, st, raw)
		}
	}
	r.Resume()
	t.Logf("answers with redis frozen for 2 s: %v", count)
	for i, n := range nodes {
		user := fmt.Sprintf("dur%02d", i)
		u := newRawUA(t, "udp", "127.0.0.1", n.Addr("udp"))
		waitFor(t, fmt.Sprintf("node %d answering 200 after redis runs again", i+1), 10*time.Second, func() bool {
			st, _ := flow(u, user, randHex(8), 1, "600")
			return st == "SIP/2.0 200 OK"
		})
		if got := r.Do("EXISTS sipwarden:binds:" + user); got != ":1" {
			t.Errorf("%s through node %d: 200 after the freeze, EXISTS %s", user, i+1, got)
		}
	}
}

// TestClusterSimultaneousRegistrations: two devices of one AOR
// registering through two nodes at the same moment both stay, on both
// nodes and in Redis. The nodes used to replace an AOR's whole set with
// the one another node saved: each node's set, saved before the other's
// arrived, held only its own device, and the nodes ended with one device
// each (a different one), Redis with the later.
func TestClusterSimultaneousRegistrations(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 2, func(c *config.Config) { c.Registrar.MaxContacts = 2 })
	const users = 10
	for i := range users {
		waitCredential(t, nodes[1], nodes[0].createCredential(t, fmt.Sprintf("twin%02d", i), pw, nil))
	}
	// Every device takes its challenge first; the answers then go out
	// together, one device of each user through each node.
	type device struct {
		u            *rawUA
		user, callID string
		auth         string
	}
	var devices []device
	for i := range users {
		user := fmt.Sprintf("twin%02d", i)
		for _, n := range nodes {
			d := device{u: newRawUA(t, "udp", "127.0.0.1", n.Addr("udp")), user: user, callID: randHex(8)}
			st, raw := d.u.exchange(d.u.registerMsg(user, d.callID, 1, "", ""), 2*time.Second)
			m := nonceRE.FindStringSubmatch(raw)
			if !strings.HasPrefix(st, "SIP/2.0 401") || m == nil {
				t.Fatalf("%s through %s: got %q, want a 401 with a nonce", user, n.Cfg.Cluster.NodeName, st)
			}
			d.auth = digestAuth(user, pw, m[1])
			devices = append(devices, d)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Go(func() {
			<-start
			if st, _ := d.u.exchange(d.u.registerMsg(d.user, d.callID, 2, d.auth, ""), 2*time.Second); st != "SIP/2.0 200 OK" {
				t.Errorf("%s from %s: got %q, want 200", d.user, d.u.local, st)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range users {
		user := fmt.Sprintf("twin%02d", i)
		for _, n := range nodes {
			waitFor(t, fmt.Sprintf("%s's two devices on %s", user, n.Cfg.Cluster.NodeName), 2*time.Second, func() bool {
				return len(n.registrations(t, user)) == 2
			})
		}
		if vs := r.HVals("sipwarden:binds:" + user); len(vs) != 2 {
			t.Errorf("%s: redis holds %d bindings, want 2: %q", user, len(vs), vs)
		}
	}
}

// TestClusterRealmMustMatch: a node whose sip.realm differs from the
// cluster's does not start, naming the key: it joined silently, refused
// every correct password (counted as failures) and stored credentials
// whose HA1 the other nodes refused.
func TestClusterRealmMustMatch(t *testing.T) {
	r := redistest.Start(t)
	startCluster(t, r, 1, nil)
	cfg := secondNode(t, r, "node2")
	cfg.SIP.Realm = "other.test"
	err := startRefused(t, cfg, "a node with another realm")
	if !strings.Contains(err.Error(), "sip.realm") || !strings.Contains(err.Error(), `"other.test"`) {
		t.Errorf("error %q, want it to name sip.realm and the realm", err)
	}
}

// secondNode is the configuration of a node on 127.0.0.102 named name,
// on the Redis r.
func secondNode(t *testing.T, r *redistest.Server, name string) config.Config {
	cfg := testConfig(t, t.TempDir())
	ip := "127.0.0.102"
	cfg.SIP.Listen = config.Listen{UDP: ip + ":0", TCP: ip + ":0", TLS: ip + ":0", WS: ip + ":0", WSS: ip + ":0"}
	cfg.Cluster = config.Cluster{RedisURL: r.URL(), NodeName: name, Advertise: ip + ":1", Timeout: config.Duration(500 * time.Millisecond)}
	return cfg
}

// startRefused starts a node with cfg, which must fail (what: the node,
// for the failure message), and returns its error.
func startRefused(t *testing.T, cfg config.Config, what string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := server.Start(ctx, cfg, server.NewLogger(cfg.Log, &servertest.SyncBuffer{}), server.Options{Version: testVersion})
	if err == nil {
		s.Close()
		t.Fatalf("%s started", what)
	}
	return err
}

// TestClusterNodeNameMustBeFree: a node started under the name of a live
// node with other addresses refuses to start, naming the other (the two
// overwrote each other's entry every second); a node that stopped
// cleanly leaves its name free at once.
func TestClusterNodeNameMustBeFree(t *testing.T) {
	r := redistest.Start(t)
	nodes := startCluster(t, r, 1, nil)
	cfg := secondNode(t, r, "node1")
	err := startRefused(t, cfg, "a second node1")
	if !errors.Is(err, cluster.ErrNodeNameTaken) || !strings.Contains(err.Error(), "127.0.0.101:1") {
		t.Errorf("error %q, want cluster.ErrNodeNameTaken naming 127.0.0.101:1", err)
	}
	// The refused node left the live one's presence key alone (it
	// deleted it on its way out).
	if got := r.Do("EXISTS sipwarden:alive:node1"); got != ":1" {
		t.Errorf("the live node1's presence key after the refused start: EXISTS = %s, want 1", got)
	}
	// A clean stop removes the presence key (Leave): a node started under
	// the name then does not wait for it to run down.
	nodes[0].Stop()
	if got := r.Do("EXISTS sipwarden:alive:node1"); got != ":0" {
		t.Errorf("node1's presence key after its clean stop: EXISTS = %s, want 0", got)
	}
	startServer(t, cfg).Stop()
}
