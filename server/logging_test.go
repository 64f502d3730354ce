package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
)

// TestSIGHUPReloadsLogSettings sends the process a real SIGHUP.
func TestSIGHUPReloadsLogSettings(t *testing.T) {
	h := newHUPFixture(t, "log:\n  level: info\n")
	write, hup, logs, ctl := h.write, h.hup, h.logs, h.ctl
	write("log:\n  level: debug\n  sip_trace: true\n")
	hup()
	waitFor(t, "debug after SIGHUP", 5*time.Second, func() bool {
		return ctl.level.Level() == slog.LevelDebug && ctl.trace.Load()
	})
	write("log:\n  level: loud\n") // invalid: nothing changes
	hup()
	waitFor(t, "the refusal to be logged", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "config not re-read")
	})
	if ctl.level.Level() != slog.LevelDebug || !ctl.trace.Load() {
		t.Fatalf("an invalid file changed the settings: level %v trace %v", ctl.level.Level(), ctl.trace.Load())
	}
}

// TestSIGHUPSaysWhatNeedsARestart: `systemctl reload` after editing
// more than the log settings applies the log settings and says which
// sections changed in the file without taking effect, rather than let
// the edit look applied.
func TestSIGHUPSaysWhatNeedsARestart(t *testing.T) {
	h := newHUPFixture(t, "log:\n  level: info\nregistrar:\n  max_contacts: 1\n")
	write, hup, logs, ctl := h.write, h.hup, h.logs, h.ctl

	write("log:\n  level: debug\nregistrar:\n  max_contacts: 1\n") // log settings only
	hup()
	// "log settings re-read" is the reload's last line: the restart
	// warning, if any, is in the log before it.
	waitFor(t, "the reload's last line", 5*time.Second, func() bool { return strings.Contains(logs.String(), "log settings re-read") })
	if ctl.level.Level() != slog.LevelDebug {
		t.Fatalf("log.level not applied: %v", ctl.level.Level())
	}
	if strings.Contains(logs.String(), "next restart") {
		t.Fatalf("a change of log settings only was reported as needing a restart:\n%s", logs.String())
	}

	write("log:\n  level: info\nregistrar:\n  max_contacts: 3\nguard:\n  max_failures: 5\n")
	hup()
	waitFor(t, "the restart-only sections to be named", 5*time.Second, func() bool {
		return strings.Contains(logs.String(), "sections=registrar,guard")
	})
	if ctl.level.Level() != slog.LevelInfo {
		t.Errorf("log.level not applied with the rest: %v", ctl.level.Level())
	}
}

// hupFixture is a config file, a logger reloading it on SIGHUP (stopped
// with the test), and the means to rewrite the file and send the signal
// (a real one, to this process).
type hupFixture struct {
	write func(string)
	hup   func()
	logs  *lockedBuffer
	ctl   *logControl
}

func newHUPFixture(t *testing.T, initial string) hupFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	h := hupFixture{logs: &lockedBuffer{}}
	h.write = func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.hup = func() {
		t.Helper()
		p, _ := os.FindProcess(os.Getpid())
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	h.write(initial)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logger := NewLogger(cfg.Log, h.logs)
	h.ctl, _ = logControlOf(logger, cfg.Log)
	t.Cleanup(ReloadLogOnHUP(context.Background(), path, logger))
	return h
}

// lockedBuffer is a log sink safe for the goroutine that logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
