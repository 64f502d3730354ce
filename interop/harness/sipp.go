package harness

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SippRun is one sipp client run of a scenario against a server.
type SippRun struct {
	Scenario  string // path of the scenario XML; copied into Dir
	Users     string // injection file (-inf)
	Transport string // -t: u1, t1 or tn
	Target    string // host:port of the server
	Rate      int    // calls per second (-r)
	Calls     int    // -m
	Limit     int    // -l, simultaneous calls; 0: sipp's default
	// RecvTimeout aborts a call waiting this long for a message (default 10 s).
	RecvTimeout time.Duration
	// Timeout kills sipp (its process group) after this long (default 2 min).
	Timeout   time.Duration
	Dir       string // working directory: traces, statistics, output
	BuffSize  int    // -buff_size, bytes; 0: sipp's default
	RTT       bool   // -trace_rtt: every flow's response time 1
	RTTFreq   int    // -rtt_freq (default 100); make Calls a multiple of it
	LocalPort int    // -p; 0: a free one
	LocalIP   string // -i; "": 127.0.0.1
	Extra     []string
}

// SippResult is what a sipp run reported.
type SippResult struct {
	ExitCode        int // 0: every call succeeded; 1: at least one failed
	Successful      int // SuccessfulCall(C)
	Failed          int // FailedCall(C)
	Outgoing        int // OutgoingCall(C)
	Retransmissions int // Retransmissions(C)
	CallRate        float64
	Wall            time.Duration // sipp's run time, start to exit
	CPU             time.Duration // sipp's own user+system CPU time
	Stats           map[string]string
	RTTs            []int // response time 1 of each flow, ms (RTT runs)
	RTTs2           []int // response time 2, ms, when the scenario has one
	OutputPath      string
	ErrorsPath      string // -trace_err log; may not exist
}

// Summary is a one-line account of a run.
func (r SippResult) Summary() string {
	return fmt.Sprintf("exit %d, %d successful, %d failed, %d outgoing, %d retransmissions, %.0f calls/s, %v",
		r.ExitCode, r.Successful, r.Failed, r.Outgoing, r.Retransmissions, r.CallRate, r.Wall.Round(time.Millisecond))
}

// Diagnostics returns the tail of sipp's output and error log.
func (r SippResult) Diagnostics() string {
	s := "sipp output:\n" + FileTail(r.OutputPath, 30)
	if _, err := os.Stat(r.ErrorsPath); err == nil {
		s += "\nsipp errors:\n" + FileTail(r.ErrorsPath, 40)
	}
	return s
}

// RunSipp runs sipp as described by run and parses its statistics. An error
// means sipp could not be run or gave no statistics; a run with failed calls
// is a result with ExitCode != 0 and Failed > 0.
func RunSipp(ctx context.Context, run SippRun) (SippResult, error) {
	res := SippResult{OutputPath: filepath.Join(run.Dir, "sipp.out")}
	if err := os.MkdirAll(run.Dir, 0o755); err != nil {
		return res, err
	}
	scen := filepath.Join(run.Dir, filepath.Base(run.Scenario))
	if err := copyFile(run.Scenario, scen); err != nil {
		return res, err
	}
	if run.LocalPort == 0 {
		p, err := FreeSIPPort()
		if err != nil {
			return res, err
		}
		run.LocalPort = p
	}
	recvTimeout := orDefault(run.RecvTimeout, 10*time.Second)
	timeout := orDefault(run.Timeout, 2*time.Minute)
	statPath := filepath.Join(run.Dir, "stat.csv")
	res.ErrorsPath = filepath.Join(run.Dir, "errors.log")
	args := []string{
		"-sf", scen, "-inf", run.Users,
		"-t", run.Transport, "-i", orDefault(run.LocalIP, "127.0.0.1"), "-p", strconv.Itoa(run.LocalPort),
		"-r", strconv.Itoa(run.Rate), "-rp", "1000", "-m", strconv.Itoa(run.Calls),
		"-recv_timeout", strconv.FormatInt(recvTimeout.Milliseconds(), 10),
		"-nostdin",
		"-trace_stat", "-stf", statPath, "-fd", "5",
		"-trace_err", "-error_file", res.ErrorsPath,
		"-trace_screen",
	}
	if run.Limit > 0 {
		args = append(args, "-l", strconv.Itoa(run.Limit))
	}
	if run.Transport == "tn" || run.Transport == "un" {
		// sipp refuses to start when its default of 50,000 sockets exceeds
		// the open-file limit.
		args = append(args, "-max_socket", "4096")
	}
	if run.BuffSize > 0 {
		args = append(args, "-buff_size", strconv.Itoa(run.BuffSize))
	}
	if run.RTT {
		args = append(args, "-trace_rtt", "-rtt_freq", strconv.Itoa(orDefault(run.RTTFreq, 100)))
	}
	args = append(args, run.Extra...)
	args = append(args, run.Target)

	out, err := os.Create(res.OutputPath)
	if err != nil {
		return res, err
	}
	defer out.Close()
	fmt.Fprintf(out, "$ sipp %s\n", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", args...)
	cmd.Dir = run.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	res.Wall = time.Since(start)
	if ctx.Err() != nil {
		return res, fmt.Errorf("sipp killed after %v: %w\n%s", timeout, errKilled, res.Diagnostics())
	}
	res.ExitCode = cmd.ProcessState.ExitCode()
	res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err != nil {
		if _, ok := errors.AsType[*exec.ExitError](err); !ok {
			return res, fmt.Errorf("run sipp: %w", err)
		}
	}
	stats, err := lastStats(statPath)
	if err != nil {
		return res, fmt.Errorf("sipp exit %d, %w\n%s", res.ExitCode, err, res.Diagnostics())
	}
	res.Stats = stats
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"SuccessfulCall(C)", &res.Successful}, {"FailedCall(C)", &res.Failed},
		{"OutgoingCall(C)", &res.Outgoing}, {"Retransmissions(C)", &res.Retransmissions},
	} {
		v, err := strconv.Atoi(stats[f.name])
		if err != nil {
			return res, fmt.Errorf("sipp statistics: %s = %q: %v", f.name, stats[f.name], err)
		}
		*f.dst = v
	}
	res.CallRate, _ = strconv.ParseFloat(stats["CallRate(C)"], 64)
	if run.RTT {
		matches, _ := filepath.Glob(filepath.Join(run.Dir, "*_rtt.csv"))
		if len(matches) != 1 {
			return res, fmt.Errorf("sipp rtt file: found %d (%v)", len(matches), matches)
		}
		if res.RTTs, err = readRTTs(matches[0]); err != nil {
			return res, err
		}
		if res.RTTs2, err = readRTD(matches[0], "2"); err != nil {
			return res, err
		}
	}
	return res, nil
}

// lastStats returns the last line of sipp's statistics file keyed by the
// column names of its header.
func lastStats(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = ';'
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("statistics header: %w", err)
	}
	var last []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("statistics: %w", err)
		}
		last = rec
	}
	if last == nil {
		return nil, errors.New("statistics: no data line")
	}
	m := make(map[string]string, len(header))
	for i, h := range header {
		if i < len(last) {
			m[h] = last[i]
		}
	}
	return m, nil
}

// readRTTs reads response time 1 of a -trace_rtt file:
// "Date_ms;response_time_ms;rtd_no".
func readRTTs(path string) ([]int, error) { return readRTD(path, "1") }

// readRTD reads the samples of response time rtd from a -trace_rtt file.
func readRTD(path, rtd string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []int
	for i, line := range strings.Split(string(b), "\n") {
		if i == 0 || line == "" {
			continue
		}
		parts := strings.Split(line, ";")
		if len(parts) < 3 || parts[2] != rtd {
			continue
		}
		ms, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %q", path, i+1, line)
		}
		out = append(out, int(ms))
	}
	return out, nil
}

// Percentile returns the p-th percentile (0 < p <= 100) of v by the
// nearest-rank method; -1 for an empty slice.
func Percentile(v []int, p float64) int {
	if len(v) == 0 {
		return -1
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(float64(len(s))*p/100)) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
