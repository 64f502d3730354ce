package api

import (
	"log/slog"
	"net/http"
)

// LevelVar is the server's log level, changeable at run time.
// *slog.LevelVar satisfies it.
type LevelVar interface {
	Level() slog.Level
	Set(slog.Level)
}

// LogLevel is the body of GET and PUT /v1/log-level.
type LogLevel struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
}

// HandleLogLevel enables GET and PUT /v1/log-level, which read and set v
// (API key required). Call it before serving; without it they answer 404.
func (s *Server) HandleLogLevel(v LevelVar) { s.level = v }

func errNoLogLevel() error {
	return newError(http.StatusNotFound, CodeNotFound, "the log level cannot be changed through this server")
}

func (s *Server) getLogLevel(w http.ResponseWriter, r *http.Request) error {
	if s.level == nil {
		return errNoLogLevel()
	}
	writeJSON(w, http.StatusOK, envelope{Data: LogLevel{Level: levelName(s.level.Level())}})
	return nil
}

func (s *Server) putLogLevel(w http.ResponseWriter, r *http.Request) error {
	if s.level == nil {
		return errNoLogLevel()
	}
	var b struct {
		Level optional[string] `json:"level"`
	}
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var val validation
	name, ok := b.Level.value()
	level, known := parseLevel(name)
	switch {
	case !ok:
		val.add("/level", CodeRequired, "level is required: debug, info, warn or error")
	case !known:
		val.add("/level", CodeInvalidValue, "level %q is not one of debug, info, warn, error", name)
	}
	if err := val.err(); err != nil {
		return err
	}
	if old := s.level.Level(); old != level {
		s.level.Set(level)
		// At warn, so that the change shows at every level but error.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "log level changed",
			slog.String("from", levelName(old)), slog.String("to", name))
	}
	writeJSON(w, http.StatusOK, envelope{Data: LogLevel{Level: name}})
	return nil
}

// parseLevel reads the level names of the config file's log.level.
func parseLevel(name string) (slog.Level, bool) {
	switch name {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

func levelName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}
