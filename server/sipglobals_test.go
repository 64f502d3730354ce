package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRedactHandler: what sipgo logs about a message from the network
// never carries the message's bytes (an Authorization header among
// them), and a flood is cut to sipgoLogsPerSecond records a second.
func TestRedactHandler(t *testing.T) {
	var buf bytes.Buffer
	h := newRedactHandler(slog.NewTextHandler(&buf, nil))
	clock := time.Unix(1_800_000_000, 0)
	h.limit.now = func() time.Time { return clock }
	log := slog.New(h).With("component", "sipgo")

	secret := `Authorization: Digest username="alice", response="SECRETRESPONSE"`
	parseErr := fmt.Errorf("transmission beginning '%s' is not a SIP message", secret)
	log.Error("failed to parse", "error", parseErr, "data", "REGISTER sip:x SIP/2.0\r\n"+secret)
	log.Error("Server tx failed to handle request", "error", errors.New(strings.Repeat("x", 1000)), "req", "INVITE sip:"+strings.Repeat("y", 1000)+" SIP/2.0")
	out := buf.String()
	if strings.Contains(out, "SECRETRESPONSE") || strings.Contains(out, "alice") {
		t.Fatalf("message bytes in the log: %s", out)
	}
	if !strings.Contains(out, "transmission beginning [redacted]") {
		t.Errorf("the error's own words are gone: %s", out)
	}
	if strings.Contains(out, strings.Repeat("x", maxLoggedText+1)) || strings.Contains(out, strings.Repeat("y", maxLoggedText+1)) {
		t.Errorf("a long error or start line logged whole: %d bytes", len(out))
	}

	// A flood within one second: sipgoLogsPerSecond records (two above),
	// then silence; the first record of the next second counts the rest.
	for range 1000 {
		log.Error("failed to parse", "error", parseErr)
	}
	if n := strings.Count(buf.String(), "\n"); n != sipgoLogsPerSecond {
		t.Fatalf("%d records in a second of flood, want %d", n, sipgoLogsPerSecond)
	}
	clock = clock.Add(time.Second)
	buf.Reset()
	log.Log(context.Background(), slog.LevelError, "failed to parse", "error", parseErr)
	if want := fmt.Sprintf("suppressed=%d", 1000+2-sipgoLogsPerSecond); !strings.Contains(buf.String(), want) {
		t.Errorf("next second's record: %q, want %s", buf.String(), want)
	}
}

// TestRedactHandlerRefWarnings: sipgo's "TCP ref went negative" (a bug of
// its reference counting after Close, harmless) is a debug record, not a
// WARN for every transaction of a peer that hung up.
func TestRedactHandlerRefWarnings(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		log := slog.New(newRedactHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))).With("component", "sipgo")
		log.Warn("TCP ref went negative", "ip", "127.0.0.1:5060", "dst", "127.0.0.1:40000", "ref", -3)
		log.Warn("WS ref went negative", "ip", "127.0.0.1:40000", "ref", -1)
		log.Warn("something else")
		out := buf.String()
		if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, "something else") {
			t.Errorf("log level %v: %d WARN records, want only the other one:\n%s", level, n, out)
		}
		if want := map[slog.Level]int{slog.LevelInfo: 0, slog.LevelDebug: 2}[level]; strings.Count(out, "level=DEBUG") != want {
			t.Errorf("log level %v: want %d DEBUG records:\n%s", level, want, out)
		}
	}
}

// TestRedisLogger: go-redis's complaints go through slog (log.format and
// log.level apply; they went to stderr with the standard logger), as one
// warning each, without the trailing newline go-redis puts on some.
func TestRedisLogger(t *testing.T) {
	var buf bytes.Buffer
	l := redisLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	l.Printf(context.Background(), "redis: %s:%d: failed to dial after %d attempts: %v\n", "pool.go", 770, 5, errors.New("connection refused"))
	got := buf.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, `msg="redis: pool.go:770: failed to dial after 5 attempts: connection refused"`) {
		t.Errorf("logged %q", got)
	}
}
