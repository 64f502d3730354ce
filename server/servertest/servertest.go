// Package servertest starts real sipwarden nodes for tests: in process, on
// loopback ports chosen by the kernel, with a data directory of the
// test's own, stopped when the test ends. Any package's tests can use it
// to exercise a whole node over real sockets.
package servertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/server"
)

// APIKey is the admin API key of the nodes Config configures.
const APIKey = "test-admin-key-0123456789"

// Version is the version test nodes report unless told otherwise.
const Version = "test"

// Realm is the digest realm and SIP domain of the nodes Config configures.
const Realm = "sipwarden.test"

// Main sets sipgo's process-wide settings once, as `sipwarden serve` does,
// with sipgo's log behind a switch (SwapSIPGoLog), then runs the tests.
// Call it from TestMain.
func Main(m *testing.M) {
	cfg, err := config.Default()
	if err != nil {
		panic(err) // TestMain: nothing can run without the defaults
	}
	flag.Parse()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	var h slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})
	sipgoLog.cur.Store(&h)
	server.SetSIPGlobals(cfg, slog.New(sipgoLog))
	os.Exit(m.Run())
}

// sipgoLog receives sipgo's process-wide log; a test may point it at its
// own handler without racing with sipgo.
var sipgoLog = &switchHandler{cur: new(atomic.Pointer[slog.Handler])}

type switchHandler struct {
	cur   *atomic.Pointer[slog.Handler]
	attrs []slog.Attr
}

func (s *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (*s.cur.Load()).Enabled(ctx, l)
}

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return (*s.cur.Load()).WithAttrs(s.attrs).Handle(ctx, r)
}

func (s *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &switchHandler{cur: s.cur, attrs: append(append([]slog.Attr(nil), s.attrs...), as...)}
}

func (s *switchHandler) WithGroup(string) slog.Handler { return s }

// SwapSIPGoLog points sipgo's log at h until the test ends (behind
// SetSIPGlobals' redaction).
func SwapSIPGoLog(t *testing.T, h slog.Handler) {
	prev := sipgoLog.cur.Swap(&h)
	t.Cleanup(func() { sipgoLog.cur.Store(prev) })
}

// Config returns the configuration of a test node: every listener on
// 127.0.0.1 port 0, data in dataDir, debug logs, realm and domain
// sipwarden.test, admin key APIKey, bindings flushed every 20 ms, 5 s of
// queue delay before the stateless front sheds.
func Config(t testing.TB, dataDir string) config.Config {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = dataDir
	cfg.Log.Level = "debug"
	cfg.SIP.Realm = Realm
	cfg.SIP.Domain = Realm
	cfg.SIP.Listen = config.Listen{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", TLS: "127.0.0.1:0", WS: "127.0.0.1:0", WSS: "127.0.0.1:0"}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.APIKey = APIKey
	cfg.Registrar.BindingFlushInterval = config.Duration(20 * time.Millisecond)
	// Under the race detector on a shared 2-core machine a burst of a few
	// requests can wait 100 ms for a worker with the node far from
	// overloaded; a test meaning to shed sets its own (package stateless
	// tests the shedding itself).
	cfg.Limits.MaxQueueDelay = config.Duration(5 * time.Second)
	return cfg
}

// Server is a node started by Start.
type Server struct {
	*server.Node
	Cfg  config.Config
	Logs *SyncBuffer // the node's log
	stop func()
}

// Start starts a node with cfg and opts; it stops when the test ends, and
// its log is printed then if the test failed.
func Start(t testing.TB, cfg config.Config, opts ...server.Options) *Server {
	t.Helper()
	logs := &SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	var o server.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Version == "" {
		o.Version = Version
	}
	n, err := server.Start(ctx, cfg, server.NewLogger(cfg.Log, logs), o)
	if err != nil {
		cancel()
		t.Fatalf("start: %v", err)
	}
	return Adopt(t, n, cfg, logs, cancel)
}

// Adopt makes a Server of a node the test started itself with
// server.Start (cancel ends the context it was started with): it stops
// when the test ends.
func Adopt(t testing.TB, n *server.Node, cfg config.Config, logs *SyncBuffer, cancel context.CancelFunc) *Server {
	s := &Server{Node: n, Cfg: cfg, Logs: logs}
	s.stop = sync.OnceFunc(func() { cancel(); n.Close() })
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("server log:\n%s", Tail(logs.String(), 4000))
		}
	})
	return s
}

// Stop stops the node (again: a no-op).
func (s *Server) Stop() { s.stop() }

// API calls the management API with the admin key and decodes the "data"
// member of a 2xx answer into out (when not nil). It returns the status.
func (s *Server) API(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	code, raw := s.APIRaw(t, APIKey, method, path, body)
	if out != nil && code < 300 {
		var env struct{ Data json.RawMessage }
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
		if err := json.Unmarshal(env.Data, out); err != nil {
			t.Fatalf("%s %s: decode data %q: %v", method, path, env.Data, err)
		}
	}
	return code
}

// APIRaw calls the management API with key ("" sends none) and returns
// the status and the body.
func (s *Server) APIRaw(t testing.TB, key, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.Addr("http")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, raw
}

// SyncBuffer is a log sink safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail returns the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// WaitFor polls cond every 10 ms until it holds, failing the test after d.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RawExchange sends one raw message (LOCAL in it is replaced by the
// local address, LF by CRLF) to addr over transport ("udp" or "tcp") and returns the first response (or ""
// when none came within the timeout).
func RawExchange(t testing.TB, transport, addr, msg string, timeout time.Duration) string {
	t.Helper()
	network := transport
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", transport, addr, err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg = strings.ReplaceAll(msg, "LOCAL", local)
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	// A 100 Trying (RFC 3261 16.2: the proxy sends one for every INVITE it
	// goes on to authenticate) is skipped: the answer is what follows.
	var rd *bufio.Reader
	if transport != "udp" {
		rd = bufio.NewReader(c)
	}
	for range 10 {
		raw := readMessage(c, rd)
		if !strings.HasPrefix(raw, "SIP/2.0 100 ") {
			return raw
		}
	}
	return ""
}

// readMessage reads one datagram (rd nil) or one header block from rd;
// "" on error.
func readMessage(c net.Conn, rd *bufio.Reader) string {
	if rd == nil {
		buf := make([]byte, 65536)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	var sb strings.Builder
	for {
		line, err := rd.ReadString('\n')
		sb.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	return sb.String()
}

// StatusLine returns the first line of a raw message.
func StatusLine(raw string) string {
	line, _, _ := strings.Cut(raw, "\r\n")
	return line
}
