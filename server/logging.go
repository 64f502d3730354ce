package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/sipwarden/sipwarden/config"
)

// logControl is what may change in logging while the server runs: the
// level (PUT /v1/log-level, SIGHUP) and the SIP trace switch (SIGHUP).
type logControl struct {
	level slog.LevelVar
	trace atomic.Bool
}

// apply sets the level and the trace switch from the log configuration.
func (c *logControl) apply(l config.Log) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level)) // validated by config
	c.level.Set(level)
	c.trace.Store(l.SIPTrace)
}

// ctlHandler is the root handler of the server's logger. It carries the
// logControl, so that Start finds it from the logger it is given, and
// filters by its level.
type ctlHandler struct {
	slog.Handler
	ctl *logControl
}

func (h ctlHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.ctl.level.Level() && h.Handler.Enabled(ctx, l)
}

func (h ctlHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctlHandler{h.Handler.WithAttrs(as), h.ctl}
}

func (h ctlHandler) WithGroup(name string) slog.Handler {
	return ctlHandler{h.Handler.WithGroup(name), h.ctl}
}

// NewLogger returns the server's logger, writing text or JSON to w at the
// configured level, which its logControl changes at run time.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	ctl := &logControl{}
	ctl.apply(c)
	opts := &slog.HandlerOptions{Level: &ctl.level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(ctlHandler{h, ctl})
}

// logControlOf returns the logControl of a logger made by NewLogger. For
// any other logger it makes one from c and returns the logger filtered by
// it (a control that can narrow what that logger logs, not widen it).
func logControlOf(logger *slog.Logger, c config.Log) (*logControl, *slog.Logger) {
	if h, ok := logger.Handler().(ctlHandler); ok {
		return h.ctl, logger
	}
	ctl := &logControl{}
	ctl.apply(c)
	return ctl, slog.New(ctlHandler{logger.Handler(), ctl})
}

// ReloadLogOnHUP re-reads log.level and log.sip_trace from the config file
// at path on every SIGHUP until ctx ends or the returned stop is called.
func ReloadLogOnHUP(ctx context.Context, path string, logger *slog.Logger) (stop func()) {
	ctl, _ := logControlOf(logger, config.Log{Level: "info"})
	// What the file said at start: what a SIGHUP cannot apply is told
	// apart from it.
	var running *config.Config
	if path != "" {
		if c, err := config.Load(path); err == nil {
			running = &c
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadLog(path, ctl, logger, running)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// reloadLog applies the log settings of the config file at path. An
// unreadable or invalid file changes nothing (and says so).
func reloadLog(path string, ctl *logControl, logger *slog.Logger, running *config.Config) {
	if path == "" {
		logger.Warn("SIGHUP: no config file to re-read (started without --config); log settings unchanged")
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		logger.Error("SIGHUP: config not re-read; log settings unchanged", "error", err)
		return
	}
	if running != nil {
		if keys := restartOnly(*running, cfg); len(keys) > 0 {
			// systemctl reload sends SIGHUP: say that the rest of the
			// edit is not in force, rather than let it look applied.
			logger.Warn("SIGHUP: the config file also changed settings that apply only at the next restart; they are not in force",
				"path", path, "sections", strings.Join(keys, ","))
		}
	}
	ctl.apply(cfg.Log)
	// At warn, so that the change shows at every level but error; last,
	// so that whoever sees it has seen the line above too.
	logger.Warn("log settings re-read", "path", path, "level", cfg.Log.Level, "sip_trace", cfg.Log.SIPTrace)
}

// restartOnly names the sections of the config (by their YAML key) that
// differ between running and file, other than what a SIGHUP applies
// (log.level, log.sip_trace).
func restartOnly(running, file config.Config) []string {
	running.Log.Level, running.Log.SIPTrace = file.Log.Level, file.Log.SIPTrace
	a, b := reflect.ValueOf(running), reflect.ValueOf(file)
	var keys []string
	for i := range a.NumField() {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("yaml"), ",")
			keys = append(keys, name)
		}
	}
	return keys
}
