// Package redistest starts a real redis-server for tests: on a loopback
// port, with no persistence unless asked, stopped by its PID when the test
// ends. A test that needs Redis fails when redis-server is not installed
// (scripts/install-peers.sh, which make test runs, installs it): it is
// part of the suite, not optional.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	// paused: stopped by Pause (SIGSTOP) and not yet resumed.
	paused bool
}

// Start starts redis-server on a free loopback port with extra arguments
// (such as "--appendonly", "yes"), in a directory of the test's own.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (scripts/install-peers.sh installs it): %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), args: extra}
	var lastErr error
	for range 5 {
		s.port = freePort(t)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// host is the loopback address redis-server binds.
const host = "127.0.0.1"

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() error {
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", host, "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning"}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(s.dir + "/redis.log")
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			b, _ := os.ReadFile(s.dir + "/redis.log")
			return fmt.Errorf("redis-server exited: %s", strings.TrimSpace(string(b)))
		default:
		}
		if s.ping() == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill(syscall.SIGKILL)
	return fmt.Errorf("redis-server on port %d did not answer within 5s", s.port)
}

// ping sends PING and waits for PONG.
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("ping: got %q", line)
	}
	return nil
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(host, strconv.Itoa(s.port)) }

// URL returns the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Pause freezes the server (SIGSTOP to its PID): its port still accepts
// connections and takes commands, which are answered only after Resume,
// as a Redis that hangs rather than dies.
func (s *Server) Pause() {
	if s.cmd != nil && !s.paused {
		s.kill(syscall.SIGSTOP)
		s.paused = true
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil && s.paused {
		s.kill(syscall.SIGCONT)
		s.paused = false
	}
}

// Stop stops the server (SIGTERM to its PID, then SIGKILL after 5 s).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.Resume() // a stopped process acts on SIGTERM only once continued
	s.kill(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.kill(syscall.SIGKILL)
		<-s.done
	}
	s.cmd, s.paused = nil, false
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.kill(syscall.SIGKILL)
	<-s.done
	s.cmd, s.paused = nil, false
}

// Restart starts the server again on the same port and directory, after
// Stop or Kill.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 20 { // the port may linger a moment
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restart redis-server: %v", err)
}

func (s *Server) kill(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig) // by PID, never by name
	}
}

// Do sends one command in the inline protocol and returns the first line
// of the answer, for tests that poke at Redis (FLUSHALL, DBSIZE).
func (s *Server) Do(cmd string) string {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		s.t.Fatalf("redis %s: %v", cmd, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		s.t.Fatalf("redis %s: %v", cmd, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		s.t.Fatalf("redis %s: %v", cmd, err)
	}
	return strings.TrimSpace(line)
}

// Info returns the answer of INFO section (a bulk string).
func (s *Server) Info(section string) string {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		s.t.Fatalf("redis INFO %s: %v", section, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "INFO %s\r\n", section); err != nil {
		s.t.Fatalf("redis INFO %s: %v", section, err)
	}
	rd := bufio.NewReader(c)
	head, err := rd.ReadString('\n')
	if err != nil {
		s.t.Fatalf("redis INFO %s: %v", section, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if err != nil {
		s.t.Fatalf("redis INFO %s: got %q", section, head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rd, body); err != nil {
		s.t.Fatalf("redis INFO %s: %v", section, err)
	}
	return string(body)
}

// Calls returns how many times the server ran the command cmd (lower
// case, as INFO commandstats names it: "evalsha", "publish").
func (s *Server) Calls(cmd string) int {
	s.t.Helper()
	for _, line := range strings.Split(s.Info("commandstats"), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			return n
		}
	}
	return 0
}

// HVals returns the values of the hash at key (none when there is no
// such key).
func (s *Server) HVals(key string) []string {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		s.t.Fatalf("redis HVALS %s: %v", key, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "*2\r\n$5\r\nHVALS\r\n$%d\r\n%s\r\n", len(key), key); err != nil {
		s.t.Fatalf("redis HVALS %s: %v", key, err)
	}
	rd := bufio.NewReader(c)
	head, err := rd.ReadString('\n')
	if err != nil {
		s.t.Fatalf("redis HVALS %s: %v", key, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "*")))
	if err != nil || !strings.HasPrefix(head, "*") {
		s.t.Fatalf("redis HVALS %s: got %q", key, head)
	}
	out := make([]string, 0, max(n, 0))
	for range n {
		h, err := rd.ReadString('\n')
		if err != nil {
			s.t.Fatalf("redis HVALS %s: %v", key, err)
		}
		m, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(h, "$")))
		if err != nil || m < 0 {
			s.t.Fatalf("redis HVALS %s: got %q", key, h)
		}
		v := make([]byte, m+2) // and its CRLF
		if _, err := io.ReadFull(rd, v); err != nil {
			s.t.Fatalf("redis HVALS %s: %v", key, err)
		}
		out = append(out, string(v[:m]))
	}
	return out
}
