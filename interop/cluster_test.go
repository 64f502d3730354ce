//go:build interop

package interop

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/interop/harness"
)

// Cluster tests: sipwarden nodes as processes of the built binary, each on
// a loopback address of its own (127.0.0.2, .3, .4: the peers stay on
// 127.0.0.1, which must not be a node's address since the nodes trust
// each other's), with its own data dir, sharing a real redis-server
// (cluster/redistest: a loopback port, stopped by its PID).

// clusterNode is a sipwarden node of a test's cluster.
type clusterNode struct {
	*harness.Server
	dir    string
	killed bool // by the test: its end is expected
}

// startClusterNode starts node name on ip, sharing r, and stops it
// (SIGTERM, by its PID) when the test ends: a node that died on its own
// fails the test.
func startClusterNode(t *testing.T, r *redistest.Server, name, ip string, mod func(*harness.Config)) *clusterNode {
	t.Helper()
	dir := t.TempDir()
	cfg, err := harness.LoopbackConfigOn(filepath.Join(dir, "data"), ip)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Cluster = harness.Cluster{RedisURL: r.URL(), NodeName: name, Advertise: cfg.UDP}
	if mod != nil {
		mod(&cfg)
	}
	n := &clusterNode{dir: dir}
	n.start(t, cfg)
	t.Cleanup(func() {
		died := n.Exited() && !n.killed
		err := n.Stop()
		switch {
		case died:
			t.Errorf("node %s (pid %d) exited during the test: %v", name, n.PID(), err)
		case err != nil && !n.killed:
			t.Errorf("node %s (pid %d) did not exit cleanly on SIGTERM: %v", name, n.PID(), err)
		}
		if t.Failed() {
			t.Logf("node %s log %s, last lines:\n%s", name, n.LogPath, n.LogTail(30))
		}
	})
	return n
}

func (n *clusterNode) start(t *testing.T, cfg harness.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := harness.StartServer(ctx, serverBin, n.dir, cfg)
	if err != nil {
		t.Fatalf("start node %s: %v", cfg.Cluster.NodeName, err)
	}
	n.Server, n.killed = srv, false
}

// kill kills the node with SIGKILL (kill -9, by its PID).
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	n.killed = true
	if err := n.Kill(); err != nil {
		t.Fatal(err)
	}
}

// restart starts the node again with the same configuration and data dir.
func (n *clusterNode) restart(t *testing.T) {
	t.Helper()
	n.start(t, n.Config)
}

// waitCredentials waits up to 10 s for node to have every one of users
// (created through another node, replicated through Redis).
func waitCredentials(t *testing.T, node *clusterNode, users []harness.User) {
	t.Helper()
	var missing int
	err := harness.Poll(testCtx(t, 15*time.Second), 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		have := listCredentials(t, node.Server)
		missing = 0
		for _, u := range users {
			if have[u.Name] == "" {
				missing++
			}
		}
		return missing == 0, nil
	})
	if err != nil {
		t.Fatalf("%d of %d credentials missing on node %s: %v", missing, len(users), node.Config.Cluster.NodeName, err)
	}
}

// waitRegistered waits up to 10 s for node to list a binding of user.
func waitRegisteredOn(t *testing.T, node *clusterNode, user string) {
	t.Helper()
	err := harness.Poll(testCtx(t, 15*time.Second), 10*time.Second, 50*time.Millisecond, func() (bool, error) {
		regs, err := node.API().Registrations(testCtx(t, 5*time.Second), user)
		return err == nil && len(regs) == 1, nil
	})
	if err != nil {
		t.Fatalf("%s's binding on node %s: %v", user, node.Config.Cluster.NodeName, err)
	}
}

// TestClusterBaresipCallAcrossNodes: baresip registered over TCP on node
// A receives a call from baresip registered over TCP on node B. B holds
// no connection to the callee: it relays the INVITE to A, which trusts B
// as a live node (no proxy.trusted_peers) and sends it down the callee's
// connection. Both sides see the call established, both nodes list it,
// the caller hangs up and both see it end.
func TestClusterBaresipCallAcrossNodes(t *testing.T) {
	requireTools(t, "baresip")
	r := redistest.Start(t)
	// B first: A, announcing itself, then reads B among the live nodes.
	b := startClusterNode(t, r, "nodeB", "127.0.0.3", nil)
	a := startClusterNode(t, r, "nodeA", "127.0.0.2", nil)
	const caller, callee = "cluster-caller", "cluster-callee"
	pc, pe := randomPassword(), randomPassword()
	createCredentialCLI(t, a.Server, callee, pe, "")
	createCredentialCLI(t, b.Server, caller, pc, "")

	ce := startBaresip(t, a.Server, callee, pe, "tcp")
	ce.waitRegistered(t, callee, "tcp")
	cr := startBaresip(t, b.Server, caller, pc, "tcp")
	cr.waitRegistered(t, caller, "tcp")
	waitRegisteredOn(t, b, callee)
	if reg := oneRegistration(t, b.Server, callee); reg.Transport != "tcp" {
		t.Fatalf("the callee's binding seen from B: transport %q, want tcp", reg.Transport)
	}

	cr.command(t, "/dial sip:"+callee+"@sipwarden.test")
	cr.waitOutput(t, "established call to "+callee, baresipEstablished(caller, callee))
	ce.waitOutput(t, "established call from "+caller, baresipEstablished(callee, caller))
	up := time.Now()
	// Both nodes relay the call: B for the caller, A for the callee.
	for _, n := range []*clusterNode{a, b} {
		calls := liveCalls(t, n.Server)
		if len(calls) != 1 || !strings.Contains(calls[0].Caller, "sip:"+caller+"@") || !strings.Contains(calls[0].Callee, "sip:"+callee+"@") {
			t.Errorf("node %s lists %+v, want the one call from %s to %s", n.Config.Cluster.NodeName, calls, caller, callee)
		}
	}
	holdBaresipCall(up)
	cr.command(t, "/hangup")
	cr.waitOutput(t, "end of the call", baresipTerminated(callee))
	// The callee's end: A relays the BYE over a connection of its own to
	// the callee's Contact, and baresip may print "session closed" for
	// it before "terminated": only the end counts here. That the BYE was
	// answered, both nodes tell: each forgets the call once it is.
	if ok, why := waitLog(testCtx(t, 30*time.Second), ce.logPath, ce.proc, 20*time.Second,
		func(string) bool { return baresipTerminated(caller)(ce.output()) }, func(string) string { return "" }); !ok {
		t.Fatalf("baresip: no end of the call at the callee: %s", why)
	}
	waitNoCalls(t, a.Server)
	waitNoCalls(t, b.Server)
}

// TestClusterSippCallsAcrossNodes: a sipp UAS registers over TCP through
// node A; a sipp UAC calls it through node C, also over TCP. C holds no
// connection to the UAS: every INVITE goes C -> A (trusted as a live
// node) -> the UAS, over A's TCP connection to it. Every call completes on
// both sides, and neither node lists a call afterwards.
func TestClusterSippCallsAcrossNodes(t *testing.T) {
	requireTools(t, "sipp")
	const n = 200
	r := redistest.Start(t)
	c := startClusterNode(t, r, "nodeC", "127.0.0.4", nil)
	a := startClusterNode(t, r, "nodeA", "127.0.0.2", nil)
	callers := harness.MakeUsers("ccaller", 20)
	callee := harness.MakeUsers("ccallee", 1)[0]
	if err := c.API().CreateCredentials(testCtx(t, time.Minute), callers, 4); err != nil {
		t.Fatalf("create the callers through C: %v", err)
	}
	if err := a.API().CreateCredentials(testCtx(t, time.Minute), []harness.User{callee}, 1); err != nil {
		t.Fatalf("create the callee through A: %v", err)
	}
	csvPath := filepath.Join(t.TempDir(), "callers.csv")
	if err := harness.WriteUsersCSV(csvPath, callers); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := harness.RunCalls(testCtx(t, 2*time.Minute), harness.CallRun{
		UACScenario: scenario("uac_invite_digest.xml"), UASScenario: scenario("uas_answer.xml"),
		RegisterScenario: scenario("register_digest.xml"),
		Callers:          csvPath, Callee: callee, Transport: "t1",
		RegisterTarget: a.Config.TCP, Target: c.Config.TCP,
		Registered: func(ctx context.Context) error {
			// The UAS's binding, on A's connection, has reached C.
			return harness.Poll(ctx, 5*time.Second, 20*time.Millisecond, func() (bool, error) {
				regs, err := c.API().Registrations(ctx, callee.Name)
				return err == nil && len(regs) == 1 && regs[0].Transport == "tcp", nil
			})
		},
		Rate: 50, Calls: n, Limit: 50, RecvTimeout: 10 * time.Second, Timeout: 90 * time.Second,
		Dir: t.TempDir(), Hold: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("calls: %v", err)
	}
	t.Logf("%s in %v", res.Summary(), time.Since(start).Round(time.Millisecond))
	if uac := res.UAC; uac.ExitCode != 0 || uac.Failed != 0 || uac.Successful != n {
		t.Fatalf("sipp UAC: %s; want exit 0, %d successful, 0 failed\n%s", uac.Summary(), n, res.Diagnostics())
	}
	if res.UASExit != nil || res.UASFailed != 0 || res.UASSuccessful != n {
		t.Fatalf("sipp UAS: exit %v, %d successful, %d failed; want exit 0, %d successful, 0 failed\n%s",
			res.UASExit, res.UASSuccessful, res.UASFailed, n, res.Diagnostics())
	}
	waitNoCalls(t, c.Server)
	waitNoCalls(t, a.Server)
	// A took every INVITE from C, without challenging it.
	relayed := regexp.MustCompile(`msg=INVITE .*caller="" source=127\.0\.0\.4:\d+ transport=udp status=200 outcome=none`)
	if got := len(relayed.FindAllString(harness.FileTail(a.LogPath, 100000), -1)); got != n {
		t.Errorf("node A logged %d INVITEs from C answered 200 without authentication, want %d", got, n)
	}
}

// outcome is one flow of register_outcome.xml: a REGISTER flow's final
// status for user, when sipp received it.
type outcome struct {
	status, user string
	at           time.Time
}

var outcomeLine = regexp.MustCompile(`OUTCOME (\d{3}) (\S+) (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)`)

// readOutcomes reads the OUTCOME lines of a sipp log (-log_file).
func readOutcomes(t *testing.T, path string) []outcome {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []outcome
	for _, m := range outcomeLine.FindAllStringSubmatch(string(b), -1) {
		at, err := time.ParseInLocation("2006-01-02 15:04:05.999999", m[3]+" "+m[4], time.Local)
		if err != nil {
			t.Fatalf("sipp log %s: %q: %v", path, m[0], err)
		}
		out = append(out, outcome{status: m[1], user: m[2], at: at})
	}
	return out
}

// registerLoad runs register_outcome.xml for users through node's UDP
// listener at rate flows/s, in the background; wait returns its result,
// its outcomes and the run's error.
type registerLoad struct {
	wg   sync.WaitGroup
	res  harness.SippResult
	err  error
	logf string
}

func startRegisterLoad(ctx context.Context, t *testing.T, node *clusterNode, users []harness.User, rate int, recvTimeout time.Duration) *registerLoad {
	t.Helper()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "users.csv")
	if err := harness.WriteUsersCSV(csvPath, users); err != nil {
		t.Fatal(err)
	}
	l := &registerLoad{logf: filepath.Join(dir, "outcomes.log")}
	l.wg.Go(func() {
		l.res, l.err = harness.RunSipp(ctx, harness.SippRun{
			Scenario: scenario("register_outcome.xml"), Users: csvPath, Transport: "u1",
			Target: node.Config.UDP, Rate: rate, Calls: len(users), RecvTimeout: recvTimeout,
			Timeout: 60 * time.Second, Dir: filepath.Join(dir, "sipp"), BuffSize: 4194304,
			Extra: []string{"-trace_logs", "-log_file", l.logf},
		})
	})
	return l
}

func (l *registerLoad) wait(t *testing.T) (harness.SippResult, []outcome, error) {
	t.Helper()
	l.wg.Wait()
	return l.res, readOutcomes(t, l.logf), l.err
}

// bindingInRedis reports whether Redis holds a binding set of user.
func bindingInRedis(r *redistest.Server, user string) bool {
	return r.Do("EXISTS sipwarden:binds:"+user) == ":1"
}

// registeredUsers is the usernames node lists bindings of.
func registeredUsers(t *testing.T, node *clusterNode) map[string]bool {
	t.Helper()
	regs, err := node.API().Registrations(testCtx(t, 30*time.Second), "")
	if err != nil {
		t.Fatalf("registrations on %s: %v", node.Config.Cluster.NodeName, err)
	}
	out := map[string]bool{}
	for _, r := range regs {
		out[r.Username] = true
	}
	return out
}

// TestClusterNodeKill9: REGISTER load (sipp) through nodes A and B, with
// credentials created and deleted through A's API meanwhile, and A killed
// with SIGKILL in the middle of it, then started again on the same data
// dir. Afterwards, from A: every credential created before the load or
// acknowledged (201) during it is there, every deletion acknowledged (204)
// holds, and every binding answered 200 (by either node, its credential
// not deleted since; by A up to the moment of the kill, none excused) is
// in Redis and listed by A.
func TestClusterNodeKill9(t *testing.T) {
	requireTools(t, "sipp")
	r := redistest.Start(t)
	b := startClusterNode(t, r, "nodeB", "127.0.0.3", nil)
	a := startClusterNode(t, r, "nodeA", "127.0.0.2", nil)

	// Before the load: 200 users, created through either node, registered
	// through A; 20 of them deleted through A.
	pre := harness.MakeUsers("pre", 200)
	if err := a.API().CreateCredentials(testCtx(t, time.Minute), pre[:100], 4); err != nil {
		t.Fatal(err)
	}
	if err := b.API().CreateCredentials(testCtx(t, time.Minute), pre[100:], 4); err != nil {
		t.Fatal(err)
	}
	waitCredentials(t, a, pre)
	res, outs, err := startRegisterLoad(testCtx(t, time.Minute), t, a, pre, 200, 5*time.Second).wait(t)
	if err != nil || res.Failed != 0 || len(outs) != len(pre) {
		t.Fatalf("registering the first users through A: %s, %d outcomes, %v\n%s", res.Summary(), len(outs), err, res.Diagnostics())
	}
	acked := map[string]bool{}
	for _, o := range outs {
		if o.status != "200" {
			t.Fatalf("registering %s through A before the load: %s", o.user, o.status)
		}
		acked[o.user] = true
	}
	ids := listCredentials(t, a.Server)
	deleted := map[string]bool{}
	for _, u := range pre[:20] {
		if code, err := apiJSON(testCtx(t, 10*time.Second), a.Server, "DELETE", "/v1/credentials/"+ids[u.Name], nil, nil); code != 204 {
			t.Fatalf("delete %s through A: %d %v", u.Name, code, err)
		}
		deleted[u.Name] = true
	}

	// The load: 400 REGISTER flows through each node at 100/s, while A
	// creates credentials and deletes some of the first users; A is
	// killed after a second, once it has acknowledged a few writes.
	load := harness.MakeUsers("load", 800)
	if err := b.API().CreateCredentials(testCtx(t, time.Minute), load, 8); err != nil {
		t.Fatal(err)
	}
	waitCredentials(t, a, load)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadStart := time.Now()
	loadA := startRegisterLoad(ctx, t, a, load[:400], 100, 2*time.Second)
	loadB := startRegisterLoad(ctx, t, b, load[400:], 100, 2*time.Second)
	var (
		mu        sync.Mutex
		created   = map[string]bool{}
		delDuring = map[string]bool{}
		// unsure: a deletion sent to A and not answered (A was killed
		// meanwhile): done or not, either is right.
		unsure     = map[string]bool{}
		writes     sync.WaitGroup
		extra      = harness.MakeUsers("made", 1000)
		toDelete   = pre[20:120]
		writesDone = make(chan struct{})
	)
	writes.Go(func() {
		defer close(writesDone)
		for i, u := range extra {
			if ctx.Err() != nil {
				return
			}
			code, _ := apiJSON(ctx, a.Server, "POST", "/v1/credentials", map[string]any{"username": u.Name, "password": u.Password}, nil)
			if i < len(toDelete) {
				d := toDelete[i]
				c, _ := apiJSON(ctx, a.Server, "DELETE", "/v1/credentials/"+ids[d.Name], nil, nil)
				mu.Lock()
				if c == 204 {
					delDuring[d.Name] = true
				} else {
					unsure[d.Name] = true
				}
				mu.Unlock()
			}
			if code == 201 {
				mu.Lock()
				created[u.Name] = true
				mu.Unlock()
			}
			if code == 0 {
				return // A is gone
			}
		}
	})
	time.Sleep(time.Second)
	if err := harness.Poll(ctx, 2*time.Second, 20*time.Millisecond, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(created) >= 5 && len(delDuring) >= 1, nil
	}); err != nil {
		t.Fatalf("A acknowledged too few API writes to test anything: %v", err)
	}
	killedAt := time.Now()
	a.kill(t)
	writes.Wait()
	resA, outsA, errA := loadA.wait(t)
	resB, outsB, errB := loadB.wait(t)
	if errB != nil || resB.Failed != 0 {
		t.Fatalf("load through B, which stayed up: %s, %v\n%s", resB.Summary(), errB, resB.Diagnostics())
	}
	if resA.Failed == 0 {
		t.Fatalf("load through A: %s: every flow answered, the kill came after the load", resA.Summary())
	}
	t.Logf("through A (killed after %v): %s (%v); through B: %s", killedAt.Sub(loadStart).Round(time.Millisecond), resA.Summary(), errA, resB.Summary())
	mu.Lock()
	for name := range delDuring {
		deleted[name] = true
	}
	nCreated := len(created)
	mu.Unlock()
	// A answers 200 only once Redis holds the binding (group commit,
	// cluster/bindings_commit.go): no 200 is excused, not even one sipp
	// received just before the kill.
	var fromA, lastMoment int
	for _, o := range outsA {
		if o.status != "200" {
			continue
		}
		acked[o.user] = true
		fromA++
		if o.at.After(killedAt.Add(-250 * time.Millisecond)) {
			lastMoment++ // excused before the group commit
		}
	}
	for _, o := range outsB {
		if o.status != "200" {
			t.Errorf("load through B: %s answered %s", o.user, o.status)
		}
		acked[o.user] = true
	}
	if fromA == 0 {
		t.Fatal("no REGISTER answered 200 by A during the load: the kill came too early")
	}

	a.restart(t)
	have := listCredentials(t, a.Server)
	for _, u := range append(append([]harness.User{}, pre...), load...) {
		if _, ok := have[u.Name]; ok == deleted[u.Name] && !unsure[u.Name] {
			t.Errorf("credential %s seen from A after the restart: present %v, want %v", u.Name, ok, !deleted[u.Name])
		}
	}
	for name := range created {
		if _, ok := have[name]; !ok {
			t.Errorf("credential %s, created through A (201) before the kill, is gone", name)
		}
	}
	// Deleted credentials lose their bindings on every node; B removes
	// those whose deletion A could not finish.
	var bound map[string]bool
	wrong := func(user string) bool {
		if unsure[user] {
			return false
		}
		return bound[user] == deleted[user] || bindingInRedis(r, user) == deleted[user]
	}
	err = harness.Poll(testCtx(t, 15*time.Second), 10*time.Second, 100*time.Millisecond, func() (bool, error) {
		bound = registeredUsers(t, a)
		for user := range acked {
			if wrong(user) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		for user := range acked {
			if wrong(user) {
				t.Errorf("binding of %s (answered 200, credential deleted: %v): listed by A %v, in redis %v",
					user, deleted[user], bound[user], bindingInRedis(r, user))
			}
		}
	}
	t.Logf("after the restart: %d credentials, %d users bound; %d REGISTERs answered 200 by A before the kill (%d in its last 250 ms), %d credentials created and %d deleted through it",
		len(have), len(bound), fromA, lastMoment, nCreated, len(delDuring))
}

// TestClusterRedisOutageUnderSippLoad: sipp REGISTER load through nodes A
// and B (50 flows/s each) while redis-server is frozen (SIGSTOP) for 5 s.
// Every flow ends with 200, 401 or 503 with Retry-After (the scenario
// fails the call otherwise); 503s only during the outage (and the 3 s
// after it); no 200 while Redis is frozen; 200s again
// within 3 s of Redis answering, with no node restarted; and every
// REGISTER answered 200 has its binding in Redis afterwards.
func TestClusterRedisOutageUnderSippLoad(t *testing.T) {
	requireTools(t, "sipp")
	r := redistest.Start(t)
	b := startClusterNode(t, r, "nodeB", "127.0.0.3", nil)
	a := startClusterNode(t, r, "nodeA", "127.0.0.2", nil)
	pids := []int{a.PID(), b.PID()}
	users := harness.MakeUsers("out", 1000)
	if err := a.API().CreateCredentials(testCtx(t, time.Minute), users, 8); err != nil {
		t.Fatal(err)
	}
	waitCredentials(t, b, users)

	ctx := testCtx(t, 90*time.Second)
	loadA := startRegisterLoad(ctx, t, a, users[:500], 50, 5*time.Second)
	loadB := startRegisterLoad(ctx, t, b, users[500:], 50, 5*time.Second)
	time.Sleep(2 * time.Second)
	pausedAt := time.Now()
	r.Pause()
	time.Sleep(5 * time.Second)
	r.Resume()
	resumedAt := time.Now()
	var all []outcome
	for i, l := range []*registerLoad{loadA, loadB} {
		res, outs, err := l.wait(t)
		t.Logf("through node %c: %s", 'A'+i, res.Summary())
		if err != nil || res.Failed != 0 || len(outs) != 500 {
			t.Errorf("load through node %c: %s, %d outcomes, %v (a failed call is an answer other than 200, 401 or 503 with Retry-After, or none)\n%s",
				'A'+i, res.Summary(), len(outs), err, res.Diagnostics())
		}
		all = append(all, outs...)
	}
	count := map[string]int{}
	var firstAfter time.Time
	for _, o := range all {
		count[o.status]++
		if o.status == "503" && (o.at.Before(pausedAt) || o.at.After(resumedAt.Add(3*time.Second))) {
			t.Errorf("%s answered 503 at %v, outside the outage (%v to %v) and the 3 s after it", o.user, o.at, pausedAt, resumedAt)
		}
		if o.status != "200" {
			continue
		}
		if o.at.After(pausedAt.Add(200*time.Millisecond)) && o.at.Before(resumedAt) {
			t.Errorf("%s answered 200 at %v, while redis was frozen (%v to %v)", o.user, o.at, pausedAt, resumedAt)
		}
		if o.at.After(resumedAt) && (firstAfter.IsZero() || o.at.Before(firstAfter)) {
			firstAfter = o.at
		}
	}
	t.Logf("answers: %v; first 200 %v after redis came back", count, firstAfter.Sub(resumedAt).Round(time.Millisecond))
	if count["503"] == 0 || count["200"] == 0 {
		t.Errorf("answers %v: want 200s and 503s", count)
	}
	if firstAfter.IsZero() || firstAfter.Sub(resumedAt) > 3*time.Second {
		t.Errorf("first 200 after redis came back at %v: %v after, want within 3 s", firstAfter, firstAfter.Sub(resumedAt))
	}
	for i, n := range []*clusterNode{a, b} {
		if n.Exited() || n.PID() != pids[i] {
			t.Errorf("node %s restarted or exited", n.Config.Cluster.NodeName)
		}
	}
	var missing []string
	err := harness.Poll(testCtx(t, 15*time.Second), 10*time.Second, 200*time.Millisecond, func() (bool, error) {
		missing = missing[:0]
		for _, o := range all {
			if o.status == "200" && !bindingInRedis(r, o.user) {
				missing = append(missing, o.user)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		t.Errorf("%d REGISTERs answered 200 have no binding in redis after it came back: %v", len(missing), missing)
	}
}
