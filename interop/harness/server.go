// Package harness starts a real sipwarden binary and drives it from the
// outside: its REST API, sipp runs and child processes in their own process
// groups. The interop suite (build tag interop) and the benchmark driver
// (bench/cmd/bench) share it. It imports nothing of sipwarden: the server is
// a black box built with go build.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RepoRoot returns the directory of sipwarden's go.mod, searched upwards from
// the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for range 32 {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/sipwarden/sipwarden")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("harness: sipwarden's go.mod not found above the working directory")
}

// BuildServer builds ./cmd/sipwarden of the module at root into dir and
// returns the binary's path. It gives up after 5 minutes.
func BuildServer(ctx context.Context, root, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "sipwarden")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sipwarden")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/sipwarden: %w\n%s", err, out)
	}
	return bin, nil
}

// Config is the part of sipwarden's configuration the harness sets. Empty
// strings and nil lists leave the server's default.
type Config struct {
	DataDir   string
	LogLevel  string // default info
	Realm     string // default sipwarden.test
	Domain    string // default sipwarden.test
	UDP       string // ip:port, or "-" to disable
	TCP       string
	TLS       string
	WS, WSS   string // SIP over WebSocket; "" or "-" disables
	HTTP      string
	APIKey    string
	UDPBuffer int // bytes; 0: 4194304
	// MaxMessageBytes is sip.max_message_bytes; 0: the server's default.
	MaxMessageBytes int

	Algorithms    []string // default [MD5]
	QOP           []string // default [auth]
	NonceLifetime string   // default 5m

	DefaultExpires, MinExpires, MaxExpires, MaxContacts int // 0: 3600, 60, 7200, 1
	FlushInterval                                       string

	// ExemptCIDRs are never banned by the brute-force guard (tests that
	// send many wrong passwords on purpose).
	ExemptCIDRs []string

	// JWT enables RFC 8898 Bearer authentication in SIP.
	JWT bool

	// Routes are proxy.routes: outbound routes by prefix to a gateway URI.
	Routes []Route

	// Pprof serves /debug/pprof/ on the HTTP listener (bench -profile).
	Pprof bool

	// MaxQueueDelay is limits.max_queue_delay; "": the server's default
	// (100ms). LoopbackConfig sets 1s: the interop tests run real peers at
	// modest rates on shared machines, where a starved server must be
	// slow rather than shed; the benchmark measures the default.
	MaxQueueDelay string

	// Cluster, when its RedisURL is set, makes the server a cluster node.
	Cluster Cluster
}

// Cluster is the cluster section: the Redis the nodes share, this node's
// name and the address the other nodes reach its SIP at (UDP; default:
// the node's UDP address).
type Cluster struct {
	RedisURL, NodeName, Advertise string
	Timeout                       string // one Redis command's bound; "": the server's default
}

func (c Cluster) yaml(udp string) string {
	if c.RedisURL == "" {
		return ""
	}
	s := fmt.Sprintf("cluster: {redis_url: %q, node_name: %q, advertise: %q", c.RedisURL, c.NodeName, orDefault(c.Advertise, udp))
	if c.Timeout != "" {
		s += fmt.Sprintf(", timeout: %s", c.Timeout)
	}
	return s + "}\n"
}

// DefaultAPIKey is the admin key of the servers the harness starts.
const DefaultAPIKey = "test-admin-key-0123456789"

// LoopbackConfig returns a configuration with free loopback ports: UDP and
// TCP on one port, TLS on another, HTTP on a third.
func LoopbackConfig(dataDir string) (Config, error) { return LoopbackConfigOn(dataDir, "127.0.0.1") }

// LoopbackConfigOn is LoopbackConfig with every listener on the loopback
// address ip (such as 127.0.0.2: several servers, one address each).
func LoopbackConfigOn(dataDir, ip string) (Config, error) {
	sip, err := freeSIPPortOn(ip)
	if err != nil {
		return Config{}, err
	}
	tls, err := freeTCPPortOn(ip)
	if err != nil {
		return Config{}, err
	}
	httpPort, err := freeTCPPortOn(ip)
	if err != nil {
		return Config{}, err
	}
	return Config{
		DataDir: dataDir,
		UDP:     ipPort(ip, sip), TCP: ipPort(ip, sip), TLS: ipPort(ip, tls),
		HTTP:          ipPort(ip, httpPort),
		APIKey:        DefaultAPIKey,
		MaxQueueDelay: "1s",
	}, nil
}

func hostPort(port int) string { return ipPort("127.0.0.1", port) }

func ipPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func yamlList(l []string, def string) string {
	if len(l) == 0 {
		return def
	}
	return "[" + strings.Join(l, ", ") + "]"
}

func yamlQuotedList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// YAML renders c as a sipwarden configuration file.
func (c Config) YAML() string {
	return fmt.Sprintf(`data_dir: %q
log: {level: %s, format: text}
sip:
  realm: %s
  domain: %s
  listen: {udp: %q, tcp: %q, tls: %q, ws: %q, wss: %q}
  tls: {cert_file: "", key_file: ""}
  udp_buffer_bytes: %d
%sauth:
  algorithms: %s
  qop: %s
  nonce_lifetime: %s
registrar: {default_expires: %d, min_expires: %d, max_expires: %d, max_contacts: %d, binding_flush_interval: %s}
http: {listen: %q, api_key: %q, pprof: %t}
guard: {exempt_cidrs: %s}
jwt: {enabled: %t}
%s%s%s`,
		c.DataDir, orDefault(c.LogLevel, "info"),
		orDefault(c.Realm, "sipwarden.test"), orDefault(c.Domain, "sipwarden.test"),
		orDefault(c.UDP, "-"), orDefault(c.TCP, "-"), orDefault(c.TLS, "-"), orDefault(c.WS, "-"), orDefault(c.WSS, "-"),
		orDefault(c.UDPBuffer, 4194304), maxMessage(c.MaxMessageBytes),
		yamlList(c.Algorithms, "[MD5]"), yamlList(c.QOP, "[auth]"), orDefault(c.NonceLifetime, "5m"),
		orDefault(c.DefaultExpires, 3600), orDefault(c.MinExpires, 60), orDefault(c.MaxExpires, 7200),
		orDefault(c.MaxContacts, 1), orDefault(c.FlushInterval, "1s"),
		c.HTTP, orDefault(c.APIKey, DefaultAPIKey), c.Pprof, yamlQuotedList(c.ExemptCIDRs), c.JWT, limitsYAML(c.MaxQueueDelay), routesYAML(c.Routes), c.Cluster.yaml(c.UDP))
}

func limitsYAML(maxQueueDelay string) string {
	if maxQueueDelay == "" {
		return ""
	}
	return fmt.Sprintf("limits: {max_queue_delay: %s}\n", maxQueueDelay)
}

// Route is one proxy.routes entry.
type Route struct{ Name, Prefix, Gateway string }

func routesYAML(rs []Route) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("proxy:\n  routes:\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "  - {name: %q, prefix: %q, gateway: %q}\n", r.Name, r.Prefix, r.Gateway)
	}
	return b.String()
}

func maxMessage(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("  max_message_bytes: %d\n", n)
}

// Server is a running sipwarden serve process.
type Server struct {
	Bin     string
	Config  Config
	LogPath string // its stderr and stdout
	proc    *Proc
}

// StartServer writes cfg to dir/sipwarden.yaml, starts bin serve with it in
// its own process group, logging to dir/server.log, and waits up to 30 s for
// /readyz to answer 200 (/healthz answers as soon as HTTP is bound, before
// the store is open and the API is served). On error the process is
// stopped.
func StartServer(ctx context.Context, bin, dir string, cfg Config) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	cfgPath := filepath.Join(dir, "sipwarden.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.YAML()), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	s := &Server{Bin: bin, Config: cfg, LogPath: filepath.Join(dir, "server.log")}
	p, err := StartProc(ProcSpec{
		Name: "sipwarden", Path: bin, Args: []string{"serve", "--config", cfgPath},
		Dir: dir, LogPath: s.LogPath,
		// The server must not take keys from our environment by accident.
		Unset: []string{"SIPWARDEN_API_KEY", "SIPWARDEN_NONCE_KEY"},
	})
	if err != nil {
		return nil, err
	}
	s.proc = p
	if err := s.waitHealthy(ctx, 30*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, s.LogTail(40))
	}
	return s, nil
}

func (s *Server) waitHealthy(ctx context.Context, limit time.Duration) error {
	url := "http://" + s.Config.HTTP + "/readyz"
	client := &http.Client{Timeout: time.Second}
	var last error
	err := Poll(ctx, limit, 50*time.Millisecond, func() (bool, error) {
		if s.proc.Exited() {
			return false, fmt.Errorf("sipwarden exited before it was healthy: %v", s.proc.Err())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			last = err
			return false, nil
		}
		resp.Body.Close()
		last = fmt.Errorf("GET /readyz: %s", resp.Status)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("sipwarden not ready on %s: %w (last: %v)", url, err, last)
	}
	return nil
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.proc.PID() }

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool { return s.proc.Exited() }

// Stop sends SIGTERM, then SIGKILL to its process group after 5 s. It
// returns the exit error, nil for a clean exit.
func (s *Server) Stop() error { return s.proc.Stop(5 * time.Second) }

// Kill kills the server with SIGKILL (kill -9, by its PID) and waits up to
// 5 s for it to be gone.
func (s *Server) Kill() error { return s.proc.Kill() }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string { return FileTail(s.LogPath, n) }

// API returns a client of the server's REST API.
func (s *Server) API() *API {
	return &API{Base: "http://" + s.Config.HTTP, Key: s.Config.APIKey, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// SIPAddr is the server's UDP/TCP address.
func (s *Server) SIPAddr() string { return orDefault(s.Config.UDP, s.Config.TCP) }

// Poll calls f every interval until it returns true or an error, or limit
// passes (an error naming the limit), or ctx ends.
func Poll(ctx context.Context, limit, interval time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// FreeSIPPort returns a loopback port free for both UDP and TCP.
func FreeSIPPort() (int, error) { return freeSIPPortOn("127.0.0.1") }

func freeSIPPortOn(ip string) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", ipPort(ip, 0))
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", ipPort(ip, port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("harness: no port free for both UDP and TCP after 50 tries")
}

// FreeTCPPort returns a free loopback TCP port.
func FreeTCPPort() (int, error) { return freeTCPPortOn("127.0.0.1") }

func freeTCPPortOn(ip string) (int, error) {
	l, err := net.Listen("tcp", ipPort(ip, 0))
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeSIPPortPair returns a port p such that p and p+1 are free for UDP and
// TCP (baresip listens for TLS on sip_listen's port + 1).
func FreeSIPPortPair() (int, error) {
	for range 50 {
		p, err := FreeSIPPort()
		if err != nil {
			return 0, err
		}
		if p >= 65535 {
			continue
		}
		l, err := net.Listen("tcp", hostPort(p+1))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", hostPort(p+1))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return p, nil
	}
	return 0, errors.New("harness: no free pair of consecutive ports after 50 tries")
}

// FetchCPUProfile fetches a CPU profile of secs seconds from the server's
// /debug/pprof/profile at httpAddr (Config.Pprof) into path.
func FetchCPUProfile(ctx context.Context, httpAddr string, secs int, path string) error {
	return FetchProfile(ctx, httpAddr, "profile", secs, path)
}

// FetchProfile is FetchCPUProfile for any of net/http/pprof's profiles
// that take seconds: "profile" (CPU), "allocs" and "heap" (the change
// over those seconds), "trace" (the execution tracer). With secs 0, kind
// is fetched as it is now: "heap" is then what is in use, and
// "heap?debug=1" the same as text ending with runtime.MemStats.
func FetchProfile(ctx context.Context, httpAddr, kind string, secs int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", httpAddr, kind, secs)
	if secs == 0 {
		url = fmt.Sprintf("http://%s/debug/pprof/%s", httpAddr, kind)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, res.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return fmt.Errorf("read profile: %w", err)
	}
	return f.Close()
}
