package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Call is one entry of GET /v1/calls: a dialog the proxy established.
type Call struct {
	ID                 string `json:"id"`
	CallID             string `json:"call_id"`
	Caller             string `json:"caller"`
	Callee             string `json:"callee"`
	CallerCredentialID string `json:"caller_credential_id"`
	CalleeCredentialID string `json:"callee_credential_id"`
	StartedAt          string `json:"started_at"`
}

// Calls lists the live calls, following the cursor over every page (at
// most 1000 pages).
func (a *API) Calls(ctx context.Context) ([]Call, error) {
	var all []Call
	after := ""
	for range 1000 {
		q := url.Values{}
		q.Set("page[size]", "1000")
		if after != "" {
			q.Set("page[after]", after)
		}
		var page struct {
			Data []Call `json:"data"`
			Meta struct {
				NextCursor string `json:"next_cursor"`
			} `json:"meta"`
		}
		if err := a.do(ctx, http.MethodGet, "/v1/calls?"+q.Encode(), nil, http.StatusOK, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if page.Meta.NextCursor == "" {
			return all, nil
		}
		after = page.Meta.NextCursor
	}
	return nil, errors.New("calls: more than 1000 pages")
}

// CallRun is a run of sipp calls through sipwarden's proxy: a sipp UAS
// (UASScenario) registered as Callee answers; a sipp UAC (UACScenario)
// places Calls calls from the users of the Callers injection file to the
// Callee, authenticating with digest after the proxy's 407.
type CallRun struct {
	UACScenario      string // testdata/sipp/uac_invite_digest.xml
	UASScenario      string // testdata/sipp/uas_answer.xml
	RegisterScenario string // testdata/sipp/register_digest.xml
	Callers          string // injection file of the callers (WriteUsersCSV)
	Callee           User   // a credential of the server
	Transport        string // sipp -t for both sides: u1 or t1
	Target           string // the server's host:port
	// RegisterTarget is where the callee registers (another node of a
	// cluster than the callers' Target); "": Target.
	RegisterTarget string
	// Registered, when set, is called once the callee is registered and
	// before the UAS starts: it waits for what the calls need (the binding
	// replicated to the callers' node); an error ends the run.
	Registered  func(ctx context.Context) error
	Rate, Calls int
	// Hold is how long each call lasts, ACK to BYE (UAC -d). Calls with
	// none may fail without a fault of the proxy: an ACK and a BYE sent
	// back to back may be forwarded out of order, and sipp's UAS aborts a
	// call whose ACK arrives while it is answering the BYE.
	Hold time.Duration
	// UASExtra are more arguments for the sipp UAS (-key NAME VALUE).
	UASExtra    []string
	Limit       int           // UAC -l; 0: sipp's default
	RecvTimeout time.Duration // UAC -recv_timeout (default 10 s)
	Timeout     time.Duration // kills the UAC after this (default 2 min)
	Dir         string        // working directory: each side in its own
	BuffSize    int           // -buff_size of both sides; 0: sipp's default
	RTT         bool          // UAC -trace_rtt: rtd 1 call set-up, rtd 2 BYE (UAC.RTTs, UAC.RTTs2)
	RTTFreq     int
}

// CallResult is what both sides of a call run reported.
type CallResult struct {
	UAC SippResult
	// UASExit is the UAS's exit error: nil when it handled every call
	// successfully and exited by itself (-m Calls).
	UASExit                                      error
	UASSuccessful, UASFailed, UASRetransmissions int
	UASOutput                                    string  // its output file
	UASCPU                                       float64 // its CPU ms
}

// Summary is a one-line account of both sides.
func (r CallResult) Summary() string {
	return fmt.Sprintf("UAC: %s; UAS: exit %v, %d successful, %d failed, %d retransmissions",
		r.UAC.Summary(), r.UASExit, r.UASSuccessful, r.UASFailed, r.UASRetransmissions)
}

// Diagnostics returns the tails of both sides' output and error logs.
func (r CallResult) Diagnostics() string {
	s := "UAC " + r.UAC.Diagnostics() + "\nUAS output:\n" + FileTail(r.UASOutput, 30)
	errs := filepath.Join(filepath.Dir(r.UASOutput), "errors.log")
	if _, err := os.Stat(errs); err == nil {
		s += "\nUAS errors:\n" + FileTail(errs, 40)
	}
	return s
}

// RunCalls registers the callee from a free local port with a sipp
// REGISTER flow from that very port (so the binding's source is the
// UAS's socket: its UDP port, or over TCP the connection sipp binds to
// its -p port, to which the proxy then connects), starts the UAS there,
// runs the UAC, and waits up to 10 s for the UAS to finish its Calls calls
// and exit. The UAS is stopped by its PID in any case. An error means a
// side could not be run; failed calls are in the result.
func RunCalls(ctx context.Context, run CallRun) (CallResult, error) {
	var res CallResult
	if err := os.MkdirAll(run.Dir, 0o755); err != nil {
		return res, err
	}
	port, err := FreeSIPPort()
	if err != nil {
		return res, err
	}
	calleeCSV := filepath.Join(run.Dir, "callee.csv")
	if err := WriteUsersCSV(calleeCSV, []User{run.Callee}); err != nil {
		return res, err
	}
	reg, err := RunSipp(ctx, SippRun{
		Scenario: run.RegisterScenario, Users: calleeCSV, Transport: run.Transport, Target: orDefault(run.RegisterTarget, run.Target),
		Rate: 1, Calls: 1, LocalPort: port, RecvTimeout: 5 * time.Second, Timeout: 30 * time.Second,
		Dir: filepath.Join(run.Dir, "register"),
	})
	if err != nil {
		return res, fmt.Errorf("register the callee: %w", err)
	}
	if reg.ExitCode != 0 || reg.Successful != 1 {
		return res, fmt.Errorf("register the callee: %s\n%s", reg.Summary(), reg.Diagnostics())
	}
	if run.Registered != nil {
		if err := run.Registered(ctx); err != nil {
			return res, fmt.Errorf("after the callee registered: %w", err)
		}
	}

	uas, err := startUAS(ctx, run, port)
	if err != nil {
		return res, err
	}
	res.UASOutput = uas.output
	defer func() { _ = uas.proc.Stop(2 * time.Second) }()

	res.UAC, err = RunSipp(ctx, SippRun{
		Scenario: run.UACScenario, Users: run.Callers, Transport: run.Transport, Target: run.Target,
		Rate: run.Rate, Calls: run.Calls, Limit: run.Limit, RecvTimeout: run.RecvTimeout,
		Timeout: run.Timeout, Dir: filepath.Join(run.Dir, "uac"), BuffSize: run.BuffSize,
		RTT: run.RTT, RTTFreq: run.RTTFreq,
		Extra: []string{"-s", run.Callee.Name, "-d", strconv.FormatInt(run.Hold.Milliseconds(), 10)},
	})
	if err != nil {
		return res, err
	}
	// With -m Calls the UAS exits by itself once it has handled them all;
	// after failed calls it never will: give it less time to finish.
	grace := 10 * time.Second
	if res.UAC.Failed > 0 {
		grace = 2 * time.Second
	}
	select {
	case <-uas.proc.Done():
		res.UASExit = uas.proc.Err()
	case <-time.After(grace):
		res.UASExit = fmt.Errorf("sipp UAS (pid %d) still running %v after the UAC ended: stopped", uas.proc.PID(), grace)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if ms, err := CPUTimeOfExited(uas.proc); err == nil {
		res.UASCPU = ms
	}
	_ = uas.proc.Stop(2 * time.Second) // statistics are written at exit
	stats, err := lastStats(uas.stat)
	if err != nil {
		return res, fmt.Errorf("sipp UAS %w\n%s", err, FileTail(uas.output, 20))
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"SuccessfulCall(C)", &res.UASSuccessful}, {"FailedCall(C)", &res.UASFailed},
		{"Retransmissions(C)", &res.UASRetransmissions},
	} {
		if *f.dst, err = strconv.Atoi(stats[f.name]); err != nil {
			return res, fmt.Errorf("sipp UAS statistics: %s = %q", f.name, stats[f.name])
		}
	}
	return res, nil
}

// UAS is a sipp UAS started by StartUAS.
type UAS struct{ u *uasProc }

// StartUAS starts a sipp UAS (scenario, answering as service) on
// 127.0.0.1:port over UDP for calls calls, its files in dir, and waits for
// its socket, with extra sipp arguments (-key NAME VALUE). Stop it with
// Stop.
func StartUAS(ctx context.Context, scenario, service, dir string, port, calls int, extra ...string) (*UAS, error) {
	u, err := startUAS(ctx, CallRun{UASScenario: scenario, Callee: User{Name: service}, Transport: "u1", Calls: calls, Dir: dir, UASExtra: extra}, port)
	if err != nil {
		return nil, err
	}
	return &UAS{u}, nil
}

// Stop stops the UAS and returns its successful and failed calls (from
// its statistics file).
func (u *UAS) Stop() (successful, failed int, err error) {
	_ = u.u.proc.Stop(2 * time.Second)
	stats, err := lastStats(u.u.stat)
	if err != nil {
		return 0, 0, fmt.Errorf("sipp UAS statistics: %w\n%s", err, FileTail(u.u.output, 20))
	}
	successful, _ = strconv.Atoi(stats["SuccessfulCall(C)"])
	failed, _ = strconv.Atoi(stats["FailedCall(C)"])
	return successful, failed, nil
}

// Output is the tail of the UAS's output.
func (u *UAS) Output() string { return FileTail(u.u.output, 30) }

type uasProc struct {
	proc         *Proc
	output, stat string
}

// startUAS starts the sipp UAS on port and waits up to 10 s for its
// socket to be bound (UDP) or listening (TCP).
func startUAS(ctx context.Context, run CallRun, port int) (*uasProc, error) {
	dir := filepath.Join(run.Dir, "uas")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	scen := filepath.Join(dir, filepath.Base(run.UASScenario))
	if err := copyFile(run.UASScenario, scen); err != nil {
		return nil, err
	}
	u := &uasProc{output: filepath.Join(dir, "sipp.out"), stat: filepath.Join(dir, "stat.csv")}
	args := []string{
		"-sf", scen, "-s", run.Callee.Name, "-t", run.Transport,
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-m", strconv.Itoa(run.Calls),
		"-nostdin", "-trace_stat", "-stf", u.stat, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
	}
	if run.BuffSize > 0 {
		args = append(args, "-buff_size", strconv.Itoa(run.BuffSize))
	}
	args = append(args, run.UASExtra...)
	path, err := exec.LookPath("sipp")
	if err != nil {
		return nil, err
	}
	u.proc, err = StartProc(ProcSpec{Name: "sipp uas", Path: path, Args: args, Dir: dir, LogPath: u.output})
	if err != nil {
		return nil, err
	}
	addr := hostPort(port)
	err = Poll(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		if u.proc.Exited() {
			return false, fmt.Errorf("sipp UAS exited at start: %v\n%s", u.proc.Err(), FileTail(u.output, 20))
		}
		if run.Transport == "t1" {
			return TCPListening(u.proc.PID(), addr)
		}
		_, err := UDPSocketDrops(u.proc.PID(), addr)
		return err == nil, nil
	})
	if err != nil {
		_ = u.proc.Stop(2 * time.Second)
		return nil, fmt.Errorf("sipp UAS on %s (%s): %w", addr, run.Transport, err)
	}
	return u, nil
}

// TCPListening reports whether a TCP socket listens on addr (IPv4
// ip:port) in process pid's network namespace (/proc/PID/net/tcp, state
// 0A).
func TCPListening(pid int, addr string) (bool, error) {
	want, err := procAddr(addr)
	if err != nil {
		return false, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[1] == want && f[3] == "0A" {
			return true, nil
		}
	}
	return false, nil
}

// CPUTimeOfExited returns the user+system CPU time in milliseconds of a
// process that has exited (an error while it runs).
func CPUTimeOfExited(p *Proc) (float64, error) {
	if !p.Exited() || p.cmd.ProcessState == nil {
		return 0, errors.New("harness: process still running")
	}
	st := p.cmd.ProcessState
	return float64((st.UserTime() + st.SystemTime()).Microseconds()) / 1000, nil
}
