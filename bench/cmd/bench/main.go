// Command bench measures sipwarden's throughput with sipp and compares it
// with Kamailio's on the same machine (issue 7), per scenario (-scenarios):
//
//   - register: the highest rate of digest REGISTER -> 401 -> REGISTER ->
//     200 flows per second with zero failed flows;
//   - calls: the highest rate of calls through the proxy (sipp UAC ->
//     server -> sipp UAS registered as a user: INVITE, 407, ACK, INVITE
//     with Proxy-Authorization, 100, 180, 200, ACK, BYE, 200) per second
//     with zero failed calls (calls.go);
//
// over UDP and TCP, with the server's CPU time per flow, the flows' 99th
// percentile time and the server's peak memory, for each server of
// -servers: sipwarden (built from ./cmd/sipwarden) and Kamailio (Debian's
// package, bench/kamailio/kamailio.cfg; target.go).
//
//	go run ./bench/cmd/bench                         (make bench: both servers, every scenario)
//	go run ./bench/cmd/bench -servers sipwarden -scenarios calls -transports udp -reps 1
//	go run ./bench/cmd/bench -servers sipwarden -sustain 5000 -duration 2m -scenarios register -transports udp
//
// It builds ./cmd/sipwarden, starts it on loopback with persistence on and
// log level warn, creates -users credentials through the API, writes the
// same users into Kamailio's htable source, and then -reps times, per
// scenario and transport, searches the rate of each server in turn
// (sipwarden, kamailio, sipwarden, ...): the first search of a point starts
// at -start flows/s (-call-start for calls) and doubles until a rate
// fails; later searches start at the median of the rates found so far and
// go up by -refine (1.2x). Each search then bisects until the bracket is
// within -resolution. Each step runs -duration of load (-call-duration for
// calls; -m = rate x duration) against a server started for it. A rate
// passes only with sipp exit 0 and zero failed flows (for calls: on both
// sides), retransmissions at most 1% of the flows, a p99 flow time under
// 500 ms and an achieved rate of at least 90% of the target. The table of
// medians goes to stdout, progress to stderr.
//
// With -sustain RATE it runs instead one step per server, scenario and
// transport at RATE for -duration and reports the server's memory over
// time (the memory-under-load check).
//
// sipp and the server share the machine's cores: the figures are those of
// the pair, on this machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

type options struct {
	users       int
	duration    time.Duration
	reps        int
	start, max  int
	resolution  float64
	refine      float64
	transports  []string
	scenarios   []string
	servers     []string
	callStart   int
	callMax     int
	callDur     time.Duration
	callHold    time.Duration
	budget      time.Duration
	settle      time.Duration
	bin         string
	kamCfg      string
	kamShm      int
	out         string
	keep        bool
	maxRetrans  float64
	maxP99      int
	minAchieved float64
	sustain     int
	profile     string
	traceSecs   int
	overload    float64
	overloadDur time.Duration
	tail        float64
	cluster     bool
}

func main() {
	var o options
	var transports, scenarios, servers string
	flag.IntVar(&o.users, "users", 10000, "credentials created (and registered round-robin by sipp)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load per REGISTER step (with -sustain: the whole run)")
	flag.IntVar(&o.reps, "reps", 3, "searches per scenario, transport and server; the table gives their medians")
	flag.IntVar(&o.start, "start", 12000, "first rate of the first REGISTER search, flows/s")
	flag.IntVar(&o.max, "max", 80000, "highest rate tried, flows/s")
	flag.Float64Var(&o.resolution, "resolution", 0.1, "stop bisecting when the bracket is within this fraction of the passing rate")
	flag.Float64Var(&o.refine, "refine", 1.2, "later searches start at the median found so far and go up by this factor")
	flag.StringVar(&transports, "transports", "udp,tcp", "transports measured: udp (sipp -t u1) and tcp (-t t1, one connection)")
	flag.StringVar(&scenarios, "scenarios", "register,calls", "what is measured: register (REGISTER digest flows), calls (authenticated calls through the proxy)")
	flag.StringVar(&servers, "servers", "sipwarden,kamailio", "servers measured, alternated: sipwarden, kamailio, redis (a sipwarden node on Redis), redis2 (two nodes on one Redis; register only)")
	flag.IntVar(&o.callStart, "call-start", 1600, "first rate of the first calls search, calls/s")
	flag.IntVar(&o.callMax, "call-max", 9600, "highest rate of calls tried, calls/s")
	flag.DurationVar(&o.callDur, "call-duration", 10*time.Second, "load per calls step")
	flag.DurationVar(&o.callHold, "call-hold", time.Second, "how long each call lasts, ACK to BYE (sipp -d)")
	flag.DurationVar(&o.budget, "budget", 75*time.Minute, "stop starting searches after this (the table says so)")
	flag.DurationVar(&o.settle, "settle", 500*time.Millisecond, "pause between steps")
	flag.StringVar(&o.bin, "bin", "", "sipwarden binary to measure (default: build ./cmd/sipwarden)")
	flag.StringVar(&o.kamCfg, "kamailio-cfg", "", "Kamailio configuration (default: bench/kamailio/kamailio.cfg)")
	flag.IntVar(&o.kamShm, "kamailio-shm", 512, "Kamailio's shared memory, MB (-m); only what it touches counts in its memory figure")
	flag.StringVar(&o.out, "out", "", "also write the results (markdown) to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, sipp traces)")
	flag.Float64Var(&o.maxRetrans, "max-retrans", 0.01, "retransmissions allowed, as a fraction of flows")
	flag.IntVar(&o.maxP99, "max-p99-ms", 500, "p99 flow time allowed, ms (exclusive)")
	flag.Float64Var(&o.minAchieved, "min-achieved", 0.9, "achieved/target rate required")
	flag.IntVar(&o.sustain, "sustain", 0, "instead of searching, run this rate for -duration (-call-duration for calls) and report memory over time")
	flag.Float64Var(&o.overload, "overload", 1.5, "after the searches, drive each server at this multiple of its own maximum (0: no overload row)")
	flag.DurationVar(&o.overloadDur, "overload-duration", 30*time.Second, "how long each overload run lasts")
	flag.Float64Var(&o.tail, "tail", 0.8, "after the searches, run both servers at this multiple of Kamailio's maximum and compare p99 (0: no tail row)")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of sipwarden over each of its steps into this directory (go tool pprof)")
	flag.IntVar(&o.traceSecs, "trace", 0, "with -profile: also an execution trace of this many seconds from the middle of each step (go tool trace)")
	flag.BoolVar(&o.cluster, "cluster", false, "the cluster's rows instead (issue 14): REGISTER over UDP, one node on bbolt vs one node on Redis vs two nodes on Redis (same as -servers sipwarden,redis,redis2 -scenarios register -transports udp)")
	flag.Parse()
	if o.cluster {
		servers, scenarios, transports = "sipwarden,redis,redis2", "register", "udp"
	}
	o.transports = strings.Split(transports, ",")
	o.scenarios = strings.Split(scenarios, ",")
	o.servers = strings.Split(servers, ",")
	for _, s := range o.scenarios {
		if s != "register" && s != "calls" {
			fmt.Fprintf(os.Stderr, "bench: -scenarios: %q is neither register nor calls\n", s)
			os.Exit(2)
		}
	}
	for _, t := range o.transports {
		if t != "udp" && t != "tcp" {
			fmt.Fprintf(os.Stderr, "bench: -transports: %q is neither udp nor tcp\n", t)
			os.Exit(2)
		}
	}
	for _, s := range o.servers {
		switch s {
		case "sipwarden", "kamailio":
		case "redis", "redis2":
			if slices.Contains(o.scenarios, "calls") {
				fmt.Fprintf(os.Stderr, "bench: -servers %s: the register scenario only\n", s)
				os.Exit(2)
			}
		default:
			fmt.Fprintf(os.Stderr, "bench: -servers: %q is none of sipwarden, kamailio, redis, redis2\n", s)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// step is one rate tried.
type step struct {
	rate     int
	pass     bool
	why      string
	flows    int
	ok       int           // successful flows
	elapsed  time.Duration // from sipp's start to its end, the last flow's
	achieved float64
	retrans  int
	p99      int
	// queueP99 is sipwarden's own figure for the time requests waited for
	// a stateless worker, ms (queueP99); -1 for other servers.
	queueP99  float64
	cpuMSFlow float64 // server (every process of it; a cluster's nodes and redis-server)
	redisCPU  float64 // of which redis-server's (cluster targets)
	sippCPU   float64 // sipp's CPU ms per flow
	// rssMB is the server's peak memory during the step: sipwarden's
	// VmHWM; for Kamailio the peak of its processes' summed PSS (sampled
	// every 100 ms), shared memory counted once.
	rssMB float64
	// UDP datagrams dropped for a full receive buffer during the step: by
	// the server's socket, and by every other socket (sipp's).
	serverDrops, otherDrops int64
}

// search is one rate search of one scenario, transport and server.
type search struct {
	transport string
	server    string
	best      *step // highest passing step; nil when none passed
	steps     []step
	capped    bool // every rate up to the maximum passed
}

type bench struct {
	o        options
	work     string
	bin      string
	cfg      harness.Config
	csv      string
	callee   harness.User // called in the calls scenario
	targets  []target
	cur      target // the server of the current step
	deadline time.Time
	nstep    int
	// The cluster targets' (cluster.go): their nodes' configurations and
	// the users split between two nodes.
	nodeCfgs []harness.Config
	csvParts []string
}

// key of a measured point.
func key(scenario, transport, server string) string {
	return scenario + "/" + transport + "/" + server
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	b := &bench{o: o, deadline: began.Add(o.budget)}
	if _, err := exec.LookPath("sipp"); err != nil {
		return fmt.Errorf("sipp not found: run scripts/install-peers.sh")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "sipwarden-bench-")
	if err != nil {
		return err
	}
	b.work = work
	if o.keep {
		logf("work directory %s (kept)", work)
	} else {
		defer os.RemoveAll(work)
	}
	users := harness.MakeUsers("bench", o.users)
	b.callee = harness.MakeUsers("callee", 1)[0]
	all := append(slices.Clone(users), b.callee)
	b.csv = filepath.Join(work, "users.csv")
	if err := harness.WriteUsersCSV(b.csv, users); err != nil {
		return err
	}
	defer func() {
		if b.cur != nil {
			b.cur.stop()
		}
	}()
	for _, name := range o.servers {
		switch name {
		case "sipwarden":
			t, err := b.setupSipwarden(ctx, root, all)
			if err != nil {
				return err
			}
			b.targets = append(b.targets, t)
		case "kamailio":
			t, err := b.setupKamailio(root, all)
			if err != nil {
				return err
			}
			b.targets = append(b.targets, t)
		case "redis", "redis2":
			if err := b.build(ctx, root); err != nil {
				return err
			}
			if b.nodeCfgs == nil {
				if err := b.setupCluster(ctx, all, users); err != nil {
					return err
				}
			}
			b.targets = append(b.targets, b.clusterTarget(name))
		}
	}

	var scens []*scenario
	for _, name := range o.scenarios {
		scens = append(scens, b.scenario(name))
	}
	if o.sustain > 0 {
		return b.sustainRuns(ctx, scens)
	}
	results := map[string][]search{}
	truncated := false
outer:
	for rep := range o.reps {
		for _, sc := range scens {
			for _, tr := range o.transports {
				for _, t := range b.targets {
					if time.Now().After(b.deadline) {
						truncated = true
						logf("budget of %v spent: no more searches", o.budget)
						break outer
					}
					k := key(sc.name, tr, t.name())
					start, factor := sc.start, 2.0
					if prev := results[k]; len(prev) > 0 {
						var rates []float64
						for _, s := range prev {
							if s.best != nil {
								rates = append(rates, float64(s.best.rate))
							}
						}
						if len(rates) > 0 {
							start, factor = roundRate(int(median(rates))), o.refine
						}
					}
					logf("%s %s %s search %d/%d from %d/s", sc.name, tr, t.name(), rep+1, o.reps, start)
					s, err := b.search(ctx, sc, tr, t, start, factor)
					if err != nil {
						return err
					}
					results[k] = append(results[k], s)
				}
			}
		}
	}
	var over, tail []overload
	if o.tail > 0 && !truncated {
		var err error
		if tail, err = b.tailRuns(ctx, scens, results); err != nil {
			return err
		}
	}
	if o.overload > 0 && !truncated {
		var err error
		if over, err = b.overloadRuns(ctx, scens, results); err != nil {
			return err
		}
	}
	var report strings.Builder
	report.WriteString(b.report(scens, results, tail, over, truncated, time.Since(began)))
	fmt.Print(report.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// setupSipwarden builds the server (unless -bin), starts it once and
// creates the users' credentials through its API (they persist in its data
// dir for every later start).
func (b *bench) setupSipwarden(ctx context.Context, root string, users []harness.User) (target, error) {
	if err := b.build(ctx, root); err != nil {
		return nil, err
	}
	var err error
	b.cfg, err = harness.LoopbackConfig(filepath.Join(b.work, "data"))
	if err != nil {
		return nil, err
	}
	b.cfg.LogLevel = "warn"
	b.cfg.MaxQueueDelay = "" // the server's default: the overload behaviour is measured
	b.cfg.UDPBuffer = 4194304
	b.cfg.FlushInterval = "1s"
	b.cfg.Pprof = b.o.profile != ""
	t := &sipwardenTarget{b: b}
	if err := t.start(ctx); err != nil {
		return nil, err
	}
	defer t.stop()
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := t.srv.API().CreateCredentials(cctx, users, 16); err != nil {
		return nil, fmt.Errorf("create %d credentials: %w", len(users), err)
	}
	logf("sipwarden: created %d credentials through the API in %v", len(users), time.Since(t0).Round(time.Millisecond))
	return t, nil
}

// build builds ./cmd/sipwarden once, unless -bin names the binary.
func (b *bench) build(ctx context.Context, root string) error {
	if b.bin != "" {
		return nil
	}
	b.bin = b.o.bin
	if b.bin != "" {
		return nil
	}
	logf("building ./cmd/sipwarden")
	var err error
	b.bin, err = harness.BuildServer(ctx, root, b.work)
	return err
}

// setupKamailio writes Kamailio's htable source from the same users and
// checks that it starts.
func (b *bench) setupKamailio(root string, users []harness.User) (target, error) {
	bin, err := kamailioPath()
	if err != nil {
		return nil, err
	}
	cfg := b.o.kamCfg
	if cfg == "" {
		cfg = filepath.Join(root, "bench", "kamailio", "kamailio.cfg")
	}
	if cfg, err = filepath.Abs(cfg); err != nil {
		return nil, err
	}
	port, err := harness.FreeSIPPort()
	if err != nil {
		return nil, err
	}
	t := &kamailioTarget{
		b: b, bin: bin, cfg: cfg, dbDir: filepath.Join(b.work, "kamailio-db"),
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), shm: b.o.kamShm,
	}
	if err := writeKamailioDB(t.dbDir, users); err != nil {
		return nil, err
	}
	logf("kamailio: %s, %s, %d users in %s", bin, cfg, len(users), t.dbDir)
	return t, nil
}

// search finds the highest passing rate of one scenario, transport and
// server: from start up by factor until a rate fails (down by it while
// the first rate fails), then bisecting.
func (b *bench) search(ctx context.Context, sc *scenario, transport string, t target, start int, factor float64) (search, error) {
	s := search{transport: transport, server: t.name()}
	try := func(rate int) (bool, error) {
		st, err := b.step(ctx, sc, transport, t, rate)
		if err != nil {
			return false, err
		}
		s.steps = append(s.steps, st)
		if st.pass && (s.best == nil || st.rate > s.best.rate) {
			best := st
			s.best = &best
		}
		return st.pass, nil
	}
	pass, fail := 0, 0
	// Going up until a rate fails.
	for rate := min(start, sc.max); ; rate = min(roundRate(int(float64(rate)*factor)), sc.max) {
		ok, err := try(rate)
		if err != nil {
			return s, err
		}
		if !ok {
			fail = rate
			break
		}
		pass = rate
		if rate >= sc.max {
			break
		}
	}
	s.capped = fail == 0
	// Going down when even the first rate failed.
	for i := 0; pass == 0 && i < 4; i++ {
		rate := roundRate(int(float64(fail) / factor))
		ok, err := try(rate)
		if err != nil {
			return s, err
		}
		if ok {
			pass = rate
		} else {
			fail = rate
		}
	}
	// Bisect the bracket (bounded).
	for i := 0; pass > 0 && fail > 0 && i < 4 && float64(fail-pass) > b.o.resolution*float64(pass); i++ {
		rate := roundRate((pass + fail) / 2)
		ok, err := try(rate)
		if err != nil {
			return s, err
		}
		if ok {
			pass = rate
		} else {
			fail = rate
		}
	}
	if s.best != nil {
		logf("%s %s %s search: %d %s/s passes, %d fails", sc.name, transport, t.name(), s.best.rate, sc.unit, fail)
	} else {
		logf("%s %s %s search: no rate passed", sc.name, transport, t.name())
	}
	return s, nil
}

// roundRate rounds to 50 flows/s: sipp rates are integers anyway and the
// table reads better.
func roundRate(r int) int { return max(50, (r+25)/50*50) }

// scenario is one thing measured: a sipp load at a given rate.
type scenario struct {
	name       string // register, calls
	unit       string // flows, calls
	title      string // of its table
	flow       string // what one flow is, for the table's text
	start, max int    // rates of a search
	duration   time.Duration
	// load runs n flows at rate (over dur) against b.cur, its files under
	// dir.
	load func(ctx context.Context, transport string, rate, n int, dur time.Duration, dir string) (loadResult, error)
}

// loadResult is what the sipp side of a step reported.
type loadResult struct {
	successful, failed int
	// failures says why the run is not a clean one beyond the counts
	// (sipp exit status, the UAS side); "" when there is nothing.
	failures string
	retrans  int
	achieved float64 // flows/s
	rtts     []int   // ms, one per sampled flow
	sippCPU  float64 // ms, every sipp process of the step
}

func (b *bench) scenario(name string) *scenario {
	if name == "calls" {
		return b.callsScenario()
	}
	return &scenario{
		name: "register", unit: "flows", title: "REGISTER",
		flow:  "digest MD5 qop=auth flows (REGISTER, 401, REGISTER, 200)",
		start: b.o.start, max: b.o.max, duration: b.o.duration,
		load: b.registerLoad,
	}
}

// registerLoad runs n REGISTER flows of the users, round-robin.
func (b *bench) registerLoad(ctx context.Context, transport string, rate, n int, dur time.Duration, dir string) (loadResult, error) {
	run := harness.SippRun{
		Scenario:    scenarioPath("register_digest.xml"),
		Users:       b.csv,
		Target:      b.cur.sipAddr(),
		Rate:        rate,
		Calls:       n,
		Limit:       max(2*rate, 200), // two seconds' worth of flows in flight
		RecvTimeout: 5 * time.Second,
		Timeout:     3*dur + 30*time.Second,
		Dir:         dir,
		RTT:         true,
		RTTFreq:     rttFreq,
		// No default behaviours: sipp would otherwise "abort" a failed
		// REGISTER flow (a timeout, a 503) by sending a BYE, which no
		// phone does and which loads the server under overload with
		// requests that are not part of the test.
		Extra: []string{"-nd"},
	}
	if transport == "udp" {
		run.Transport = "u1"
		run.BuffSize = 4194304
	} else {
		run.Transport = "t1"
	}
	if socks := sockets(b.cur); len(socks) > 1 {
		return b.spreadLoad(ctx, run, socks, rate, n)
	}
	res, err := harness.RunSipp(ctx, run)
	if err != nil {
		return loadResult{}, err
	}
	lr := loadResult{
		successful: res.Successful, failed: res.Failed, retrans: res.Retransmissions,
		achieved: res.CallRate, rtts: res.RTTs, sippCPU: float64(res.CPU.Microseconds()) / 1000,
	}
	if res.ExitCode != 0 {
		lr.failures = fmt.Sprintf("sipp exit %d", res.ExitCode)
	}
	return lr, nil
}

// rttFreq is sipp's -rtt_freq: a step's flow count is a multiple of it.
const rttFreq = 100

// step runs one rate for the scenario's duration against a server started
// for it: steps do not inherit each other's backlog, lingering
// transactions or heap, and the server's peak memory is that of the step.
func (b *bench) step(ctx context.Context, sc *scenario, transport string, t target, rate int) (step, error) {
	return b.stepFor(ctx, sc, transport, t, rate, sc.duration, 100*time.Millisecond, nil)
}

func (b *bench) stepFor(ctx context.Context, sc *scenario, transport string, t target, rate int, dur, sampleEvery time.Duration, sample func(kb int64)) (step, error) {
	b.nstep++
	st := step{rate: rate}
	if b.cur != nil {
		b.cur.stop()
	}
	b.cur = t
	if err := t.start(ctx); err != nil {
		return st, err
	}
	n := int(math.Ceil(float64(rate)*dur.Seconds()/rttFreq)) * rttFreq
	dir := filepath.Join(b.work, fmt.Sprintf("step-%03d-%s-%s-%s-%d", b.nstep, t.name(), sc.name, transport, rate))
	pid := t.pid()
	procs := processes(t)
	cpu0 := groupsCPU(procs)
	var redis0 float64
	if ct, ok := t.(*clusterTarget); ok {
		redis0, _ = harness.CPUTime(ct.redisPID())
	}
	rcvbuf0, _ := harness.UDPRcvbufErrors()
	mem := sampleMemory(procs, sampleEvery, sample)
	prof := b.startProfile(ctx, t, fmt.Sprintf("%s-%s-%s-%d", t.name(), sc.name, transport, rate), dur)
	began := time.Now()
	res, err := sc.load(ctx, transport, rate, n, dur, dir)
	st.elapsed = time.Since(began)
	peakMB := mem.stop(procs)
	prof()
	st.queueP99 = -1
	if pt, ok := t.(interface{ pprofHTTP() string }); ok {
		st.queueP99 = queueP99(ctx, pt.pprofHTTP())
	}
	if ctx.Err() != nil {
		return st, ctx.Err()
	}
	tag := fmt.Sprintf("%s %s %s %6d/s", t.name(), sc.name, transport, rate)
	if err != nil {
		// sipp killed at its deadline, or without statistics: a failed step.
		st.why = "sipp: " + firstLine(err.Error())
		logf("  %s FAIL %s (%s)", tag, st.why, dir)
		if t.exited() {
			return st, fmt.Errorf("%s exited during the %s %s step at %d/s:\n%s", t.name(), sc.name, transport, rate, t.logTail(30))
		}
		return st, b.pause(ctx)
	}
	cpu1 := groupsCPU(procs)
	var redisMS float64
	if ct, ok := t.(*clusterTarget); ok {
		redis1, _ := harness.CPUTime(ct.redisPID())
		redisMS = redis1 - redis0
	}
	if transport == "udp" {
		// The server's socket is new with the server: its count is the step's.
		rcvbuf1, _ := harness.UDPRcvbufErrors()
		for _, s := range sockets(t) {
			d, _ := harness.UDPSocketDrops(s.pid, s.addr)
			st.serverDrops += d
		}
		st.otherDrops = max(0, rcvbuf1-rcvbuf0-st.serverDrops)
	}
	st.flows = res.successful + res.failed
	st.ok = res.successful
	st.achieved = res.achieved
	st.retrans = res.retrans
	st.p99 = harness.Percentile(res.rtts, 99)
	if st.flows > 0 {
		st.cpuMSFlow = (cpu1 - cpu0) / float64(st.flows)
		st.redisCPU = redisMS / float64(st.flows)
		st.sippCPU = res.sippCPU / float64(st.flows)
	}
	st.rssMB = peakMB
	if t.name() == "sipwarden" {
		if kb, err := harness.MemoryKB(pid, "VmHWM"); err == nil {
			st.rssMB = max(st.rssMB, float64(kb)/1024)
		}
	}
	var why []string
	if res.failures != "" || res.failed != 0 || res.successful != n {
		w := fmt.Sprintf("%d/%d successful, %d failed", res.successful, n, res.failed)
		if res.failures != "" {
			w += " (" + res.failures + ")"
		}
		why = append(why, w)
	}
	if float64(res.retrans) > b.o.maxRetrans*float64(n) {
		why = append(why, fmt.Sprintf("%d retransmissions", res.retrans))
	}
	if st.p99 < 0 || st.p99 >= b.o.maxP99 {
		why = append(why, fmt.Sprintf("p99 %d ms (%d samples)", st.p99, len(res.rtts)))
	}
	if res.achieved < b.o.minAchieved*float64(rate) {
		why = append(why, fmt.Sprintf("achieved %.0f/s", res.achieved))
	}
	st.pass = len(why) == 0
	st.why = strings.Join(why, "; ")
	verdict := "pass"
	if !st.pass {
		verdict = "FAIL " + st.why
	}
	logf("  %s %s: %d %s, %.0f/s achieved, %d retrans, p99 %d ms (queue %s), server %.3f CPU ms/%s (redis-server %.3f), sipp %.3f, peak mem %.0f MB, UDP drops server %d sipp %d",
		tag, verdict, st.flows, sc.unit, st.achieved, st.retrans, st.p99, fmtQueue(st.queueP99), st.cpuMSFlow, strings.TrimSuffix(sc.unit, "s"), st.redisCPU, st.sippCPU, st.rssMB, st.serverDrops, st.otherDrops)
	if t.exited() {
		return st, fmt.Errorf("%s exited during the %s %s step at %d/s:\n%s", t.name(), sc.name, transport, rate, t.logTail(30))
	}
	return st, b.pause(ctx)
}

func (b *bench) pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.o.settle):
		return nil
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// scenarioPath is the path of a sipp scenario under testdata/sipp.
func scenarioPath(name string) string {
	root, err := harness.RepoRoot()
	if err != nil {
		root = "."
	}
	return filepath.Join(root, "testdata", "sipp", name)
}

// startProfile, with -profile and sipwarden as t, fetches a CPU profile
// and an allocation profile (what was allocated during the step) over the
// step's load into the profile directory, and three quarters into the step
// what the heap holds then (.heap.pprof, and .heap.txt with the runtime's
// memory statistics); the returned function waits for them.
func (b *bench) startProfile(ctx context.Context, t target, name string, dur time.Duration) (wait func()) {
	pt, ok := t.(interface{ pprofHTTP() string })
	if b.o.profile == "" || !ok {
		return func() {}
	}
	secs := max(1, int(dur.Seconds())-1)
	var wg sync.WaitGroup
	for _, kind := range []string{"profile", "allocs"} {
		path := filepath.Join(b.o.profile, name+".pprof")
		if kind != "profile" {
			path = filepath.Join(b.o.profile, name+"."+kind+".pprof")
		}
		wg.Go(func() {
			if err := harness.FetchProfile(ctx, pt.pprofHTTP(), kind, secs, path); err != nil {
				logf("  profile %s %s: %v", kind, name, err)
			}
		})
	}
	wg.Go(func() {
		select {
		case <-time.After(dur * 3 / 4):
		case <-ctx.Done():
			return
		}
		for kind, ext := range map[string]string{"heap": ".heap.pprof", "heap?debug=1": ".heap.txt"} {
			if err := harness.FetchProfile(ctx, pt.pprofHTTP(), kind, 0, filepath.Join(b.o.profile, name+ext)); err != nil {
				logf("  heap %s: %v", name, err)
			}
		}
	})
	if b.o.traceSecs > 0 {
		wg.Go(func() {
			select {
			case <-time.After(dur / 2):
			case <-ctx.Done():
				return
			}
			path := filepath.Join(b.o.profile, name+".trace")
			if err := harness.FetchProfile(ctx, pt.pprofHTTP(), "trace", b.o.traceSecs, path); err != nil {
				logf("  trace %s: %v", name, err)
			}
		})
	}
	return wg.Wait
}
