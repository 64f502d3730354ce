//go:build interop

package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// baresip 1.0 headless (INTEROP_NOTES.md): a config directory per instance,
// no sound card (ausine source at 48 kHz stereo, aubridge sink), the stdio
// module reading commands from a pipe on stdin, net_interface 127.0.0.1.
// ausine's device is its frequency: with "nil" the source fails to start
// and baresip never answers a call ("frequency must be between 10 and
// 20000 Hz").
const baresipConfig = `poll_method		epoll
sip_listen		127.0.0.1:%d
net_interface		127.0.0.1
call_max_calls		4
audio_player		aubridge,nil
audio_source		ausine,440
audio_alert		aubridge,nil
ausrc_srate		48000
ausrc_channels		2
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			ausine.so
module			aubridge.so
module_tmp		uuid.so
module_tmp		account.so
module_app		menu.so
`

type baresip struct {
	proc    *harness.Proc
	logPath string
	udpAddr string // its sip_listen address
}

// startBaresip starts baresip registering user over transport (udp, tcp,
// tls) with outbound= pointing at the server's listener for it, and stops
// it (SIGTERM, then SIGKILL) when the test ends, printing its output if the
// test failed.
func startBaresip(t *testing.T, srv *harness.Server, user, password, transport string) *baresip {
	t.Helper()
	return startBaresipWith(t, srv, user, password, transport, "", "")
}

// baresipWebRTC is what baresip needs to call a browser: DTLS-SRTP, ICE
// and RTP/RTCP multiplexing (config lines), and the account parameters
// that use them.
const (
	baresipWebRTCConfig  = "module\t\t\tdtls_srtp.so\nmodule\t\t\tice.so\nrtcp_mux\t\tyes\n"
	baresipWebRTCAccount = ";mediaenc=dtls_srtp;medianat=ice"
)

// startBaresipWith is startBaresip with extra config lines and account
// parameters.
func startBaresipWith(t *testing.T, srv *harness.Server, user, password, transport, extraConfig, extraAccount string) *baresip {
	t.Helper()
	dir := t.TempDir()
	// baresip listens on sip_listen's port for UDP and TCP and the next one
	// for TLS.
	port, err := harness.FreeSIPPortPair()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config"), append(fmt.Appendf(nil, baresipConfig, port), extraConfig...), 0o644); err != nil {
		t.Fatal(err)
	}
	server := srv.Config.UDP
	switch transport {
	case "tcp":
		server = srv.Config.TCP
	case "tls":
		server = srv.Config.TLS
	}
	account := fmt.Sprintf("<sip:%s@sipwarden.test;transport=%s>;auth_user=%s;auth_pass=%s;answermode=auto;regint=600;outbound=\"sip:%s;transport=%s\"%s\n",
		user, transport, user, password, server, transport, extraAccount)
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(account), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &baresip{logPath: filepath.Join(dir, "baresip.out"), udpAddr: "127.0.0.1:" + strconv.Itoa(port)}
	b.proc, err = harness.StartProc(harness.ProcSpec{
		Name: "baresip", Path: "baresip", Args: []string{"-f", dir},
		Dir: dir, LogPath: b.logPath, Stdin: true, Env: []string{"HOME=" + dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.proc.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("baresip (%s) output, last lines:\n%s", transport, harness.FileTail(b.logPath, 60))
		}
	})
	return b
}

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

func (b *baresip) output() string {
	out, _ := os.ReadFile(b.logPath)
	return ansiEscape.ReplaceAllString(string(out), "")
}

// TestBaresipRegisters: baresip registers over UDP, TCP and TLS with a
// credential made by the CLI; the API (through the CLI) then shows the
// binding with the transport and the source address of baresip's own
// socket: its connection for TCP and TLS, not a port one would dial.
func TestBaresipRegisters(t *testing.T) {
	requireTools(t, "baresip")
	srv := startServer(t, nil)
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			user := "baresip-" + transport
			password := randomPassword()
			createCredentialCLI(t, srv, user, password, "")
			b := startBaresip(t, srv, user, password, transport)

			// e.g. "baresip-tcp@sipwarden.test: {0/TCP/v4} 200 OK (sipwarden) [1 binding]"
			ok := regexp.MustCompile(regexp.QuoteMeta(user+"@sipwarden.test: {") + `\d+/` +
				strings.ToUpper(transport) + `/v4\} 200 OK .*\[1 binding\]`)
			matched, why := waitLog(testCtx(t, 30*time.Second), b.logPath, b.proc, 20*time.Second,
				func(string) bool { return ok.MatchString(b.output()) },
				func(string) string {
					if s := b.output(); strings.Contains(s, "reg: sip:"+user) {
						return "registration failed: " + lineWith(s, "reg: sip:"+user)
					}
					return ""
				})
			if !matched {
				t.Fatalf("baresip over %s did not register: %s", transport, why)
			}

			regs := registrationsCLI(t, srv, user)
			if len(regs) != 1 {
				t.Fatalf("registration list --username %s: got %d bindings %+v, want 1", user, len(regs), regs)
			}
			server := srv.Config.TCP
			if transport == "tls" {
				server = srv.Config.TLS
			}
			checkSource(t, regs[0], transport, b.proc.PID(), b.udpAddr, server)
			if regs[0].ExpiresIn <= 0 || regs[0].ExpiresIn > 600 {
				t.Errorf("expires_in: got %d, want 1..600 (baresip asked for 600)", regs[0].ExpiresIn)
			}
			if !strings.Contains(regs[0].UserAgent, "baresip") {
				t.Errorf("user_agent: got %q, want baresip's", regs[0].UserAgent)
			}

			// On SIGTERM baresip unregisters (Expires: 0) before it exits.
			if err := b.proc.Stop(10 * time.Second); err != nil {
				t.Logf("baresip stop: %v", err)
			}
			if err := harness.Poll(testCtx(t, 10*time.Second), 5*time.Second, 100*time.Millisecond, func() (bool, error) {
				regs, err := srv.API().Registrations(testCtx(t, 10*time.Second), user)
				return err == nil && len(regs) == 0, err
			}); err != nil {
				t.Errorf("binding of %s still listed after baresip unregistered: %v", user, err)
			}
		})
	}
}

// TestBaresipWrongPassword: baresip with a wrong password gets 403 after the
// challenge (and so stops at once), and no binding is made.
func TestBaresipWrongPassword(t *testing.T) {
	requireTools(t, "baresip")
	srv := startServer(t, nil)
	user := "baresip-wrong"
	createCredentialCLI(t, srv, user, randomPassword(), "")
	b := startBaresip(t, srv, user, "not-the-password-0", "udp")
	forbidden := "reg: sip:" + user + "@sipwarden.test: 403"
	matched, why := waitLog(testCtx(t, 30*time.Second), b.logPath, b.proc, 20*time.Second,
		func(string) bool { return strings.Contains(b.output(), forbidden) },
		func(string) string {
			if s := b.output(); strings.Contains(s, "200 OK") {
				return "registered with a wrong password: " + lineWith(s, "200 OK")
			}
			return ""
		})
	if !matched {
		t.Fatalf("baresip with a wrong password: want %q: %s", forbidden, why)
	}
	noRegistration(t, srv, user)
}

// lineWith returns the first line of s containing sub.
func lineWith(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
