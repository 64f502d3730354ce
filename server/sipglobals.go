package server

import (
	"context"
	"log/slog"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/config"
)

// SetSIPGlobals sets sipgo's package-level message limit and logger. They
// are process globals, so they are set once, before any server starts, and
// never from Start (tests start several nodes concurrently): main, or a
// test's TestMain, calls it.
func SetSIPGlobals(cfg config.Config, logger *slog.Logger) {
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
	sip.SetDefaultLogger(slog.New(redactHandler{logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "sipgo")})}))
}

// redactHandler drops the raw message sipgo attaches to parse errors: it
// may hold Authorization headers, and a flood of garbage would copy every
// byte of it into the log.
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch strings.ToLower(a.Key) {
		case "data", "msg", "message", "raw":
			nr.AddAttrs(slog.String(a.Key, "[redacted]"))
		default:
			nr.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, nr)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return redactHandler{h.Handler.WithAttrs(as)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}
