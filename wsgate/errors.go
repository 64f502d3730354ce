package wsgate

import (
	"fmt"
	"net"
)

// Reason says why a connection was closed before it reached sipgo, or,
// for ClosedTooLarge, after.
type Reason string

// Reasons given to Config.OnRefused.
const (
	RefusedPending      = Reason("too many pending handshakes")
	RefusedPendingPerIP = Reason("too many pending handshakes from the source")
	RefusedTimeout      = Reason("handshake timeout")
	RefusedTLS          = Reason("tls handshake failed")
	RefusedIncomplete   = Reason("closed before the request was complete")
	RefusedTooLarge     = Reason("request head too large")
	RefusedMalformed    = Reason("malformed request")
	RefusedMethod       = Reason("method not GET")
	RefusedNotWebSocket = Reason("not a websocket upgrade")
	RefusedVersion      = Reason("unsupported websocket version")
	RefusedSubprotocol  = Reason("sip subprotocol missing")
	RefusedOrigin       = Reason("origin not allowed")
	ClosedTooLarge      = Reason("message too large")
)

// ErrMessageTooLarge is returned by Conn.Read once a WebSocket message
// exceeds Config.MaxMessageBytes; the connection is closed. It wraps
// net.ErrClosed so that sipgo ends the connection quietly (and, for a
// message in several frames, without parsing the part it already read).
var ErrMessageTooLarge = fmt.Errorf("wsgate: websocket message too large: %w", net.ErrClosed)

// ErrMessageTooSlow is returned by Conn.Read once a WebSocket frame (or a
// message in several frames) is still arriving Config.MessageTimeout
// after its first byte: a client trickling bytes to hold the connection
// (slowloris). Like ErrMessageTooLarge it wraps net.ErrClosed.
var ErrMessageTooSlow = fmt.Errorf("wsgate: websocket message not whole in time: %w", net.ErrClosed)
