package wsgate_test

import (
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/connlimit"
	"github.com/sipwarden/sipwarden/wsgate"
)

// Wiring: the TCP listener under connlimit (bans, connection limits),
// the gate on top, sipgo serving the gate. For wss the gate gets the TLS
// config and a plain TCP listener, and sipgo's ServeWSS serves it.
func Example() {
	var (
		srv     *sipgo.Server // with its handlers
		limiter *connlimit.Limiter
		certs   *tls.Config
		log     *slog.Logger
	)
	// Bind first, so that bind errors are returned at start.
	wsLn, err := net.Listen("tcp", "127.0.0.1:5066")
	if err != nil {
		return
	}
	wssLn, err := net.Listen("tcp", "127.0.0.1:7443")
	if err != nil {
		return
	}
	ws, err := wsgate.New(limiter.Listen(wsLn, "ws"), wsgate.Config{Logger: log})
	if err != nil {
		return // a malformed Origins entry
	}
	wss, err := wsgate.New(limiter.Listen(wssLn, "wss"), wsgate.Config{TLS: certs, Logger: log})
	if err != nil {
		return
	}
	go srv.ServeWS(ws)
	go srv.ServeWSS(wss)

	// In a handler: what the browser's upgrade request carried.
	srv.OnRegister(func(req *sip.Request, tx sip.ServerTransaction) {
		gate := ws
		if req.Transport() == "WSS" {
			gate = wss
		}
		if hs, ok := gate.Handshake(req.Source()); ok {
			_ = hs.Query.Get("access_token")                     // a secret: never log it
			log.Info("register over websocket", "handshake", hs) // hs logs without query and headers
		}
	})
}
