package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcSpec describes a child process.
type ProcSpec struct {
	Name    string // for messages
	Path    string
	Args    []string
	Dir     string
	LogPath string   // stdout and stderr go here (appended)
	Env     []string // NAME=value added to (and overriding) our environment
	Unset   []string // names removed from the environment
	Stdin   bool     // keep a pipe on stdin, written with Send
}

// Proc is a child process in its own process group. Stop it by its PID,
// never by name.
type Proc struct {
	spec  ProcSpec
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *os.File
	done  chan struct{}

	mu      sync.Mutex
	waitErr error
	stopped bool
}

// StartProc starts the process described by spec.
func StartProc(spec ProcSpec) (*Proc, error) {
	log, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = environ(spec.Env, spec.Unset)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Proc{spec: spec, cmd: cmd, log: log, done: make(chan struct{})}
	if spec.Stdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			log.Close()
			return nil, fmt.Errorf("%s stdin: %w", spec.Name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func environ(set, unset []string) []string {
	drop := map[string]bool{}
	for _, kv := range set {
		name, _, _ := strings.Cut(kv, "=")
		drop[name] = true
	}
	for _, name := range unset {
		drop[name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// PID is the process ID (and process group ID).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error once it has exited (nil for exit 0).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Send writes s to the process's stdin.
func (p *Proc) Send(s string) error {
	if p.stdin == nil {
		return fmt.Errorf("%s: no stdin pipe", p.spec.Name)
	}
	_, err := io.WriteString(p.stdin, s)
	return err
}

// Stop sends SIGTERM to the process, waits up to grace, then sends SIGKILL
// to its process group and waits up to 5 s more. It returns the exit error
// of a process that ended on its own or on SIGTERM (nil for exit 0), or an
// error when it had to be killed. Stopping twice is harmless.
func (p *Proc) Stop(grace time.Duration) error {
	p.mu.Lock()
	first := !p.stopped
	p.stopped = true
	p.mu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
	}
	pid := p.PID()
	if first && !p.Exited() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return p.Err()
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v: killed", p.spec.Name, pid, grace)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 5s", p.spec.Name, pid)
	}
}

// Kill sends SIGKILL to the process group (kill -9, by PID) and waits up
// to 5 s for the process to exit.
func (p *Proc) Kill() error {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	pid := p.PID()
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !p.Exited() {
		return fmt.Errorf("kill -9 %s (pid %d): %w", p.spec.Name, pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 5s", p.spec.Name, pid)
	}
}

// FileTail returns the last n lines of the file at path (a note when it
// cannot be read).
func FileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// errKilled is reported when a context ended a process.
var errKilled = errors.New("harness: process killed at its deadline")
