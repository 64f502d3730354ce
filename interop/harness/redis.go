package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Redis is a redis-server (Debian's package) started for a cluster bench:
// on a loopback port, with no persistence (no RDB snapshots, no
// appendonly), in its own process group, stopped by its PID.
type Redis struct {
	Addr    string // 127.0.0.1:port
	LogPath string
	proc    *Proc
}

// RedisPath finds redis-server (scripts/install-peers.sh installs it).
func RedisPath() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("redis-server not found: run scripts/install-peers.sh (apt-get install redis-server)")
}

// StartRedis starts redis-server on a free loopback port with dir as its
// working directory and log, and waits up to 10 s for it to answer PING.
// extra are more arguments (such as "--maxmemory", "2gb").
func StartRedis(ctx context.Context, dir string, extra ...string) (*Redis, error) {
	bin, err := RedisPath()
	if err != nil {
		return nil, err
	}
	port, err := FreeTCPPort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Addr: hostPort(port), LogPath: filepath.Join(dir, "redis.log")}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning"}, extra...)
	p, err := StartProc(ProcSpec{Name: "redis-server", Path: bin, Args: args, Dir: dir, LogPath: r.LogPath})
	if err != nil {
		return nil, err
	}
	r.proc = p
	err = Poll(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("redis-server exited at start: %v\n%s", p.Err(), FileTail(r.LogPath, 20))
		}
		_, err := r.Do("PING")
		return err == nil, nil
	})
	if err != nil {
		r.Stop()
		return nil, fmt.Errorf("redis-server on %s: %w", r.Addr, err)
	}
	return r, nil
}

// URL is the redis:// URL of database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// PID is redis-server's process ID.
func (r *Redis) PID() int { return r.proc.PID() }

// Exited reports whether redis-server has ended.
func (r *Redis) Exited() bool { return r.proc.Exited() }

// Stop stops redis-server by its PID (SIGTERM, SIGKILL after 5 s).
func (r *Redis) Stop() {
	if r.proc == nil {
		return
	}
	_ = r.proc.Stop(5 * time.Second)
}

// Do sends one inline command and returns the answer: a simple string,
// an integer or a bulk string's text (enough for PING, DBSIZE, INFO).
func (r *Redis) Do(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", cmd, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", fmt.Errorf("redis %s: %w", cmd, err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", cmd, err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, ":"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis %s: %s", cmd, line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 || n > 1<<20 {
			return "", fmt.Errorf("redis %s: bulk length %q", cmd, line[1:])
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", fmt.Errorf("redis %s: %w", cmd, err)
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis %s: unexpected answer %q", cmd, line)
}

// Info returns the fields of INFO section (such as "memory") by name.
func (r *Redis) Info(section string) (map[string]string, error) {
	s, err := r.Do("INFO " + section)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[k] = v
		}
	}
	return out, nil
}
