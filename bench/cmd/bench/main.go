// Command bench measures sipwarden's throughput with sipp, per scenario
// (-scenarios):
//
//   - register: the highest rate of digest REGISTER -> 401 -> REGISTER ->
//     200 flows per second with zero failed flows;
//   - calls: the highest rate of calls through the proxy (sipp UAC ->
//     sipwarden -> sipp UAS registered as a user: INVITE, 407, ACK, INVITE
//     with Proxy-Authorization, 100, 180, 200, ACK, BYE, 200) per second
//     with zero failed calls (calls.go);
//
// over UDP and TCP, with the server's CPU time per flow, the flows' 99th
// percentile time and the server's peak RSS.
//
//	go run ./bench/cmd/bench                     (make bench)
//	go run ./bench/cmd/bench -scenarios calls    (calls only)
//
// It builds ./cmd/sipwarden, starts it on loopback with persistence on and
// log level warn, creates -users credentials through the API and then, per
// scenario and transport, searches the rate -reps times: -start flows/s
// (-call-start for calls), doubling until a rate fails, then bisecting
// until the bracket is within -resolution. Each step runs -duration of load
// (-call-duration for calls; -m = rate x duration). A rate passes only with
// sipp exit 0 and zero failed flows (for calls: on both sides), UDP
// retransmissions at most 1% of the flows, a p99 flow time under 500 ms and
// an achieved rate of at least 90% of the target. The server restarts
// (same data dir) before each step. The table of medians goes to stdout,
// progress to stderr.
//
// sipp and the server share the machine's cores: the figures are those of
// the pair, on this machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sipwarden/interop/harness"
)

type options struct {
	users       int
	duration    time.Duration
	reps        int
	start, max  int
	resolution  float64
	transports  []string
	scenarios   []string
	callStart   int
	callMax     int
	callDur     time.Duration
	callHold    time.Duration
	budget      time.Duration
	settle      time.Duration
	bin         string
	out         string
	keep        bool
	maxRetrans  float64
	maxP99      int
	minAchieved float64
}

func main() {
	var o options
	var transports, scenarios string
	flag.IntVar(&o.users, "users", 10000, "credentials created (and registered round-robin by sipp)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load per step")
	flag.IntVar(&o.reps, "reps", 3, "searches per transport; the table gives their medians")
	flag.IntVar(&o.start, "start", 2000, "first rate of a search, flows/s")
	flag.IntVar(&o.max, "max", 32000, "highest rate tried, flows/s")
	flag.Float64Var(&o.resolution, "resolution", 0.1, "stop bisecting when the bracket is within this fraction of the passing rate")
	flag.StringVar(&transports, "transports", "udp,tcp", "transports measured: udp (sipp -t u1) and tcp (-t t1, one connection)")
	flag.StringVar(&scenarios, "scenarios", "register,calls", "what is measured: register (REGISTER digest flows), calls (authenticated calls through the proxy)")
	flag.IntVar(&o.callStart, "call-start", 250, "first rate of a calls search, calls/s")
	flag.IntVar(&o.callMax, "call-max", 8000, "highest rate of calls tried, calls/s")
	flag.DurationVar(&o.callDur, "call-duration", 5*time.Second, "load per calls step")
	flag.DurationVar(&o.callHold, "call-hold", 100*time.Millisecond, "how long each call lasts, ACK to BYE (sipp -d)")
	flag.DurationVar(&o.budget, "budget", 25*time.Minute, "stop starting searches after this (the table says so)")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "pause between steps")
	flag.StringVar(&o.bin, "bin", "", "sipwarden binary to measure (default: build ./cmd/sipwarden)")
	flag.StringVar(&o.out, "out", "", "also write the results (markdown) to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, sipp traces)")
	flag.Float64Var(&o.maxRetrans, "max-retrans", 0.01, "retransmissions allowed, as a fraction of flows")
	flag.IntVar(&o.maxP99, "max-p99-ms", 500, "p99 flow time allowed, ms (exclusive)")
	flag.Float64Var(&o.minAchieved, "min-achieved", 0.9, "achieved/target rate required")
	flag.Parse()
	o.transports = strings.Split(transports, ",")
	o.scenarios = strings.Split(scenarios, ",")
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
	rate      int
	pass      bool
	why       string
	flows     int
	achieved  float64
	retrans   int
	p99       int
	cpuMSFlow float64 // server
	sippCPU   float64 // sipp's CPU ms per flow
	rssMB     float64 // server's VmHWM: peak RSS of a server started for the step
	// UDP datagrams dropped for a full receive buffer during the step: by
	// the server's socket, and by every other socket (sipp's).
	serverDrops, otherDrops int64
}

// search is one rate search of one scenario and transport.
type search struct {
	transport string
	best      *step // highest passing step; nil when none passed
	steps     []step
	capped    bool // every rate up to -max passed
}

type bench struct {
	o        options
	work     string
	bin      string
	cfg      harness.Config
	csv      string
	callee   harness.User // called in the calls scenario
	srv      *harness.Server
	deadline time.Time
	nstep    int
}

func run(ctx context.Context, o options) error {
	began := time.Now()
	b := &bench{o: o, deadline: began.Add(o.budget)}
	for _, tool := range []string{"sipp"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run scripts/install-peers.sh", tool)
		}
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
	b.bin = o.bin
	if b.bin == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			return err
		}
		logf("building ./cmd/sipwarden")
		if b.bin, err = harness.BuildServer(ctx, root, work); err != nil {
			return err
		}
	}
	b.cfg, err = harness.LoopbackConfig(filepath.Join(work, "data"))
	if err != nil {
		return err
	}
	b.cfg.LogLevel = "warn"
	b.cfg.UDPBuffer = 4194304
	b.cfg.FlushInterval = "1s"
	defer b.stopServer()

	if err := b.startServer(ctx); err != nil {
		return err
	}
	users := harness.MakeUsers("bench", o.users)
	b.callee = harness.MakeUsers("callee", 1)[0]
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = b.srv.API().CreateCredentials(cctx, append(slices.Clone(users), b.callee), 16)
	cancel()
	if err != nil {
		return fmt.Errorf("create %d credentials: %w", o.users+1, err)
	}
	logf("created %d credentials through the API in %v", o.users+1, time.Since(t0).Round(time.Millisecond))
	b.csv = filepath.Join(work, "users.csv")
	if err := harness.WriteUsersCSV(b.csv, users); err != nil {
		return err
	}

	var scens []*scenario
	for _, name := range o.scenarios {
		scens = append(scens, b.scenario(name))
	}
	results := map[string]map[string][]search{}
	truncated := false
outer:
	for rep := range o.reps {
		for _, sc := range scens {
			for _, tr := range o.transports {
				if time.Now().After(b.deadline) {
					truncated = true
					logf("budget of %v spent: no more searches", o.budget)
					break outer
				}
				logf("%s %s search %d/%d", sc.name, tr, rep+1, o.reps)
				s, err := b.search(ctx, sc, tr)
				if err != nil {
					return err
				}
				if results[sc.name] == nil {
					results[sc.name] = map[string][]search{}
				}
				results[sc.name][tr] = append(results[sc.name][tr], s)
			}
		}
	}
	var report strings.Builder
	for _, sc := range scens {
		report.WriteString(b.report(sc, results[sc.name], truncated, time.Since(began)))
	}
	fmt.Print(report.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) startServer(ctx context.Context) error {
	dir := filepath.Join(b.work, fmt.Sprintf("server-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	srv, err := harness.StartServer(sctx, b.bin, dir, b.cfg)
	if err != nil {
		return err
	}
	b.srv = srv
	return nil
}

func (b *bench) stopServer() {
	if b.srv == nil {
		return
	}
	if err := b.srv.Stop(); err != nil {
		logf("server stop: %v\n%s", err, b.srv.LogTail(20))
	}
	b.srv = nil
}

// search finds the highest passing rate of one scenario and transport.
func (b *bench) search(ctx context.Context, sc *scenario, transport string) (search, error) {
	s := search{transport: transport}
	try := func(rate int) (bool, error) {
		st, err := b.step(ctx, sc, transport, rate)
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
	// Going up: double until a rate fails.
	for rate := sc.start; rate <= sc.max; rate *= 2 {
		ok, err := try(rate)
		if err != nil {
			return s, err
		}
		if !ok {
			fail = rate
			break
		}
		pass = rate
	}
	s.capped = fail == 0
	// Going down when even the first rate failed: halve until one passes.
	for i := 0; pass == 0 && i < 4; i++ {
		rate := fail / 2
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
	for i := 0; pass > 0 && fail > 0 && i < 6 && float64(fail-pass) > b.o.resolution*float64(pass); i++ {
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
		logf("%s %s search: %d %s/s passes, %d fails", sc.name, transport, s.best.rate, sc.unit, fail)
	} else {
		logf("%s %s search: no rate passed", sc.name, transport)
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
	// load runs n flows at rate against b.srv, its files under dir.
	load func(ctx context.Context, transport string, rate, n int, dir string) (loadResult, error)
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
func (b *bench) registerLoad(ctx context.Context, transport string, rate, n int, dir string) (loadResult, error) {
	run := harness.SippRun{
		Scenario:    scenarioPath("register_digest.xml"),
		Users:       b.csv,
		Target:      b.srv.SIPAddr(),
		Rate:        rate,
		Calls:       n,
		Limit:       max(2*rate, 200), // two seconds' worth of flows in flight
		RecvTimeout: 5 * time.Second,
		Timeout:     3*b.o.duration + 30*time.Second,
		Dir:         dir,
		RTT:         true,
		RTTFreq:     rttFreq,
	}
	if transport == "udp" {
		run.Transport = "u1"
		run.BuffSize = 4194304
	} else {
		run.Transport = "t1"
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
// for it (same data dir): steps do not inherit each other's backlog, UDP
// transactions lingering for Timer J (32 s) or heap, and the server's peak
// RSS is that of the step.
func (b *bench) step(ctx context.Context, sc *scenario, transport string, rate int) (step, error) {
	b.nstep++
	st := step{rate: rate}
	b.stopServer()
	if err := b.startServer(ctx); err != nil {
		return st, err
	}
	n := int(math.Ceil(float64(rate)*sc.duration.Seconds()/rttFreq)) * rttFreq
	dir := filepath.Join(b.work, fmt.Sprintf("step-%03d-%s-%s-%d", b.nstep, sc.name, transport, rate))
	pid := b.srv.PID()
	cpu0, err := harness.CPUTime(pid)
	if err != nil {
		return st, err
	}
	rcvbuf0, _ := harness.UDPRcvbufErrors()
	res, err := sc.load(ctx, transport, rate, n, dir)
	if ctx.Err() != nil {
		return st, ctx.Err()
	}
	if err != nil {
		// sipp killed at its deadline, or without statistics: a failed step.
		st.why = "sipp: " + firstLine(err.Error())
		logf("  %s %s %6d/s FAIL %s (%s)", sc.name, transport, rate, st.why, dir)
		if b.srv.Exited() {
			return st, fmt.Errorf("sipwarden exited during the %s %s step at %d/s:\n%s", sc.name, transport, rate, b.srv.LogTail(30))
		}
		return st, b.pause(ctx)
	}
	cpu1, _ := harness.CPUTime(pid)
	if transport == "udp" {
		// The server's socket is new with the server: its count is the step's.
		rcvbuf1, _ := harness.UDPRcvbufErrors()
		st.serverDrops, _ = harness.UDPSocketDrops(pid, b.srv.Config.UDP)
		st.otherDrops = max(0, rcvbuf1-rcvbuf0-st.serverDrops)
	}
	st.flows = res.successful + res.failed
	st.achieved = res.achieved
	st.retrans = res.retrans
	st.p99 = harness.Percentile(res.rtts, 99)
	if st.flows > 0 {
		st.cpuMSFlow = (cpu1 - cpu0) / float64(st.flows)
		st.sippCPU = res.sippCPU / float64(st.flows)
	}
	if kb, err := harness.MemoryKB(pid, "VmHWM"); err == nil {
		st.rssMB = float64(kb) / 1024
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
	logf("  %s %s %6d/s %s: %d %s, %.0f/s achieved, %d retrans, p99 %d ms, server %.3f CPU ms/%s, sipp %.3f, peak RSS %.0f MB, UDP drops server %d sipp %d",
		sc.name, transport, rate, verdict, st.flows, sc.unit, st.achieved, st.retrans, st.p99, st.cpuMSFlow, strings.TrimSuffix(sc.unit, "s"), st.sippCPU, st.rssMB, st.serverDrops, st.otherDrops)
	if b.srv.Exited() {
		return st, fmt.Errorf("sipwarden exited during the %s %s step at %d/s:\n%s", sc.name, transport, rate, b.srv.LogTail(30))
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

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) report(sc *scenario, results map[string][]search, truncated bool, took time.Duration) string {
	var w strings.Builder
	host, _ := os.Hostname()
	one := strings.TrimSuffix(sc.unit, "s")
	fmt.Fprintf(&w, "## sipwarden %s benchmark\n\n", sc.title)
	fmt.Fprintf(&w, "%s, %d CPUs shared by sipp and the server, %d users, %v per step, %s, persistence on, log level warn. ",
		host, runtime.NumCPU(), b.o.users, sc.duration, sc.flow)
	fmt.Fprintf(&w, "A rate passes with zero failed %s, retransmissions <= %.0f%% of %s, p99 < %d ms and >= %.0f%% of the target rate achieved. Medians of the searches; the whole bench took %v.\n\n",
		sc.unit, b.o.maxRetrans*100, sc.unit, b.o.maxP99, b.o.minAchieved*100, took.Round(time.Second))
	fmt.Fprintf(&w, "| transport | max zero-failure %s/s | achieved %s/s | server CPU ms/%s | p99 ms | peak RSS MB | searches |\n", sc.unit, sc.unit, one)
	fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- |")
	for _, tr := range b.o.transports {
		var rates, achieved, cpu, p99, rss []float64
		var each []string
		for _, s := range results[tr] {
			if s.best == nil {
				rates = append(rates, 0)
				each = append(each, "none")
				continue
			}
			rates = append(rates, float64(s.best.rate))
			achieved = append(achieved, s.best.achieved)
			cpu = append(cpu, s.best.cpuMSFlow)
			p99 = append(p99, float64(s.best.p99))
			rss = append(rss, s.best.rssMB)
			if s.capped {
				each = append(each, ">="+strconv.Itoa(s.best.rate)+" (max)")
			} else {
				each = append(each, strconv.Itoa(s.best.rate))
			}
		}
		name := tr + " (sipp -t u1, 4 MiB buffers)"
		if tr == "tcp" {
			name = tr + " (sipp -t t1, one connection)"
		}
		fmt.Fprintf(&w, "| %s | %.0f | %.0f | %.3f | %.0f | %.0f | %s |\n", name, median(rates), median(achieved), median(cpu), median(p99), median(rss), strings.Join(each, ", "))
	}
	if truncated {
		fmt.Fprintf(&w, "\nThe %v budget ran out: fewer than %d searches per transport.\n", b.o.budget, b.o.reps)
	}
	fmt.Fprintf(&w, "\nCPU, p99 and RSS are those of the highest passing step of each search. Each step runs against a server started for it (same data dir), so RSS is the VmHWM of %v of load: over UDP, transactions linger for Timer J (32 s), so a longer run at the same rate holds more.\n\n", sc.duration)
	fmt.Fprintln(&w, "Steps:")
	fmt.Fprintln(&w)
	fmt.Fprintf(&w, "| transport | search | rate | result | achieved/s | retrans | p99 ms | server CPU ms/%s | sipp CPU ms/%s | server RSS MB | UDP drops server/sipp |\n", one, one)
	fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, tr := range b.o.transports {
		for i, s := range results[tr] {
			for _, st := range s.steps {
				res := "pass"
				if !st.pass {
					res = "fail: " + st.why
				}
				fmt.Fprintf(&w, "| %s | %d | %d | %s | %.0f | %d | %d | %.3f | %.3f | %.0f | %d/%d |\n", tr, i+1, st.rate, res, st.achieved, st.retrans, st.p99, st.cpuMSFlow, st.sippCPU, st.rssMB, st.serverDrops, st.otherDrops)
			}
		}
	}
	fmt.Fprintln(&w)
	return w.String()
}
