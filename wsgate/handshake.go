package wsgate

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Handshake is what an accepted upgrade request carried. Its maps are
// shared: do not modify them.
type Handshake struct {
	// Remote is the client's ip:port, as sipgo reports a request's Source.
	Remote string
	// TLS: the connection is a wss one.
	TLS bool
	// Host is the Host header.
	Host string
	// Origin is the Origin header; empty when the request had none (not a
	// browser).
	Origin string
	// Path is the request path, such as "/ws".
	Path string
	// Query is the parsed query string. It may hold secrets (some SDKs
	// send access_token here): never log it.
	Query url.Values
	// Header holds the request's header fields (Host is in Host).
	// Authorization and Cookie may hold secrets: never log them.
	Header http.Header
}

// LogValue leaves out the query and the header fields, which may hold
// secrets.
func (h Handshake) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("source", h.Remote),
		slog.Bool("tls", h.TLS),
		slog.String("origin", h.Origin),
		slog.String("path", h.Path),
	)
}

// refusal is the HTTP answer to a refused upgrade request.
type refusal struct {
	reason Reason
	status int
	text   string
	header []string // extra header lines, "Key: value"
}

var errHeadTooLarge = errors.New("wsgate: request head too large")

// handshake runs in its own goroutine for each admitted connection: the
// TLS handshake (wss), then the request head, within HandshakeTimeout;
// then either the refusal or the hand-over to Accept.
func (l *Listener) handshake(nc net.Conn) {
	defer l.release(nc)

	// The deadline bounds the reads of well-behaved conns; the timer
	// bounds everything, also under a wrapper (such as connlimit's) that
	// sets read deadlines of its own before each read.
	var fired atomic.Bool
	timer := time.AfterFunc(l.cfg.HandshakeTimeout, func() {
		fired.Store(true)
		_ = nc.Close()
	})
	_ = nc.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))

	conn := nc
	if l.cfg.TLS != nil {
		tc := tls.Server(nc, l.cfg.TLS)
		err := tc.Handshake()
		if err != nil {
			timedOut := !timer.Stop() || isTimeout(err)
			_ = nc.Close()
			if timedOut {
				l.refused(nc, RefusedTimeout)
			} else {
				l.refused(nc, RefusedTLS)
			}
			return
		}
		conn = tc
	}

	head, extra, err := readHead(conn, l.cfg.MaxHeadBytes)
	if !timer.Stop() || (err != nil && isTimeout(err)) {
		_ = conn.Close()
		l.refused(nc, RefusedTimeout)
		return
	}
	if err != nil {
		if errors.Is(err, errHeadTooLarge) {
			l.refuse(conn, refusal{RefusedTooLarge, http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("request head larger than %d bytes", l.cfg.MaxHeadBytes), nil})
			return
		}
		_ = conn.Close()
		l.refused(nc, RefusedIncomplete)
		return
	}

	hs, ref := l.check(head)
	if ref != nil {
		l.refuse(conn, *ref)
		return
	}
	hs.Remote = nc.RemoteAddr().String()
	hs.TLS = l.cfg.TLS != nil
	if err := conn.SetDeadline(time.Time{}); err != nil {
		_ = conn.Close()
		l.refused(nc, RefusedIncomplete)
		return
	}

	c := newConn(l, conn, hs, head, extra)
	l.mu.Lock()
	l.conns[hs.Remote] = c
	l.mu.Unlock()
	select {
	case l.ready <- c:
		l.log.Debug("websocket upgrade request accepted", "handshake", hs)
	case <-l.done:
		_ = c.Close()
	}
}

// refuse writes the HTTP answer of ref, then closes conn after giving
// the client a moment to read it: the write side is shut first and what
// the client still sends is read and dropped (up to 64 KiB or 500 ms), so
// that the close does not reset the connection under the answer.
func (l *Listener) refuse(conn net.Conn, ref refusal) {
	var b strings.Builder
	body := ref.text + "\n"
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", ref.status, http.StatusText(ref.status))
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	b.WriteString("Connection: close\r\n")
	for _, h := range ref.header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)

	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, b.String()); err == nil {
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, conn, 64<<10)
	}
	_ = conn.Close()
	l.refused(conn, ref.reason)
}

// readHead reads from r up to the blank line that ends an HTTP request
// head, at most limit bytes. It returns the head and what was read after
// it.
func readHead(r io.Reader, limit int) (head, extra []byte, err error) {
	buf := make([]byte, 0, min(1024, limit))
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return nil, nil, errHeadTooLarge
			}
			nb := make([]byte, len(buf), min(2*cap(buf), limit))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		from := max(0, len(buf)-3)
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
			end := from + i + 4
			return buf[:end], buf[end:], nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// check parses head and applies the checks of RFC 6455 section 4.2.1
// that sipgo's upgrader (gobwas/ws) would apply, then RFC 7118's sip
// subprotocol and the Origin policy. Checking what the upgrader checks
// keeps bad requests from reaching sipgo, which logs every failed upgrade
// at error level.
func (l *Listener) check(head []byte) (Handshake, *refusal) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return Handshake{}, &refusal{RefusedMalformed, http.StatusBadRequest, "malformed HTTP request", nil}
	}
	h := req.Header
	switch {
	case !req.ProtoAtLeast(1, 1):
		return Handshake{}, &refusal{RefusedMalformed, http.StatusBadRequest, "HTTP/1.1 required", nil}
	case req.Method != http.MethodGet:
		return Handshake{}, &refusal{RefusedMethod, http.StatusMethodNotAllowed, "a WebSocket upgrade is a GET request",
			[]string{"Allow: GET"}}
	case req.Host == "":
		return Handshake{}, &refusal{RefusedMalformed, http.StatusBadRequest, "Host header missing", nil}
	case !hasToken(h, "Upgrade", "websocket", true):
		return Handshake{}, &refusal{RefusedNotWebSocket, http.StatusUpgradeRequired,
			"this port serves SIP over WebSocket (RFC 7118): Upgrade: websocket required",
			[]string{"Upgrade: websocket", "Sec-WebSocket-Version: 13"}}
	case !hasToken(h, "Connection", "upgrade", true):
		return Handshake{}, &refusal{RefusedNotWebSocket, http.StatusBadRequest, "Connection: Upgrade required", nil}
	case h.Get("Sec-WebSocket-Version") != "13":
		return Handshake{}, &refusal{RefusedVersion, http.StatusUpgradeRequired, "Sec-WebSocket-Version 13 required",
			[]string{"Upgrade: websocket", "Sec-WebSocket-Version: 13"}}
	case !validKey(h.Get("Sec-WebSocket-Key")):
		return Handshake{}, &refusal{RefusedMalformed, http.StatusBadRequest, "Sec-WebSocket-Key missing or malformed", nil}
	case !hasToken(h, "Sec-WebSocket-Protocol", "sip", false):
		return Handshake{}, &refusal{RefusedSubprotocol, http.StatusBadRequest,
			"Sec-WebSocket-Protocol must include sip (RFC 7118)", nil}
	}
	origins, hasOrigin := h["Origin"]
	origin := ""
	if hasOrigin {
		if len(origins) != 1 || !l.originAllowed(origins[0], req.Host) {
			return Handshake{}, &refusal{RefusedOrigin, http.StatusForbidden, "origin not allowed", nil}
		}
		origin = origins[0]
	}
	return Handshake{
		Host:   req.Host,
		Origin: origin,
		Path:   req.URL.Path,
		Query:  req.URL.Query(),
		Header: h,
	}, nil
}

// hasToken reports whether a comma-separated list in the fields key
// holds token (compared without case when fold).
func hasToken(h http.Header, key, token string, fold bool) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == token || (fold && strings.EqualFold(t, token)) {
				return true
			}
		}
	}
	return false
}

// validKey reports whether k is the base64 of 16 bytes (RFC 6455 4.1).
func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) == 16
}

func (l *Listener) originAllowed(origin, host string) bool {
	if l.anyOrigin {
		return true
	}
	n, ok := normalizeOrigin(origin)
	if !ok {
		return false
	}
	if l.origins != nil {
		return l.origins[n]
	}
	u, err := url.Parse(n)
	if err != nil {
		return false
	}
	h := hostname(host)
	if !strings.EqualFold(u.Hostname(), h) {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil || l.cfg.HostAllowed == nil {
		return true // an address cannot be rebound
	}
	return l.cfg.HostAllowed(h)
}

// hostname returns host without its port and brackets.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// normalizeOrigin returns origin as scheme://host[:port] in lower case,
// without the scheme's default port; ok is false unless origin is an
// origin (a scheme and a host, no user, path, query or fragment). The
// serialization "null" (sandboxed documents, files) is not one.
func normalizeOrigin(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, true
}
