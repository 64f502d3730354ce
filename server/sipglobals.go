package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"

	"github.com/sipwarden/sipwarden/config"
)

// redisLogger is go-redis's logger (redis.SetLogger) over slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// SetSIPGlobals sets sipgo's package-level message limit and logger, and
// go-redis's logger. They are process globals, so they are set once,
// before any server starts, and never from Start (tests start several
// nodes concurrently): main, or a test's TestMain, calls it.
func SetSIPGlobals(cfg config.Config, logger *slog.Logger) {
	// go-redis writes its own complaints (a pool's failed dial while
	// Redis is down) to stderr with the standard logger, past log.format
	// and log.level: through ours instead, as warnings, rate-limited.
	redis.SetLogger(redisLogger{slog.New(newRedactHandler(logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "redis")})))})
	sip.ParseMaxMessageLength = cfg.SIP.MaxMessageBytes
	// sipgo reads each datagram (and each TCP/TLS read) into a buffer of
	// TransportBufferReadSize bytes, 32768 by default: a larger datagram
	// was cut and dropped although max_message_bytes allowed it. The
	// buffer follows the limit (a UDP datagram holds at most 65507
	// bytes); each TCP/TLS connection holds one such buffer, which is why
	// the default limit is 32768.
	sip.TransportBufferReadSize = uint16(min(cfg.SIP.MaxMessageBytes, 65535))
	// Deliberately no MTU switch to TCP (RFC 3261 18.1.1): a device
	// registered over UDP behind NAT cannot take a TCP connection, so an
	// INVITE with a large SDP goes over UDP, fragmented by IP if need be,
	// as Kamailio does. sipgo would otherwise refuse anything over 1300
	// bytes with ErrUDPMTUCongestion.
	sip.UDPMTUSize = cfg.SIP.MaxMessageBytes + 200
	// Completed transactions linger sip.transaction_linger instead of
	// 64*T1 (32 s): sipgo keeps each with its request and responses, about
	// 20 KB per proxied call, so at 4,000 calls/s the RFC's 32 s held 2.5 GB.
	linger := cfg.SIP.TransactionLinger.D()
	sip.Timer_D, sip.Timer_J, sip.Timer_L, sip.Timer_M = linger, linger, linger, linger
	sip.SetDefaultLogger(slog.New(newRedactHandler(logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "sipgo")}))))
}

// redactHandler guards the log from what sipgo logs about messages from
// the network: the raw message it attaches to parse errors is dropped (it
// may hold Authorization headers), error texts and start lines are cut
// before anything they quote (sipgo's "transmission beginning '...' is
// not a SIP message" quotes the peer's first line, whatever it holds) and
// bounded, and at most sipgoLogsPerSecond records a second get through:
// sipgo logs each unparsable datagram at ERROR, so a flood of garbage
// would otherwise write megabytes a second that no log level silences.
type redactHandler struct {
	slog.Handler
	limit *logLimit // shared by the handler and those WithAttrs makes
}

const (
	sipgoLogsPerSecond = 10
	maxLoggedText      = 160 // bytes of an error text or start line
)

func newRedactHandler(h slog.Handler) redactHandler {
	return redactHandler{Handler: h, limit: &logLimit{now: time.Now}}
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && (r.Message == "TCP ref went negative" || r.Message == "WS ref went negative") {
		// A sipgo v1.7.4 bug, harmless: Close sets a connection's
		// reference count to 0, and each transaction still lingering on
		// it then takes one more (TryClose) and finds it below zero. It
		// is not closed twice, but a TCP or WebSocket peer that hung up
		// with transactions lingering gave a WARN for each of them (238
		// for one sipp connection at 500 calls/s). Debug, as sipgo logs
		// every other reference change.
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	suppressed, ok := h.limit.take()
	if !ok {
		return nil
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch strings.ToLower(a.Key) {
		case "data", "msg", "message", "raw":
			nr.AddAttrs(slog.String(a.Key, "[redacted]"))
		case "error", "err", "req":
			nr.AddAttrs(slog.String(a.Key, unquoted(a.Value.String())))
		default:
			nr.AddAttrs(a)
		}
		return true
	})
	if suppressed > 0 {
		nr.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.Handler.Handle(ctx, nr)
}

// unquoted returns s up to the first quote (what follows is quoted from a
// message), at most maxLoggedText bytes of it.
func unquoted(s string) string {
	cut := false
	if i := strings.IndexAny(s, "'\"`"); i >= 0 {
		s, cut = s[:i], true
	}
	if len(s) > maxLoggedText {
		s, cut = s[:maxLoggedText], true
	}
	if cut {
		return strings.ToValidUTF8(s, "?") + "[redacted]"
	}
	return s
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return redactHandler{h.Handler.WithAttrs(as), h.limit}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name), h.limit}
}

// logLimit lets sipgoLogsPerSecond records through per second.
type logLimit struct {
	now        func() time.Time
	mu         sync.Mutex
	second     int64 // Unix second of the current window
	n          int   // records let through in it
	suppressed int   // records dropped since one was let through
}

// take reports whether a record may be logged now and, if so, how many
// were dropped before it.
func (l *logLimit) take() (suppressed int, ok bool) {
	sec := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec != l.second {
		l.second, l.n = sec, 0
	}
	if l.n >= sipgoLogsPerSecond {
		l.suppressed++
		return 0, false
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return suppressed, true
}
