// Command callmem measures the memory sipwarden keeps per call: sipp
// places -calls authenticated calls (INVITE, 407, ACK, INVITE with
// Proxy-Authorization, 180, 200, ACK, BYE) at -rate calls/s through each
// binary of -bin in turn, -reps times, alternating the binaries. While
// the calls run it samples, every -every, the server's live heap after a
// forced collection (HeapInuse of /debug/pprof/heap?debug=1&gc=1), and at
// the end its peak RSS (VmHWM). sipgo does not expose its count of live
// server transactions (and the heap profile's sampling is too coarse to
// count them). The table gives per binary the
// medians over the reps of the per-run medians of the samples taken once
// the load is steady (after -warmup).
//
//	go run ./bench/cmd/callmem -bin main=/tmp/sipwarden-main,branch=/tmp/sipwarden-branch -calls 5000 -rate 250
//
// sipp and the server share the machine's cores.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

type binary struct{ name, path string }

type run struct {
	heapMB, hwmMB, baseMB float64
	ok                    bool
	summary               string
}

func main() {
	var (
		bins      = flag.String("bin", "", "name=path,... of the sipwarden binaries to compare")
		calls     = flag.Int("calls", 5000, "calls per run")
		rate      = flag.Int("rate", 250, "calls per second")
		hold      = flag.Duration("hold", time.Second, "call duration, ACK to BYE")
		reps      = flag.Int("reps", 3, "runs per binary")
		transport = flag.String("t", "u1", "sipp transport: u1 or t1")
		every     = flag.Duration("every", 2*time.Second, "sampling period")
		warmup    = flag.Duration("warmup", 8*time.Second, "samples before this are not counted")
	)
	flag.Parse()
	var bs []binary
	for _, kv := range strings.Split(*bins, ",") {
		name, path, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintln(os.Stderr, "callmem: -bin wants name=path,...")
			os.Exit(2)
		}
		bs = append(bs, binary{name, path})
	}
	root, err := harness.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "callmem:", err)
		os.Exit(1)
	}
	results := map[string][]run{}
	for rep := range *reps {
		for _, b := range bs {
			r, err := measure(root, b, *calls, *rate, *hold, *transport, *every, *warmup)
			if err != nil {
				fmt.Fprintf(os.Stderr, "callmem: %s rep %d: %v\n", b.name, rep, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "%s rep %d: heap %.1f MB (idle %.1f), VmHWM %.1f MB; %s\n",
				b.name, rep, r.heapMB, r.baseMB, r.hwmMB, r.summary)
			results[b.name] = append(results[b.name], r)
		}
	}
	fmt.Printf("%d calls at %d/s over %s, hold %v, %d reps; medians\n\n", *calls, *rate, *transport, *hold, *reps)
	fmt.Println("| binary | all calls ok | live heap under load MB | idle heap MB | peak RSS MB |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	for _, b := range bs {
		rs := results[b.name]
		ok := true
		for _, r := range rs {
			ok = ok && r.ok
		}
		fmt.Printf("| %s | %t | %.1f | %.1f | %.1f |\n", b.name, ok,
			median(rs, func(r run) float64 { return r.heapMB }), median(rs, func(r run) float64 { return r.baseMB }),
			median(rs, func(r run) float64 { return r.hwmMB }))
	}
}

func median(rs []run, f func(run) float64) float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		v = append(v, f(r))
	}
	return med(v)
}

func med(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func measure(root string, b binary, calls, rate int, hold time.Duration, transport string, every, warmup time.Duration) (run, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "callmem-")
	if err != nil {
		return run{}, err
	}
	defer os.RemoveAll(dir)
	cfg, err := harness.LoopbackConfig(filepath.Join(dir, "data"))
	if err != nil {
		return run{}, err
	}
	cfg.LogLevel, cfg.Pprof = "warn", true
	srv, err := harness.StartServer(ctx, b.path, dir, cfg)
	if err != nil {
		return run{}, err
	}
	defer func() { _ = srv.Stop() }()
	callers := harness.MakeUsers("caller", 50)
	callee := harness.MakeUsers("callee", 1)[0]
	if err := srv.API().CreateCredentials(ctx, append(callers, callee), 8); err != nil {
		return run{}, err
	}
	csv := filepath.Join(dir, "callers.csv")
	if err := harness.WriteUsersCSV(csv, callers); err != nil {
		return run{}, err
	}
	base, err := heap(ctx, cfg.HTTP)
	if err != nil {
		return run{}, err
	}
	var (
		mu      sync.Mutex
		samples []float64
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if time.Since(start) < warmup {
				continue
			}
			h, err := heap(ctx, cfg.HTTP)
			if err != nil {
				fmt.Fprintln(os.Stderr, "callmem: sample:", err)
				continue
			}
			mu.Lock()
			samples = append(samples, h)
			mu.Unlock()
		}
	}()
	res, err := harness.RunCalls(ctx, harness.CallRun{
		UACScenario: filepath.Join(root, "testdata/sipp/uac_invite_digest.xml"), UASScenario: filepath.Join(root, "testdata/sipp/uas_answer.xml"),
		RegisterScenario: filepath.Join(root, "testdata/sipp/register_digest.xml"),
		Callers:          csv, Callee: callee, Transport: transport, Target: srv.SIPAddr(),
		Rate: rate, Calls: calls, Limit: 4 * rate, RecvTimeout: 10 * time.Second, Timeout: 3 * time.Minute,
		Dir: filepath.Join(dir, "sipp"), BuffSize: 4194304, Hold: hold,
	})
	close(stop)
	wg.Wait()
	if err != nil {
		return run{}, err
	}
	hwm, err := harness.MemoryKB(srv.PID(), "VmHWM")
	if err != nil {
		return run{}, err
	}
	return run{
		heapMB: med(samples), hwmMB: float64(hwm) / 1024, baseMB: base,
		ok:      res.UAC.ExitCode == 0 && res.UAC.Failed == 0 && res.UAC.Successful == calls,
		summary: res.Summary(),
	}, nil
}

var heapInuse = regexp.MustCompile(`# HeapInuse = (\d+)`)

// heap forces a collection and returns the live heap (HeapInuse, MB).
func heap(ctx context.Context, httpAddr string) (float64, error) {
	url := "http://" + httpAddr + "/debug/pprof/heap?debug=1&gc=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, res.Status)
	}
	text, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	m := heapInuse.FindSubmatch(text)
	if m == nil {
		return 0, fmt.Errorf("no HeapInuse in the heap profile")
	}
	inuse, _ := strconv.ParseFloat(string(m[1]), 64)
	return inuse / (1 << 20), nil
}
