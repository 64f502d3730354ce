package server_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/server/servertest"
)

// TestPeerResetIsNotAnError: a TCP peer that resets its connection (a
// phone switched off, a NAT that forgot the flow; here SO_LINGER 0) is
// routine. sipgo logged it as "Read error" at ERROR, once for every such
// peer, for an operator alerting on errors to be woken by; the connection
// now ends as a closed one does, at debug.
func TestPeerResetIsNotAnError(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	logs := &servertest.SyncBuffer{}
	logCfg := cfg.Log
	logCfg.Level = "info" // sipgo's debug records would fill its 10 a second
	servertest.SwapSIPGoLog(t, server.NewLogger(logCfg, logs).Handler()) // behind SetSIPGlobals' redaction
	ts := startServer(t, cfg)
	open := func() float64 { return metricValue(t, ts, "sipwarden_sip_connections_open", "transport", "tcp") }
	u := newRawUA(t, "tcp", "127.0.0.1", ts.Addr("tcp"))
	options := fmt.Sprintf("OPTIONS sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@sipwarden.test>;tag=%s\r\nTo: <sip:sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		u.local, randHex(8), randHex(4), randHex(8))
	if st, raw := u.exchange(options, 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("OPTIONS: %q\n%s", st, raw)
	}
	if n := open(); n != 1 {
		t.Fatalf("%v TCP connections open, want 1", n)
	}
	if err := u.conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	if err := u.conn.Close(); err != nil { // a reset, not a FIN
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); open() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open(); n != 0 {
		t.Fatalf("%v TCP connections open 5 s after the peer reset its own", n)
	}
	if s := logs.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("the peer's reset logged as an error:\n%s", tail(s, 2000))
	}
}

// TestWSPeerResetIsNotAnError: the same over WebSocket, where sipgo
// logged "Got TCP error" at ERROR.
func TestWSPeerResetIsNotAnError(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	logs := &servertest.SyncBuffer{}
	logCfg := cfg.Log
	logCfg.Level = "info"
	servertest.SwapSIPGoLog(t, server.NewLogger(logCfg, logs).Handler())
	ts := startServer(t, cfg)
	open := func() float64 { return metricValue(t, ts, "sipwarden_sip_connections_open", "transport", "ws") }
	u := mustDialWS(t, ts, "ws")
	if st, raw := u.exchange(optionsMsg(u), 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("OPTIONS: %q\n%s", st, raw)
	}
	if n := open(); n != 1 {
		t.Fatalf("%v WebSocket connections open, want 1", n)
	}
	if err := u.conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	if err := u.conn.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); open() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open(); n != 0 {
		t.Fatalf("%v WebSocket connections open 5 s after the peer reset its own", n)
	}
	if s := logs.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("the peer's reset logged as an error:\n%s", tail(s, 2000))
	}
}
