package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// target is a server under test: sipwarden or Kamailio, restarted before
// every step.
type target interface {
	name() string
	start(ctx context.Context) error
	stop()
	// pid is the server's main process; its process group holds every
	// process of the server (Kamailio forks its workers).
	pid() int
	sipAddr() string // ip:port, UDP and TCP
	exited() bool
	logTail(n int) string
}

// sipwardenTarget runs the sipwarden binary with the bench's configuration
// (same data dir at every start).
type sipwardenTarget struct {
	b   *bench
	srv *harness.Server
}

func (t *sipwardenTarget) name() string { return "sipwarden" }

func (t *sipwardenTarget) start(ctx context.Context) error {
	dir := filepath.Join(t.b.work, fmt.Sprintf("server-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	srv, err := harness.StartServer(sctx, t.b.bin, dir, t.b.cfg)
	if err != nil {
		return err
	}
	t.srv = srv
	return nil
}

func (t *sipwardenTarget) stop() {
	if t.srv == nil {
		return
	}
	if err := t.srv.Stop(); err != nil {
		logf("sipwarden stop: %v\n%s", err, t.srv.LogTail(20))
	}
	t.srv = nil
}

func (t *sipwardenTarget) pid() int             { return t.srv.PID() }
func (t *sipwardenTarget) pprofHTTP() string    { return t.srv.Config.HTTP }
func (t *sipwardenTarget) sipAddr() string      { return t.srv.SIPAddr() }
func (t *sipwardenTarget) exited() bool         { return t.srv.Exited() }
func (t *sipwardenTarget) logTail(n int) string { return t.srv.LogTail(n) }

// kamailioTarget runs Kamailio (Debian's package) with
// bench/kamailio/kamailio.cfg: 2 UDP and 2 TCP workers, credentials in
// htable loaded from a db_text table written from the bench's users, usrloc
// in memory.
type kamailioTarget struct {
	b      *bench
	bin    string // kamailio
	cfg    string // kamailio.cfg
	dbDir  string // db_text directory: version, htable
	addr   string // 127.0.0.1:port, UDP and TCP
	shm    int    // -m, MB of shared memory
	proc   *harness.Proc
	logDir string
}

func (t *kamailioTarget) name() string { return "kamailio" }

// writeKamailioDB writes the db_text database Kamailio's htable "auth" is
// loaded from: one row per user, key user, value the plain password.
func writeKamailioDB(dir string, users []harness.User) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte("table_name(str) table_version(int)\nhtable:2\n"), 0o600); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("key_name(str) key_type(int) value_type(int) key_value(str) expires(int)\n")
	for _, u := range users {
		if strings.ContainsAny(u.Name+u.Password, ":\\\n\r\t") {
			return fmt.Errorf("user %q: name or password not usable in db_text", u.Name)
		}
		fmt.Fprintf(&b, "%s:0:0:%s:0\n", u.Name, u.Password)
	}
	return os.WriteFile(filepath.Join(dir, "htable"), []byte(b.String()), 0o600)
}

func (t *kamailioTarget) start(ctx context.Context) error {
	dir := filepath.Join(t.b.work, fmt.Sprintf("kamailio-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	t.logDir = dir
	args := []string{
		"-f", t.cfg, "-DD", "-E",
		"-m", strconv.Itoa(t.shm), "-M", "16",
		"-A", `DBURL="text://` + t.dbDir + `"`,
		"-l", "udp:" + t.addr, "-l", "tcp:" + t.addr,
		"-w", dir, "-Y", dir,
	}
	p, err := harness.StartProc(harness.ProcSpec{
		Name: "kamailio", Path: t.bin, Args: args, Dir: dir,
		LogPath: filepath.Join(dir, "kamailio.log"),
	})
	if err != nil {
		return err
	}
	t.proc = p
	err = harness.Poll(ctx, 20*time.Second, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("kamailio exited at start: %v", p.Err())
		}
		if _, err := harness.UDPSocketDrops(p.PID(), t.addr); err != nil {
			return false, nil
		}
		return harness.TCPListening(p.PID(), t.addr)
	})
	if err != nil {
		t.stop()
		return fmt.Errorf("kamailio on %s: %w\n%s", t.addr, err, harness.FileTail(filepath.Join(dir, "kamailio.log"), 30))
	}
	return nil
}

func (t *kamailioTarget) stop() {
	if t.proc == nil {
		return
	}
	pid := t.proc.PID()
	if err := t.proc.Stop(5 * time.Second); err != nil && !strings.Contains(err.Error(), "signal: terminated") && !strings.Contains(err.Error(), "exit status") {
		logf("kamailio stop: %v", err)
	}
	// Workers that outlive the main process: its group, by its id.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	t.proc = nil
}

func (t *kamailioTarget) pid() int        { return t.proc.PID() }
func (t *kamailioTarget) sipAddr() string { return t.addr }
func (t *kamailioTarget) exited() bool    { return t.proc.Exited() }
func (t *kamailioTarget) logTail(n int) string {
	return harness.FileTail(filepath.Join(t.logDir, "kamailio.log"), n)
}

// kamailioPath finds the kamailio binary (Debian installs it in /usr/sbin,
// which may not be on PATH).
func kamailioPath() (string, error) {
	if p, err := exec.LookPath("kamailio"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/kamailio"); err == nil {
		return "/usr/sbin/kamailio", nil
	}
	return "", fmt.Errorf("kamailio not found: run scripts/install-peers.sh --bench (apt-get install kamailio)")
}

// groupPIDs returns the processes of process group pgid.
func groupPIDs(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[0] state, f[1] ppid, f[2] pgrp
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupCPU returns the user+system CPU ms of every live process of group
// pgid.
func groupCPU(pgid int) float64 {
	var ms float64
	for _, pid := range groupPIDs(pgid) {
		if v, err := harness.CPUTime(pid); err == nil {
			ms += v
		}
	}
	return ms
}

// groupsCPU is groupCPU summed over the groups.
func groupsCPU(pgids []int) float64 {
	var ms float64
	for _, g := range pgids {
		ms += groupCPU(g)
	}
	return ms
}

// groupPSSKB returns the summed proportional set size (kB) of the group's
// processes: memory shared between Kamailio's processes (its shm) counted
// once, split among them; for a single process it is its RSS.
func groupPSSKB(pgids []int) int64 {
	var pids []int
	for _, g := range pgids {
		pids = append(pids, groupPIDs(g)...)
	}
	var kb int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					v, _ := strconv.ParseInt(f[0], 10, 64)
					kb += v
				}
				break
			}
		}
	}
	return kb
}

// memSampler records the peak of groupPSSKB(pgids), sampled every interval,
// and, when every is set, calls it with each sample.
type memSampler struct {
	mu     sync.Mutex
	peakKB int64
	stopc  chan struct{}
	done   chan struct{}
}

func sampleMemory(pgids []int, interval time.Duration, every func(kb int64)) *memSampler {
	m := &memSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			kb := groupPSSKB(pgids)
			m.mu.Lock()
			m.peakKB = max(m.peakKB, kb)
			m.mu.Unlock()
			if every != nil {
				every(kb)
			}
			select {
			case <-m.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// stop ends the sampling after one last sample and returns the peak, MB.
func (m *memSampler) stop(pgids []int) float64 {
	close(m.stopc)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peakKB = max(m.peakKB, groupPSSKB(pgids))
	return float64(m.peakKB) / 1024
}
