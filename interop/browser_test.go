//go:build interop

package interop

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/browsertest"
	"github.com/sipwarden/sipwarden/interop/harness"
)

// TestBaresipCallsBrowser: the sipwarden binary serves /phone; Chromium
// registers "web" over the ws listener with JsSIP (Contact host
// *.invalid); baresip on UDP dials web; the INVITE can reach the browser
// only down its own WebSocket (RFC 7118 section 5: the Contact cannot be
// dialled). The page answers, both sides see the call up, the page hangs
// up and baresip sees the BYE.
func TestBaresipCallsBrowser(t *testing.T) {
	requireTools(t, "baresip", "chromium")
	srv := startServer(t, func(c *harness.Config) {
		port, err := harness.FreeTCPPort()
		if err != nil {
			t.Fatal(err)
		}
		c.WS = "127.0.0.1:" + strconv.Itoa(port)
	})
	pw, pb := randomPassword(), randomPassword()
	createCredentialCLI(t, srv, "web", pw, "")
	createCredentialCLI(t, srv, "bares", pb, "")

	b := browsertest.Start(t, 3*time.Minute)
	p := b.Open("http://" + srv.Config.HTTP + "/phone")
	p.WaitText("#log", "ready (JsSIP 3.13.", 15*time.Second)
	p.Fill("#server", "ws://"+srv.Config.WS)
	p.Fill("#domain", "sipwarden.test")
	p.Fill("#user", "web")
	p.Fill("#password", pw)
	p.Click("#register")
	p.WaitText("#log", "registered (200 OK)", 15*time.Second)
	reg := oneRegistration(t, srv, "web")
	if reg.Transport != "ws" || !strings.Contains(reg.Contact, ".invalid") {
		t.Fatalf("web's binding: got transport %q contact %q, want ws and a .invalid host", reg.Transport, reg.Contact)
	}

	caller := startBaresipWith(t, srv, "bares", pb, "udp", baresipWebRTCConfig, baresipWebRTCAccount)
	caller.waitRegistered(t, "bares", "udp")
	caller.command(t, "/dial sip:web@sipwarden.test")
	p.WaitText("#call-status", "incoming", 20*time.Second)
	p.WaitText("#log", "incoming call from sip:bares@sipwarden.test", time.Second)
	p.Click("#answer")
	p.WaitText("#call-status", "confirmed", 15*time.Second)
	caller.waitOutput(t, "established call to web", baresipEstablished("bares", "web"))
	up := time.Now()
	checkOneCall(t, srv, "bares", "web")
	holdBaresipCall(up)
	p.Click("#hangup")
	p.WaitText("#call-status", "ended", 10*time.Second)
	caller.waitOutput(t, "BYE from the browser", baresipTerminated("web"))
	waitNoCalls(t, srv)
}
