package server_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/server"
	"github.com/sipwarden/sipwarden/server/servertest"
)

// quietServer starts a node whose sipgo log (at info: its debug records
// would fill its 10 a second) is returned, to be searched for errors.
func quietServer(t *testing.T) (*testServer, *servertest.SyncBuffer) {
	t.Helper()
	return quietServerWith(t, nil)
}

// quietServerWith is quietServer with edit applied to its configuration.
func quietServerWith(t *testing.T, edit func(*config.Config)) (*testServer, *servertest.SyncBuffer) {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	if edit != nil {
		edit(&cfg)
	}
	logs := &servertest.SyncBuffer{}
	logCfg := cfg.Log
	logCfg.Level = "info"
	servertest.SwapSIPGoLog(t, server.NewLogger(logCfg, logs).Handler()) // behind SetSIPGlobals' redaction
	return startServer(t, cfg), logs
}

// TestPeerResetIsNotAnError: a TCP or WebSocket peer that resets its
// connection (a phone switched off, a NAT that forgot the flow; here
// SO_LINGER 0) is routine. sipgo logged it at ERROR ("Read error", "Got
// TCP error"), once for every such peer, for an operator alerting on
// errors to be woken by; the connection now ends as a closed one does.
func TestPeerResetIsNotAnError(t *testing.T) {
	for _, tp := range []string{"tcp", "ws"} {
		t.Run(tp, func(t *testing.T) {
			ts, logs := quietServer(t)
			var conn net.Conn
			var st, raw string
			if tp == "ws" {
				u := mustDialWS(t, ts, "ws")
				conn = u.conn
				st, raw = u.exchange(optionsMsg(u), 2*time.Second)
			} else {
				u := newRawUA(t, "tcp", "127.0.0.1", ts.Addr("tcp"))
				conn = u.conn
				st, raw = u.exchange(fmt.Sprintf("OPTIONS sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\n"+
					"From: <sip:probe@sipwarden.test>;tag=%s\r\nTo: <sip:sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
					u.local, randHex(8), randHex(4), randHex(8)), 2*time.Second)
			}
			if st != "SIP/2.0 200 OK" {
				t.Fatalf("OPTIONS: %q\n%s", st, raw)
			}
			open := func() float64 { return metricValue(t, ts, "sipwarden_sip_connections_open", "transport", tp) }
			if n := open(); n != 1 {
				t.Fatalf("%v %s connections open, want 1", n, tp)
			}
			if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
				t.Fatal(err)
			}
			if err := conn.Close(); err != nil { // a reset, not a FIN
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); open() != 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if n := open(); n != 0 {
				t.Fatalf("%v %s connections open 5 s after the peer reset its own", n, tp)
			}
			if s := logs.String(); strings.Contains(s, "level=ERROR") {
				t.Errorf("the peer's reset logged as an error:\n%s", tail(s, 2000))
			}
		})
	}
}

// TestUnanswerableDropped: what cannot be answered (garbage on the UDP
// port, a request without a Via) is counted and dropped, where sipgo
// logged an ERROR for each: a scanner's probes are not the server's
// fault. A keep-alive is not counted, and the TCP connection that
// carried a request without a Via still serves the next one.
func TestUnanswerableDropped(t *testing.T) {
	ts, logs := quietServer(t)
	dropped := func() float64 { return metricValue(t, ts, "sipwarden_guard_rejected_total", "reason", "unparsable") }
	noVia := "OPTIONS sip:sipwarden.test SIP/2.0\r\nFrom: <sip:probe@sipwarden.test>;tag=1\r\nTo: <sip:sipwarden.test>\r\nCall-ID: nv1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	udp := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	for _, msg := range []string{"\x00\x01\x02garbage", "hello world\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", noVia, "\r\n\r\n"} {
		if _, err := io.WriteString(udp.conn, msg); err != nil {
			t.Fatal(err)
		}
	}
	tcp := newRawUA(t, "tcp", "127.0.0.1", ts.Addr("tcp"))
	if _, err := io.WriteString(tcp.conn, noVia); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); dropped() < 5 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := dropped(); n != 5 {
		t.Errorf("%v requests counted as unparsable, want 5 (4 datagrams and a TCP request, not the keep-alive)", n)
	}
	options := fmt.Sprintf("OPTIONS sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@sipwarden.test>;tag=%s\r\nTo: <sip:sipwarden.test>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		tcp.local, randHex(8), randHex(4), randHex(8))
	if st, raw := tcp.exchange(options, 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Errorf("OPTIONS after a request without a Via on the same connection: %q\n%s", st, raw)
	}
	if s := logs.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("sipgo logged an error:\n%s", tail(s, 2000))
	}
}
