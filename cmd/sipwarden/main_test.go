package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/sipwarden/sipwarden/config"
)

// TestMain sets sipgo's process globals once, as runServe does, before any
// test starts a server.
func TestMain(m *testing.M) {
	cfg, err := config.Default()
	if err != nil {
		panic(err)
	}
	flag.Parse()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	var h slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})
	sipgoLog.cur.Store(&h)
	setSIPGlobals(cfg, slog.New(sipgoLog))
	os.Exit(m.Run())
}

// sipgoLog receives sipgo's process-wide log; a test may point it at its
// own handler (TestLogsHoldNoSecrets) without racing with sipgo.
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

// swapSIPGoLog points sipgo's log at h until the test ends.
func swapSIPGoLog(t *testing.T, h slog.Handler) {
	prev := sipgoLog.cur.Swap(&h)
	t.Cleanup(func() { sipgoLog.cur.Store(prev) })
}
