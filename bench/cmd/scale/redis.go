package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/interop/harness"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
)

// runRedis is -redis: the location table of a cluster (issue 14) at
// -bindings bindings.
//
//  1. starts redis-server (Debian's, loopback, no persistence) and writes
//     the bindings into it the way a node does: cluster.Bindings
//     SaveBindings for each AOR, then Flush (pipelines of 1,000 AORs,
//     one hash per AOR expiring with its binding);
//  2. reports Redis's memory (INFO memory: used_memory, the dataset;
//     used_memory_rss, the process) and its key count;
//  3. starts the real server as a cluster node on that Redis and reports
//     the time to /readyz 200, the restore it logs ("bindings restored",
//     duration_s: SCAN + HVALS of every binding hash, decoding, the
//     location table) and its RSS;
//  4. in this process, loads the bindings from Redis with the node's own
//     code (cluster.Bindings.Load), restores them into a
//     registrar.Location and times -lookups Lookups of random AORs, as
//     the bbolt mode does: a node's lookups are in memory, whichever the
//     store.
func runRedis(ctx context.Context, o options, work, bin string) error {
	var rep strings.Builder
	redisDir := filepath.Join(work, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		return err
	}
	r, err := harness.StartRedis(ctx, redisDir)
	if err != nil {
		return err
	}
	defer r.Stop()
	c, err := cluster.Open(ctx, cluster.Config{URL: r.URL(), Node: "scale-writer", Advertise: "127.0.0.1:5060", Timeout: 5 * time.Second}, nil)
	if err != nil {
		return err
	}
	defer c.Close()

	// 1. Write the bindings. Redis expires keys itself: the expiries start
	// 30 minutes out, so that none is gone before the lookups.
	now := time.Now()
	first := now.Add(30 * time.Minute)
	base, err := redisMemory(r)
	if err != nil {
		return err
	}
	t0 := time.Now()
	w := c.Bindings(func(string, []store.Binding, []string) {})
	for i := range o.bindings {
		b := makeBinding(i, expiry(i, o.bindings, first, o.expiryWindow), now)
		w.SaveBindings(b.AOR, nil, []store.Binding{b})
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = w.Flush(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("write %d bindings to redis: %w", o.bindings, err)
	}
	writeTook := time.Since(t0)
	keys, err := r.Do("DBSIZE")
	if err != nil {
		return err
	}
	logf("wrote %d bindings to redis in %v (%s keys)", o.bindings, writeTook.Round(time.Millisecond), keys)

	// 2. Redis's memory.
	mem, err := redisMemory(r)
	if err != nil {
		return err
	}
	redisRSS, _ := harness.MemoryKB(r.PID(), "VmRSS")
	perKey, _ := r.Do("MEMORY USAGE sipwarden:binds:user0000042")
	logf("redis: used_memory %d MB (%d MB before), used_memory_rss %d MB, VmRSS %d MB, one binding key %s bytes",
		mem.used>>20, base.used>>20, mem.rss>>20, redisRSS>>10, perKey)

	// 3. A node starting on it.
	dataDir := filepath.Join(work, "node-data")
	cfg, err := harness.LoopbackConfig(dataDir)
	if err != nil {
		return err
	}
	cfg.LogLevel = "info"
	cfg.MaxExpires = 7200
	cfg.Cluster = harness.Cluster{RedisURL: r.URL(), NodeName: "scale-node"}
	st, err := startRestoring(ctx, bin, filepath.Join(work, "node"), cfg)
	if err != nil {
		return err
	}
	srv, ready, count, restoreS := st.srv, st.healthy, st.count, st.restoreS
	defer func() { _ = srv.Stop() }()
	logf("node ready after %v: %d bindings restored in %.2f s", ready.Round(time.Millisecond), count, restoreS)
	pid := srv.PID()
	time.Sleep(5 * time.Second)
	rss, _ := harness.MemoryKB(pid, "VmRSS")
	hwm, _ := harness.MemoryKB(pid, "VmHWM")
	logf("node RSS 5 s after start %d MB, peak %d MB", rss>>10, hwm>>10)
	if err := srv.Stop(); err != nil {
		logf("node stop: %v", err)
	}

	// 4. In process: the node's load, then lookups.
	runtime.GC()
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	t0 = time.Now()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bs, err := c.Bindings(func(string, []store.Binding, []string) {}).Load(lctx)
	cancel()
	if err != nil {
		stopProfile()
		return err
	}
	loadTook := time.Since(t0)
	clock := now
	l := registrar.NewLocation(nil, func() time.Time { return clock }, slog.New(slog.DiscardHandler))
	restored := l.Restore(bs)
	bs = nil
	stopProfile()
	logf("in process: loaded %d bindings from redis in %v", restored, loadTook.Round(time.Millisecond))
	lat, overhead, err := timeLookups(o, l)
	if err != nil {
		return err
	}

	fmt.Fprintf(&rep, "## Cluster location table at %d bindings in Redis\n\n", o.bindings)
	host, _ := os.Hostname()
	ver, _ := redisVersion(r)
	fmt.Fprintf(&rep, "%s, %d CPUs, %s, redis-server %s (loopback, no persistence). One binding per AOR, expiries spread over %v.\n\n",
		host, runtime.NumCPU(), runtime.Version(), ver, o.expiryWindow)
	fmt.Fprintln(&rep, "| measure | value | target |")
	fmt.Fprintln(&rep, "| --- | --- | --- |")
	fmt.Fprintf(&rep, "| write %d bindings through cluster.Bindings (SaveBindings + Flush, pipelines of 1,000 AORs) | %.1f s, %s keys | |\n", o.bindings, writeTook.Seconds(), keys)
	fmt.Fprintf(&rep, "| Redis used_memory (dataset; before the bindings: %d MB) / used_memory_rss / process VmRSS | %d MB / %d MB / %d MB | |\n", base.used>>20, mem.used>>20, mem.rss>>20, redisRSS>>10)
	fmt.Fprintf(&rep, "| Redis MEMORY USAGE of one binding key | %s bytes | |\n", perKey)
	fmt.Fprintf(&rep, "| node start: process start to /readyz 200 | %.2f s | <= 30 s |\n", ready.Seconds())
	fmt.Fprintf(&rep, "| node restore (log \"bindings restored\", duration_s: SCAN + HVALS + decode + table) | %.2f s (%d bindings) | |\n", restoreS, count)
	fmt.Fprintf(&rep, "| node RSS 5 s after start, peak during start | %d MB, peak %d MB | |\n", rss>>10, hwm>>10)
	fmt.Fprintf(&rep, "| in process: cluster.Bindings.Load (the node's load) | %.2f s | |\n", loadTook.Seconds())
	fmt.Fprintf(&rep, "| in process: Lookup latency p50 / p90 / p99 / p99.9 / max (%d random AORs, each timed) | %s | p99 < 10 us |\n", o.lookups, lat)
	fmt.Fprintf(&rep, "| in process: time.Now pair overhead p50 / p99 | %s | |\n", overhead)
	fmt.Fprintln(&rep)
	fmt.Print(rep.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(rep.String()), 0o644)
	}
	return nil
}

// startCPUProfile profiles this process into path until the returned
// function is called; nothing when path is "".
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		logf("cpu profile of the in-process load in %s (go tool pprof)", path)
	}, nil
}

type redisMem struct{ used, rss int64 }

func redisMemory(r *harness.Redis) (redisMem, error) {
	info, err := r.Info("memory")
	if err != nil {
		return redisMem{}, err
	}
	used, err1 := strconv.ParseInt(info["used_memory"], 10, 64)
	rss, err2 := strconv.ParseInt(info["used_memory_rss"], 10, 64)
	if err1 != nil || err2 != nil {
		return redisMem{}, fmt.Errorf("INFO memory: used_memory %q, used_memory_rss %q", info["used_memory"], info["used_memory_rss"])
	}
	return redisMem{used: used, rss: rss}, nil
}

func redisVersion(r *harness.Redis) (string, error) {
	info, err := r.Info("server")
	if err != nil {
		return "", err
	}
	return info["redis_version"], nil
}
