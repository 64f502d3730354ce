package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/stateless"
	"github.com/sipwarden/sipwarden/wsgate"
)

// listeners are the bound SIP sockets.
type listeners struct {
	udp       *net.UDPConn
	tcp       net.Listener
	tls       net.Listener
	tlsConfig *tls.Config
	// ws and wss are the WebSocket gates (RFC 7118): connlimit under
	// them, sipgo's ServeWS/ServeWSS over them.
	ws, wss *wsgate.Listener
	// wsClosed, once set, is told of every WebSocket connection that
	// closed (its bindings go: websocket.go).
	wsClosed atomic.Pointer[func(transport string, hs wsgate.Handshake)]
	// wsRefused, when set, counts the gates' refusals.
	wsRefused func(wsgate.Reason)
	addrs     map[string]string
	// front, when set, reads the UDP socket and the TCP and TLS
	// connections before sipgo: it answers REGISTERs (in the registrar's
	// stateless modes), the requests sipgo would refuse, and first INVITEs.
	front *stateless.Front
	// stopped, when set, is called when a listener stops serving.
	stopped func(transport string, err error)
}

// bindSIP binds the SIP listeners; TCP, TLS, WS and WSS ones accept
// through lim (bans, connection limits, idle timeouts). refused, when
// set, counts the WebSocket gates' refusals.
func bindSIP(cfg config.Config, logger *slog.Logger, lim *connlimit.Limiter, refused func(wsgate.Reason)) (*listeners, error) {
	l := &listeners{addrs: map[string]string{}, wsRefused: refused}
	fail := func(err error) (*listeners, error) { l.close(); return nil, err }
	if a := cfg.SIP.Listen.UDP; a != "-" {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			return fail(fmt.Errorf("sip.listen.udp %s: %w", a, err))
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			return fail(fmt.Errorf("listen udp %s: %w", a, err))
		}
		l.udp = c
		if n := cfg.SIP.UDPBufferBytes; n > 0 {
			// The kernel caps these at net.core.rmem_max/wmem_max.
			if err := c.SetReadBuffer(n); err != nil {
				logger.Warn("set UDP read buffer", "bytes", n, "error", err)
			}
			if err := c.SetWriteBuffer(n); err != nil {
				logger.Warn("set UDP write buffer", "bytes", n, "error", err)
			}
		}
		l.addrs["udp"] = c.LocalAddr().String()
	}
	if a := cfg.SIP.Listen.TCP; a != "-" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("listen tcp %s: %w", a, err))
		}
		l.tcp = lim.Listen(ln, "tcp")
		l.addrs["tcp"] = ln.Addr().String()
	}
	if a := cfg.SIP.Listen.TLS; a != "-" {
		tc, err := loadTLS(cfg, logger)
		if err != nil {
			return fail(err)
		}
		l.tlsConfig = tc
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fail(fmt.Errorf("listen tls %s: %w", a, err))
		}
		// Limits under TLS, so that they bound the handshake too; the
		// handshake as a whole within limits.idle_timeout (boundedTLS).
		l.tls = boundedTLS{tls.NewListener(lim.Listen(ln, "tls"), tc), cfg.Limits.IdleTimeout.D()}
		l.addrs["tls"] = ln.Addr().String()
	}
	for _, w := range []struct {
		tp, addr string
		gate     **wsgate.Listener
	}{{"ws", cfg.SIP.Listen.WS, &l.ws}, {"wss", cfg.SIP.Listen.WSS, &l.wss}} {
		if w.addr == "-" {
			continue
		}
		var tc *tls.Config
		if w.tp == "wss" {
			if l.tlsConfig == nil {
				c, err := loadTLS(cfg, logger)
				if err != nil {
					return fail(err)
				}
				l.tlsConfig = c
			}
			tc = l.tlsConfig
		}
		ln, err := net.Listen("tcp", w.addr)
		if err != nil {
			return fail(fmt.Errorf("listen %s %s: %w", w.tp, w.addr, err))
		}
		tp := w.tp
		// connlimit under the gate, so that bans and limits apply to the
		// handshake too; the gate does the TLS handshake of wss itself.
		g, err := wsgate.New(lim.Listen(ln, tp), wsgate.Config{
			HandshakeTimeout: cfg.SIP.WebSocket.HandshakeTimeout.D(),
			MaxPendingPerIP:  cfg.SIP.WebSocket.MaxPendingPerIP,
			// A frame or message must be whole within the idle timeout
			// of its first byte, as a SIP message over TCP (slowloris).
			MessageTimeout: cfg.Limits.IdleTimeout.D(),
			Origins:        cfg.SIP.WebSocket.Origins,
			HostAllowed:    l.ownName(cfg),
			TLS:            tc,
			OnRefused:      l.wsRefused,
			OnClosed: func(hs wsgate.Handshake) {
				if f := l.wsClosed.Load(); f != nil {
					(*f)(tp, hs)
				}
			},
			Logger: logger.With("component", "websocket", "transport", tp),
		})
		if err != nil {
			_ = ln.Close()
			return fail(fmt.Errorf("config: sip.websocket.origins: %w", err))
		}
		*w.gate = g
		l.addrs[tp] = ln.Addr().String()
	}
	return l, nil
}

func (l *listeners) serve(srv *sipgo.Server, logger *slog.Logger) {
	run := func(tp string, f func() error) {
		go func() {
			if err := f(); err != nil && !errors.Is(err, net.ErrClosed) {
				logger.Error("sip listener stopped", "transport", tp, "error", err)
				if l.stopped != nil {
					l.stopped(tp, err)
				}
			}
		}()
	}
	if l.udp != nil {
		pc := net.PacketConn(l.udp)
		if l.front != nil {
			pc = l.front.PacketConn(pc)
		}
		run("udp", func() error { return srv.ServeUDP(pc) })
	}
	if l.tcp != nil {
		ln := l.tcp
		if l.front != nil {
			ln = l.front.Listener(ln, "TCP")
		}
		run("tcp", func() error { return srv.ServeTCP(ln) })
	}
	if l.tls != nil {
		ln := l.tls
		if l.front != nil {
			ln = l.front.Listener(ln, "TLS")
		}
		run("tls", func() error { return srv.ServeTLS(ln) })
	}
	if l.ws != nil {
		run("ws", func() error { return srv.ServeWS(l.ws) })
	}
	if l.wss != nil {
		// The gate did the TLS handshake: ServeWSS does none of its own.
		run("wss", func() error { return srv.ServeWSS(l.wss) })
	}
}

func (l *listeners) close() {
	if l.udp != nil {
		_ = l.udp.Close()
	}
	if l.tcp != nil {
		_ = l.tcp.Close()
	}
	if l.tls != nil {
		_ = l.tls.Close()
	}
	if l.ws != nil {
		_ = l.ws.Close()
	}
	if l.wss != nil {
		_ = l.wss.Close()
	}
	if l.front != nil {
		l.front.Close() // after the sockets: nothing is queued any more
	}
}

// domains lists the hosts whose AORs are ours: the configured domain and
// realm, the advertised host (sip.advertise), and every address the
// server listens on (all interface addresses for a wildcard bind), since
// newcomers type the server's IP as domain.
// serverHosts reports whether a host (case-insensitively) is one of the
// domains, the advertised host or a listening address.
func serverHosts(cfg config.Config, addrs map[string]string) func(string) bool {
	set := map[string]bool{}
	for _, h := range domains(cfg, addrs) {
		if h != "" {
			set[strings.ToLower(strings.Trim(h, "[]"))] = true
		}
	}
	return func(host string) bool { return set[strings.ToLower(strings.Trim(host, "[]"))] }
}

func domains(cfg config.Config, addrs map[string]string) []string {
	out := []string{cfg.SIP.Domain, cfg.SIP.Realm}
	// Behind 1:1 NAT the phones reach the server at its advertised
	// address, and a newcomer types that as the domain.
	if h := cfg.SIP.Advertise; h != "" {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		out = append(out, strings.Trim(h, "[]"))
	}
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue
		}
		if ap.Addr().IsUnspecified() {
			ifs, _ := net.InterfaceAddrs()
			for _, ia := range ifs {
				if p, err := netip.ParsePrefix(ia.String()); err == nil {
					out = append(out, p.Addr().String())
				}
			}
			continue
		}
		out = append(out, ap.Addr().String())
		if ap.Addr().IsLoopback() {
			out = append(out, "localhost")
		}
	}
	return out
}

// ownName returns the WebSocket gates' test of a Host header's name
// (wsgate.Config.HostAllowed): localhost, sip.domain, the realm,
// sip.advertise, and the names the TLS certificate in service covers
// (the one a browser's wss connection checked). A page served under
// another name needs sip.websocket.origins.
func (l *listeners) ownName(cfg config.Config) func(string) bool {
	names := map[string]bool{"localhost": true}
	for _, n := range []string{cfg.SIP.Domain, cfg.SIP.Realm, cfg.SIP.Advertise} {
		names[strings.ToLower(n)] = true
	}
	return func(name string) bool {
		if names[strings.ToLower(name)] {
			return true
		}
		tc := l.tlsConfig
		if tc == nil || tc.GetCertificate == nil {
			return false
		}
		cert, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		return err == nil && cert != nil && cert.Leaf != nil && cert.Leaf.VerifyHostname(name) == nil
	}
}
