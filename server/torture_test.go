package server_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTortureMessages sends every RFC 4475 torture message
// (testdata/torture) over UDP and over TCP to a running server: after each
// one a client on another address still registers, and at the end a
// sipgo client registers over both transports.
func TestTortureMessages(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "torture", "*", "*.dat"))
	if err != nil || len(files) < 45 {
		t.Fatalf("torture messages: %d files (%v), want the RFC 4475 set", len(files), err)
	}
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	for _, tp := range []string{"udp", "tcp"} {
		checker := newRawUA(t, tp, "127.0.0.40", ts.Addr(tp))
		var udpSender net.Conn
		if tp == "udp" {
			udpSender = newRawUA(t, "udp", "127.0.0.41", ts.Addr("udp")).conn
		}
		for _, f := range files {
			name := filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
			msg, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch tp {
			case "udp":
				if _, err := udpSender.Write(msg); err != nil {
					t.Fatalf("%s over udp: %v", name, err)
				}
			case "tcp":
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.41")}, Timeout: time.Second}
				c, err := d.Dial("tcp", ts.Addr("tcp"))
				if err != nil {
					t.Fatalf("%s: dial: %v", name, err)
				}
				_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
				_, _ = c.Write(msg)
				_, _ = c.Read(make([]byte, 4096)) // an answer, a close, or nothing
				c.Close()
			}
			if st := checker.register("alice", pw); st != "SIP/2.0 200 OK" {
				t.Fatalf("after %s over %s: REGISTER got %q, want 200 OK", name, tp, st)
			}
		}
	}
	for _, tp := range []string{"udp", "tcp"} {
		wantStatus(t, newPhone(t, ts, tp).register(t, regOpts{user: "alice", pass: pw}), 200)
	}
	if strings.Contains(ts.logs.String(), "panic") {
		t.Error("the server log mentions a panic")
	}
}
