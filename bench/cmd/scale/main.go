// Command scale measures the location table at a million bindings
// (issue 7), `make bench-scale`:
//
//  1. writes -bindings bindings, one per AOR, into a fresh store through
//     store.DB.SaveBindings and one FlushBindings (the registrar's own
//     path), their expiries spread evenly over -expiry-window from now, so
//     that 1% of them expire per minute with the default 100 minutes;
//  2. starts the real server (./cmd/sipwarden, built) on that data dir and
//     reports the time to a healthy /healthz, the restore time it logs
//     ("bindings restored", duration_s), and its RSS after start;
//  3. leaves it idle for -sweep-window while bindings expire, and reports
//     its CPU time (sweeper, the flush of the removals to bbolt, and
//     whatever else an idle server does) and RSS;
//  4. in this process, restores the same bindings into a
//     registrar.Location and reports Lookup latency percentiles over
//     -lookups random AORs (each timed on its own, time.Now overhead
//     reported beside), and the CPU of Sweep called once a second for a
//     simulated -sweep-window, as the server does.
//
// The targets of the issue: <= 1 GiB RSS, restore <= 10 s, lookup p99 <
// 10 us.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
)

type options struct {
	bindings     int
	expiryWindow time.Duration
	sweepWindow  time.Duration
	lookups      int
	bin          string
	out          string
	keep         bool
	redis        bool
	cpuProfile   string
}

func main() {
	var o options
	flag.IntVar(&o.bindings, "bindings", 1_000_000, "bindings written, one per AOR")
	flag.DurationVar(&o.expiryWindow, "expiry-window", 100*time.Minute, "expiries spread evenly over this from now (100m: 1% of the bindings expire per minute)")
	flag.DurationVar(&o.sweepWindow, "sweep-window", time.Minute, "how long the idle server is watched while bindings expire")
	flag.IntVar(&o.lookups, "lookups", 1_000_000, "lookups timed in process")
	flag.StringVar(&o.bin, "bin", "", "sipwarden binary (default: build ./cmd/sipwarden)")
	flag.StringVar(&o.out, "out", "", "also write the results (markdown) to this file")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&o.redis, "redis", false, "a cluster's table instead: the bindings in redis-server, a node starting on it (redis.go)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "with -redis: write a CPU profile of the in-process load from Redis (the node's code) to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// makeBinding returns binding i: realistic sizes (a softphone's Contact,
// Call-ID and User-Agent), one AOR each, sources spread over addresses.
// It names no credential: the server's restore drops a binding whose
// credential is not in the store (server/restore.go), and the bench
// writes no credentials; a binding without one is kept as it stands (one
// written before bindings named their credential). The restore therefore
// skips the one cached credential read per AOR a real table costs.
func makeBinding(i int, exp, now time.Time) store.Binding {
	aor := fmt.Sprintf("user%07d", i)
	src := fmt.Sprintf("198.51.%d.%d:%d", (i>>8)&0xff, i&0xff, 1024+i%60000)
	return store.Binding{
		ID: fmt.Sprintf("0197a1b2-c3d4-7e5f-%04x-%012x", i&0xffff, i), AOR: aor,
		Contact: "<sip:" + aor + "@" + src + ";transport=udp;rinstance=1a2b3c4d5e6f7a8b>",
		Source:  src, Transport: "udp", LocalAddr: "203.0.113.1:5060",
		CallID: fmt.Sprintf("a84b4c76e66710-%d-ZDQ1NGI3MjQ4", i), CSeq: 1826,
		Expires: exp, UserAgent: "Zoiper rv2.10.20.3", RegisteredAt: now, UpdatedAt: now,
	}
}

// expiry of binding i of n: evenly from now+1min over window.
func expiry(i, n int, now time.Time, window time.Duration) time.Time {
	return now.Add(time.Minute + time.Duration(int64(window)*int64(i)/int64(n)))
}

func run(ctx context.Context, o options) error {
	var rep strings.Builder
	work, err := os.MkdirTemp("", "sipwarden-scale-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("work directory %s (kept)", work)
	} else {
		defer os.RemoveAll(work)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	bin := o.bin
	if bin == "" {
		logf("building ./cmd/sipwarden")
		if bin, err = harness.BuildServer(ctx, root, work); err != nil {
			return err
		}
	}
	if o.redis {
		return runRedis(ctx, o, work, bin)
	}
	dataDir := filepath.Join(work, "data")
	dbPath := filepath.Join(dataDir, "sipwarden.db")

	// 1. Write the bindings.
	now := time.Now()
	t0 := time.Now()
	db, err := store.Open(dbPath, store.Options{BindingFlushInterval: time.Hour})
	if err != nil {
		return err
	}
	for i := range o.bindings {
		b := makeBinding(i, expiry(i, o.bindings, now, o.expiryWindow), now)
		db.SaveBindings(b.AOR, []store.Binding{b})
	}
	if err := db.FlushBindings(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	st, _ := os.Stat(dbPath)
	writeTook := time.Since(t0)
	logf("wrote %d bindings in %v (store file %d MB)", o.bindings, writeTook.Round(time.Millisecond), st.Size()>>20)

	// 2. Start the real server on them.
	cfg, err := harness.LoopbackConfig(dataDir)
	if err != nil {
		return err
	}
	cfg.LogLevel = "info"
	cfg.MaxExpires = 7200
	rs, err := startRestoring(ctx, bin, filepath.Join(work, "server"), cfg)
	if err != nil {
		return err
	}
	srv, healthy, ready, count, restoreS := rs.srv, rs.healthy, rs.ready, rs.count, rs.restoreS
	defer func() { _ = srv.Stop() }()
	logf("server healthy after %v, restore logged after %v: %d bindings in %.2f s", healthy.Round(time.Millisecond), ready.Round(time.Millisecond), count, restoreS)
	pid := srv.PID()
	time.Sleep(5 * time.Second)
	rssStart, _ := harness.MemoryKB(pid, "VmRSS")
	hwmStart, _ := harness.MemoryKB(pid, "VmHWM")
	anonStart, _ := harness.MemoryKB(pid, "RssAnon")
	fileStart, _ := harness.MemoryKB(pid, "RssFile")
	logf("RSS 5 s after start %d MB (anonymous %d MB, file-backed %d MB: the store's mmap), peak %d MB", rssStart>>10, anonStart>>10, fileStart>>10, hwmStart>>10)

	// 3. Idle while 1% per minute expire: from the first expiry on.
	if wait := time.Until(now.Add(time.Minute)); wait > 0 {
		logf("waiting %v for the first expiries", wait.Round(time.Second))
		time.Sleep(wait)
	}
	cpu0, _ := harness.CPUTime(pid)
	w0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.sweepWindow):
	}
	cpu1, _ := harness.CPUTime(pid)
	wall := time.Since(w0)
	rssEnd, _ := harness.MemoryKB(pid, "VmRSS")
	hwmEnd, _ := harness.MemoryKB(pid, "VmHWM")
	anonEnd, _ := harness.MemoryKB(pid, "RssAnon")
	fileEnd, _ := harness.MemoryKB(pid, "RssFile")
	// Bindings due in the window: those with an expiry before its end.
	due := int(float64(o.bindings) * (w0.Add(wall).Sub(now.Add(time.Minute)).Seconds()) / o.expiryWindow.Seconds())
	idleCPUms := cpu1 - cpu0
	logf("idle %v: server CPU %.0f ms (%.2f%% of a core), about %d bindings due by the end, RSS %d MB (anonymous %d MB, file %d MB), peak %d MB",
		wall.Round(time.Second), idleCPUms, idleCPUms/float64(wall.Milliseconds())*100, max(due, 0), rssEnd>>10, anonEnd>>10, fileEnd>>10, hwmEnd>>10)
	if err := srv.Stop(); err != nil {
		logf("server stop: %v", err)
	}

	// 4. In process: lookups and sweeps over a registrar.Location.
	lat, overhead, err := lookups(o, now)
	if err != nil {
		return err
	}
	sw := sweeps(o, now)

	fmt.Fprintf(&rep, "## Location table at %d bindings\n\n", o.bindings)
	host, _ := os.Hostname()
	fmt.Fprintf(&rep, "%s, %d CPUs, %s. One binding per AOR, expiries spread over %v (%.1f%% of the bindings expire per minute).\n\n",
		host, runtime.NumCPU(), runtime.Version(), o.expiryWindow, 100*time.Minute.Seconds()/o.expiryWindow.Seconds())
	fmt.Fprintln(&rep, "| measure | value | target |")
	fmt.Fprintln(&rep, "| --- | --- | --- |")
	fmt.Fprintf(&rep, "| write %d bindings (SaveBindings + one FlushBindings) | %.1f s, store file %d MB | |\n", o.bindings, writeTook.Seconds(), st.Size()>>20)
	fmt.Fprintf(&rep, "| restore at start (log \"bindings restored\", duration_s) | %.2f s (%d bindings) | <= 10 s |\n", restoreS, count)
	fmt.Fprintf(&rep, "| process start to /healthz 200 / to the restore line | %.2f s / %.2f s | |\n", healthy.Seconds(), ready.Seconds())
	fmt.Fprintf(&rep, "| server RSS 5 s after start: total (anonymous + file-backed store mmap), peak during start | %d MB (%d + %d), peak %d MB | <= 1024 MB |\n", rssStart>>10, anonStart>>10, fileStart>>10, hwmStart>>10)
	fmt.Fprintf(&rep, "| server RSS after %v idle: total (anonymous + file) | %d MB (%d + %d), peak %d MB | <= 1024 MB |\n", wall.Round(time.Second), rssEnd>>10, anonEnd>>10, fileEnd>>10, hwmEnd>>10)
	fmt.Fprintf(&rep, "| server CPU over %v idle while about %d bindings expire (sweeper + flush of the removals + idle) | %.0f ms (%.2f%% of a core) | |\n", wall.Round(time.Second), o.bindings/100, idleCPUms, idleCPUms/float64(wall.Milliseconds())*100)
	fmt.Fprintf(&rep, "| in process: Lookup latency p50 / p90 / p99 / p99.9 / max (%d random AORs, each timed) | %s | p99 < 10 us |\n", o.lookups, lat)
	fmt.Fprintf(&rep, "| in process: time.Now pair overhead p50 / p99 | %s | |\n", overhead)
	fmt.Fprintf(&rep, "| in process: Sweep once a second for %v simulated, %d bindings removed | %s | |\n", o.sweepWindow, sw.removed, sw.String())
	fmt.Fprintln(&rep)
	fmt.Print(rep.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(rep.String()), 0o644)
	}
	return nil
}

var restoredRE = regexp.MustCompile(`bindings restored.*count=(\d+).*duration_s=([0-9.e+-]+)`)

// restoredLine finds the server's "bindings restored" log line.
func restoredLine(path string) (int, float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := restoredRE.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			s, _ := strconv.ParseFloat(m[2], 64)
			return n, s, nil
		}
	}
	return 0, 0, fmt.Errorf("no \"bindings restored\" line yet")
}

// newLocation returns a Location holding n bindings (as the server
// restores them), its clock at *clock.
func newLocation(n int, now time.Time, window time.Duration, clock *time.Time, saver registrar.BindingSaver) *registrar.Location {
	bs := make([]store.Binding, n)
	for i := range bs {
		bs[i] = makeBinding(i, expiry(i, n, now, window), now)
	}
	l := registrar.NewLocation(saver, func() time.Time { return *clock }, nil)
	l.Restore(bs)
	return l
}

func pct(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d))*p/100+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

func lookups(o options, now time.Time) (lat, overhead string, err error) {
	clock := now
	return timeLookups(o, newLocation(o.bindings, now, o.expiryWindow, &clock, nil))
}

// timeLookups times o.lookups single Lookups of random AORs of l, which
// holds one binding for each of user0000000 to o.bindings-1.
func timeLookups(o options, l *registrar.Location) (lat, overhead string, err error) {
	runtime.GC()
	aors := make([]string, o.lookups)
	for i := range aors {
		aors[i] = fmt.Sprintf("user%07d", rand.IntN(o.bindings))
	}
	d := make([]time.Duration, o.lookups)
	for i, aor := range aors {
		t := time.Now()
		bs := l.Lookup(aor)
		d[i] = time.Since(t)
		if len(bs) != 1 {
			return "", "", fmt.Errorf("lookup %s: %d bindings", aor, len(bs))
		}
	}
	slices.Sort(d)
	e := make([]time.Duration, o.lookups)
	for i := range e {
		t := time.Now()
		e[i] = time.Since(t)
	}
	slices.Sort(e)
	lat = fmt.Sprintf("%v / %v / %v / %v / %v", pct(d, 50), pct(d, 90), pct(d, 99), pct(d, 99.9), d[len(d)-1])
	overhead = fmt.Sprintf("%v / %v", pct(e, 50), pct(e, 99))
	logf("lookups: %s (timer overhead %s)", lat, overhead)
	runtime.KeepAlive(l)
	return lat, overhead, nil
}

type nopSaver struct{ n int }

func (s *nopSaver) SaveBindings(string, []store.Binding, []store.Binding) { s.n++ }

type sweepResult struct {
	removed   int
	cpu, wall time.Duration
	maxSweep  time.Duration
	sweeps    int
}

func (s sweepResult) String() string {
	return fmt.Sprintf("%v CPU in total (%v wall, slowest sweep %v, %d sweeps)", s.cpu.Round(time.Microsecond), s.wall.Round(time.Microsecond), s.maxSweep.Round(time.Microsecond), s.sweeps)
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sweeps runs Sweep once per simulated second over the window, starting
// when the first bindings expire (now + 1 min), as Location.Run does.
func sweeps(o options, now time.Time) sweepResult {
	clock := now
	saver := &nopSaver{}
	l := newLocation(o.bindings, now, o.expiryWindow, &clock, saver)
	runtime.GC()
	var r sweepResult
	c0, w0 := cpuNow(), time.Now()
	for s := time.Duration(0); s < o.sweepWindow; s += time.Second {
		clock = now.Add(time.Minute + s)
		t := time.Now()
		r.removed += l.Sweep(clock)
		r.maxSweep = max(r.maxSweep, time.Since(t))
		r.sweeps++
	}
	r.cpu, r.wall = cpuNow()-c0, time.Since(w0)
	logf("sweeps: %d removed over %v simulated: %s", r.removed, o.sweepWindow, r)
	return r
}

// restoring is a server started on stored bindings: how long it took to
// answer its health probe and to log its restore, and what it restored.
type restoring struct {
	srv            *harness.Server
	healthy, ready time.Duration
	count          int
	restoreS       float64
}

// startRestoring starts the server with cfg in dir and waits for its
// "bindings restored" line (the health probe may answer before the
// restore ends). The caller stops the server.
func startRestoring(ctx context.Context, bin, dir string, cfg harness.Config) (restoring, error) {
	var st restoring
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	srv, err := harness.StartServer(sctx, bin, dir, cfg)
	cancel()
	if err != nil {
		return st, err
	}
	st.srv, st.healthy = srv, time.Since(t0)
	err = harness.Poll(ctx, 2*time.Minute, 50*time.Millisecond, func() (bool, error) {
		var err error
		st.count, st.restoreS, err = restoredLine(srv.LogPath)
		return err == nil, nil
	})
	if err != nil {
		_ = srv.Stop()
		return st, fmt.Errorf("no \"bindings restored\" line in %s: %w\n%s", srv.LogPath, err, srv.LogTail(20))
	}
	st.ready = time.Since(t0)
	return st, nil
}
