//go:build interop

package interop

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
	"github.com/sipwarden/sipwarden/server/servertest"
)

// TestUDPMessageSizeAgreesWithLimit (issue 15 item 9): a 40,000-byte
// OPTIONS over UDP is answered when sip.max_message_bytes allows it
// (before, sipgo's 32 KiB read buffer cut it and it was dropped), and
// gets 513 Message Too Large under the default limit of 32768 (it was
// dropped without a word).
func TestUDPMessageSizeAgreesWithLimit(t *testing.T) {
	big := func(addr string) string {
		pad := strings.Repeat("x", 40000)
		return "OPTIONS sip:" + addr + " SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-big1;rport\nMax-Forwards: 70\n" +
			"To: <sip:" + addr + ">\nFrom: <sip:probe@sipwarden.test>;tag=big\nCall-ID: big-options\nCSeq: 1 OPTIONS\n" +
			"Content-Type: text/plain\nContent-Length: 40000\n\n" + pad
	}
	for _, tc := range []struct {
		limit int
		want  string
	}{{65535, "SIP/2.0 200 OK"}, {0, "SIP/2.0 513 Message Too Large"}} {
		dir := t.TempDir()
		cfg, err := harness.LoopbackConfig(filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxMessageBytes = tc.limit
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		srv, err := harness.StartServer(ctx, serverBin, dir, cfg)
		cancel()
		if err != nil {
			t.Fatalf("start sipwarden: %v", err)
		}
		got := servertest.StatusLine(servertest.RawExchange(t, "udp", srv.SIPAddr(), big(srv.SIPAddr()), time.Second))
		if got != tc.want {
			t.Errorf("max_message_bytes %d: a 40,000-byte OPTIONS got %q, want %q", tc.limit, got, tc.want)
		}
		if err := srv.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
}
