// Command wsbench measures digest REGISTER flows over WebSocket (RFC
// 7118) against sipwarden: sipp has no WebSocket transport, so this Go
// client does what sipp's register scenario does, over -conns WebSocket
// connections (as many browsers), each running flows back to back:
// REGISTER -> 401 (MD5, the ws default) -> REGISTER with Authorization ->
// 200. It prints one markdown row: flows/s over -duration, p50/p99 flow
// time, failed flows, and the server's CPU ms per flow.
//
//	go run ./bench/cmd/wsbench                        (make bench runs it after the sipp table)
//	go run ./bench/cmd/wsbench -conns 64 -duration 10s
//
// Closed loop: the rate is what the server (sharing the cores with this
// client) sustains, not an offered rate searched as bench does.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/interop/harness"
)

func main() {
	conns := flag.Int("conns", 32, "WebSocket connections, each running flows back to back")
	users := flag.Int("users", 1000, "credentials, spread over the connections")
	duration := flag.Duration("duration", 10*time.Second, "load")
	bin := flag.String("bin", "", "sipwarden binary (default: build ./cmd/sipwarden)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *conns, *users, *duration, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, conns, nusers int, duration time.Duration, bin string) error {
	if conns < 1 || nusers < conns {
		return errors.New("want -conns >= 1 and -users >= -conns")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "sipwarden-wsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if bin == "" {
		logf("building ./cmd/sipwarden")
		if bin, err = harness.BuildServer(ctx, root, work); err != nil {
			return err
		}
	}
	cfg, err := harness.LoopbackConfig(filepath.Join(work, "data"))
	if err != nil {
		return err
	}
	port, err := harness.FreeTCPPort()
	if err != nil {
		return err
	}
	cfg.WS = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg.LogLevel = "warn"
	cfg.ExemptCIDRs = []string{"127.0.0.0/8"} // no connection limit or ban in the way
	srv, err := harness.StartServer(ctx, bin, work, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }()
	users := harness.MakeUsers("ws", nusers)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := srv.API().CreateCredentials(cctx, users, 16); err != nil {
		return fmt.Errorf("create credentials: %w", err)
	}
	logf("%d credentials created; %d connections for %v", nusers, conns, duration)

	clients := make([]*client, conns)
	for i := range clients {
		c, err := dial(ctx, cfg.WS)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		defer c.conn.Close()
		for j := i; j < nusers; j += conns {
			c.users = append(c.users, users[j])
		}
		clients[i] = c
	}
	cpu0, err := harness.CPUTime(srv.PID())
	if err != nil {
		return err
	}
	var (
		wg      sync.WaitGroup
		ok, bad atomic.Int64
		mu      sync.Mutex
		times   []time.Duration
	)
	end := time.Now().Add(duration)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := c.flow(c.users[i%len(c.users)]); err != nil {
					bad.Add(1)
					logf("flow failed: %v", err)
					return // the connection is in an unknown state
				}
				ok.Add(1)
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			times = append(times, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := harness.CPUTime(srv.PID())
	if err != nil {
		return err
	}
	slices.Sort(times)
	pct := func(p float64) time.Duration {
		if len(times) == 0 {
			return 0
		}
		return times[min(len(times)-1, int(p*float64(len(times))))]
	}
	n := ok.Load()
	fmt.Printf("| transport | connections | REGISTER digest flows/s | p50 ms | p99 ms | failed | server CPU ms/flow |\n")
	fmt.Printf("| --- | --- | --- | --- | --- | --- | --- |\n")
	fmt.Printf("| ws (MD5) | %d | %.0f | %.2f | %.2f | %d | %.3f |\n", conns, float64(n)/elapsed.Seconds(),
		float64(pct(0.5).Microseconds())/1000, float64(pct(0.99).Microseconds())/1000, bad.Load(), (cpu1-cpu0)/float64(max(n, 1)))
	if bad.Load() > 0 {
		return fmt.Errorf("%d flows failed", bad.Load())
	}
	return nil
}

// client is one WebSocket connection, as a browser holds it.
type client struct {
	conn  net.Conn
	rw    io.ReadWriter
	host  string // the Contact's .invalid host
	users []harness.User
	cseq  int
}

func dial(ctx context.Context, addr string) (*client, error) {
	d := ws.Dialer{Protocols: []string{"sip"}, Timeout: 5 * time.Second}
	conn, br, _, err := d.Dial(ctx, "ws://"+addr)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &client{conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}, host: randHex(6) + ".invalid"}, nil
}

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// flow runs REGISTER -> 401 -> REGISTER with credentials -> 200.
func (c *client) flow(u harness.User) error {
	callID := randHex(8)
	res, err := c.exchange(c.register(u.Name, callID, ""))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(res, "SIP/2.0 401") {
		return fmt.Errorf("first answer %q, want 401", firstLine(res))
	}
	m := nonceRE.FindStringSubmatch(res)
	if m == nil || !strings.Contains(res, "algorithm=MD5") {
		return fmt.Errorf("no MD5 challenge in %q", firstLine(res))
	}
	const realm = "sipwarden.test"
	cr := digest.Credentials{Username: u.Name, Realm: realm, Nonce: m[1], URI: "sip:" + realm,
		Algorithm: "MD5", QOP: "auth", CNonce: randHex(4), NC: "00000001", NonceCount: 1}
	resp := digest.Response(cr, digest.MD5, "REGISTER", digest.HA1(digest.MD5, u.Name, realm, u.Password), nil)
	auth := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"`,
		u.Name, realm, m[1], cr.URI, resp, cr.CNonce)
	if res, err = c.exchange(c.register(u.Name, callID, auth)); err != nil {
		return err
	}
	if !strings.HasPrefix(res, "SIP/2.0 200") {
		return fmt.Errorf("second answer %q, want 200", firstLine(res))
	}
	return nil
}

func (c *client) register(user, callID, auth string) string {
	c.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/WS %s;branch=z9hG4bK-%s\r\nMax-Forwards: 69\r\n", c.host, randHex(8))
	fmt.Fprintf(&b, "From: <sip:%s@sipwarden.test>;tag=%s\r\nTo: <sip:%s@sipwarden.test>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n", user, randHex(4), user, callID, c.cseq)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=ws>;expires=600\r\nExpires: 600\r\n", user, c.host)
	if auth != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// exchange sends one request and returns its final response (within 5 s).
func (c *client) exchange(msg string) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(c.conn, []byte(msg)); err != nil {
		return "", err
	}
	for range 10 { // provisional answers, at most a few
		b, _, err := wsutil.ReadServerData(c.rw)
		if err != nil {
			return "", err
		}
		if s := string(b); !strings.HasPrefix(s, "SIP/2.0 1") {
			return s, nil
		}
	}
	return "", errors.New("no final answer")
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
