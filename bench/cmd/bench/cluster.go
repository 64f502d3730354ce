package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// The cluster's rows (issue 14, -cluster): REGISTER flows over UDP of one
// sipwarden node on bbolt (target "sipwarden"), one node on Redis
// ("redis") and two nodes on one Redis ("redis2", the users spread over
// both nodes by two sipp instances, the rate theirs added up), searched
// alternately like the servers of the Kamailio comparison. CPU per flow
// counts every process of the configuration: the nodes and redis-server.

// clusterTarget is n sipwarden nodes sharing a redis-server, all started
// for each step: Redis empty (no persistence, no appendonly, as the nodes
// of a throwaway cluster would run it), node 1 seeding it from its replica
// of the records (the credentials created at setup through its API), node
// 2 joining after it. Every step thus starts without the previous step's
// nonce counts in Redis, as a bbolt node starts without its table.
type clusterTarget struct {
	b     *bench
	label string           // redis, redis2
	cfgs  []harness.Config // one per node: ports, data dir, node name
	redis *harness.Redis
	nodes []*harness.Server
	dir   string // of the current start
}

func (t *clusterTarget) name() string { return t.label }

// setupCluster prepares the cluster targets ("redis": node 1 alone;
// "redis2": nodes 1 and 2) and creates the users' credentials through
// node 1's API, which keeps them in its replica for every later start.
func (b *bench) setupCluster(ctx context.Context, all, users []harness.User) error {
	if _, err := harness.RedisPath(); err != nil {
		return err
	}
	for i := range 2 {
		cfg, err := harness.LoopbackConfig(filepath.Join(b.work, fmt.Sprintf("cluster-node-%d", i+1)))
		if err != nil {
			return err
		}
		cfg.LogLevel = "warn"
		cfg.MaxQueueDelay = "" // the server's default, as the bbolt node's
		cfg.UDPBuffer = 4194304
		cfg.FlushInterval = "1s"
		cfg.Pprof = b.o.profile != ""
		cfg.Cluster = harness.Cluster{NodeName: fmt.Sprintf("bench-%d", i+1)}
		b.nodeCfgs = append(b.nodeCfgs, cfg)
	}
	one := &clusterTarget{b: b, label: "redis", cfgs: b.nodeCfgs[:1]}
	if err := one.start(ctx); err != nil {
		return err
	}
	defer one.stop()
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := one.nodes[0].API().CreateCredentials(cctx, all, 16); err != nil {
		return fmt.Errorf("create %d credentials on the cluster: %w", len(all), err)
	}
	logf("cluster: created %d credentials through node 1's API in %v", len(all), time.Since(t0).Round(time.Millisecond))
	// sipp's users, split in two for the two nodes (every other one).
	var parts [2][]harness.User
	for i, u := range users {
		parts[i%2] = append(parts[i%2], u)
	}
	for i, p := range parts {
		b.csvParts = append(b.csvParts, filepath.Join(b.work, fmt.Sprintf("users-node-%d.csv", i+1)))
		if err := harness.WriteUsersCSV(b.csvParts[i], p); err != nil {
			return err
		}
	}
	return nil
}

// clusterTarget returns the target of name (redis, redis2).
func (b *bench) clusterTarget(name string) *clusterTarget {
	n := 1
	if name == "redis2" {
		n = 2
	}
	return &clusterTarget{b: b, label: name, cfgs: b.nodeCfgs[:n]}
}

func (t *clusterTarget) start(ctx context.Context) error {
	t.dir = filepath.Join(t.b.work, fmt.Sprintf("%s-%d", t.label, time.Now().UnixNano()))
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	r, err := harness.StartRedis(ctx, t.dir)
	if err != nil {
		return err
	}
	t.redis = r
	for i, cfg := range t.cfgs {
		cfg.Cluster.RedisURL = r.URL()
		dir := filepath.Join(t.dir, fmt.Sprintf("node-%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.stop()
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		srv, err := harness.StartServer(sctx, t.b.bin, dir, cfg)
		cancel()
		if err != nil {
			t.stop()
			return fmt.Errorf("cluster node %d: %w", i+1, err)
		}
		t.nodes = append(t.nodes, srv)
	}
	return nil
}

func (t *clusterTarget) stop() {
	for i := len(t.nodes) - 1; i >= 0; i-- {
		if err := t.nodes[i].Stop(); err != nil {
			logf("cluster node %d stop: %v\n%s", i+1, err, t.nodes[i].LogTail(20))
		}
	}
	t.nodes = nil
	if t.redis != nil {
		t.redis.Stop()
		t.redis = nil
	}
}

func (t *clusterTarget) pid() int        { return t.nodes[0].PID() }
func (t *clusterTarget) sipAddr() string { return t.nodes[0].SIPAddr() }

func (t *clusterTarget) exited() bool {
	if t.redis == nil || t.redis.Exited() {
		return true
	}
	for _, n := range t.nodes {
		if n.Exited() {
			return true
		}
	}
	return false
}

func (t *clusterTarget) logTail(n int) string {
	var parts []string
	for i, s := range t.nodes {
		parts = append(parts, fmt.Sprintf("node %d:\n%s", i+1, s.LogTail(n)))
	}
	if t.redis != nil {
		parts = append(parts, "redis-server:\n"+harness.FileTail(t.redis.LogPath, n))
	}
	return strings.Join(parts, "\n")
}

// pgids are the process groups of every process of the configuration:
// the nodes and redis-server.
func (t *clusterTarget) pgids() []int {
	var p []int
	for _, n := range t.nodes {
		p = append(p, n.PID())
	}
	if t.redis != nil {
		p = append(p, t.redis.PID())
	}
	return p
}

// redisPID is redis-server's PID (its CPU is reported apart too).
func (t *clusterTarget) redisPID() int { return t.redis.PID() }

// sockets are the nodes' SIP addresses, with their PIDs.
func (t *clusterTarget) sockets() []socket {
	var s []socket
	for _, n := range t.nodes {
		s = append(s, socket{pid: n.PID(), addr: n.SIPAddr()})
	}
	return s
}

func (t *clusterTarget) pprofHTTP() string { return t.nodes[0].Config.HTTP }

// socket is a server process's SIP address.
type socket struct {
	pid  int
	addr string
}

// processes returns the process groups of t (a cluster: several).
func processes(t target) []int {
	if ct, ok := t.(*clusterTarget); ok {
		return ct.pgids()
	}
	return []int{t.pid()}
}

// sockets returns t's SIP sockets (a cluster of two: two).
func sockets(t target) []socket {
	if ct, ok := t.(*clusterTarget); ok {
		return ct.sockets()
	}
	return []socket{{pid: t.pid(), addr: t.sipAddr()}}
}

// spreadLoad runs a REGISTER load over the nodes of a cluster of several:
// one sipp per node, each with its half of the users (every other one),
// at rate/len(nodes), started together; their results add up.
func (b *bench) spreadLoad(ctx context.Context, base harness.SippRun, socks []socket, rate, n int) (loadResult, error) {
	k := len(socks)
	type out struct {
		res harness.SippResult
		err error
	}
	outs := make([]out, k)
	var wg sync.WaitGroup
	for i, s := range socks {
		run := base
		run.Target = s.addr
		run.Users = b.csvParts[i%len(b.csvParts)]
		run.Rate = rate / k
		run.Calls = n / k
		run.Limit = max(base.Limit/k, 100)
		run.Dir = filepath.Join(base.Dir, fmt.Sprintf("node-%d", i+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i].res, outs[i].err = harness.RunSipp(ctx, run)
		}()
	}
	wg.Wait()
	var lr loadResult
	var bad []string
	for i, o := range outs {
		if o.err != nil {
			return loadResult{}, fmt.Errorf("sipp to node %d: %w", i+1, o.err)
		}
		r := o.res
		lr.successful += r.Successful
		lr.failed += r.Failed
		lr.retrans += r.Retransmissions
		lr.achieved += r.CallRate
		lr.rtts = append(lr.rtts, r.RTTs...)
		lr.sippCPU += float64(r.CPU.Microseconds()) / 1000
		if r.ExitCode != 0 {
			bad = append(bad, fmt.Sprintf("sipp to node %d exit %d", i+1, r.ExitCode))
		}
	}
	lr.failures = strings.Join(bad, ", ")
	return lr, nil
}
