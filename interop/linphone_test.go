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

// linphonec 5.1 headless (INTEROP_NOTES.md): HOME=DIR linphonec -c RC -d 6
// -l LOG with stdin on a pipe. register_only_when_network_is_up=0, and
// never auto_net_state_mon=0. Its SQLite directory must exist
// (HOME/.local/share/linphone): without it linphonec never creates its
// listening points and its first REGISTER fails with "No listening point".
const linphoneRC = `[sip]
bind_address=127.0.0.1
sip_port=%[1]d
sip_tcp_port=%[1]d
sip_tls_port=%[2]d
register_only_when_network_is_up=0
root_ca=
verify_server_certs=0
verify_server_cn=0
default_proxy=0

[proxy_0]
reg_proxy=<sip:%[3]s;transport=%[4]s>
reg_route=<sip:%[3]s;transport=%[4]s;lr>
reg_identity=<sip:%[5]s@sipwarden.test>
reg_expires=600
reg_sendregister=1

[auth_info_0]
username=%[5]s
passwd=%[6]s
realm=sipwarden.test

[rtp]
audio_rtp_port=%[7]d
video_rtp_port=%[8]d
`

type linphonec struct {
	proc    *harness.Proc
	logPath string // its -l debug log
	udpAddr string
}

// startLinphonec starts linphonec registering user over transport and stops
// it when the test ends, printing its logs if the test failed.
func startLinphonec(t *testing.T, srv *harness.Server, user, password, transport string) *linphonec {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".local", "share", "linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	sipPort, err := harness.FreeSIPPort()
	if err != nil {
		t.Fatal(err)
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = harness.FreeSIPPort(); err != nil {
			t.Fatal(err)
		}
	}
	server := srv.Config.UDP
	switch transport {
	case "tcp":
		server = srv.Config.TCP
	case "tls":
		server = srv.Config.TLS
	}
	rc := fmt.Sprintf(linphoneRC, sipPort, ports[0], server, transport, user, password, ports[1], ports[2])
	rcPath := filepath.Join(dir, "linphonerc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &linphonec{logPath: filepath.Join(dir, "linphone.log"), udpAddr: "127.0.0.1:" + strconv.Itoa(sipPort)}
	out := filepath.Join(dir, "linphonec.out")
	l.proc, err = harness.StartProc(harness.ProcSpec{
		Name: "linphonec", Path: "linphonec", Args: []string{"-c", rcPath, "-d", "6", "-l", l.logPath},
		Dir: dir, LogPath: out, Stdin: true, Env: []string{"HOME=" + dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.proc.Send("quit\n")
		_ = l.proc.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("linphonec (%s) stdout, last lines:\n%s", transport, harness.FileTail(out, 20))
			t.Logf("linphonec (%s) log, SIP-related lines:\n%s", transport, grepTail(l.logPath, sipLogLine, 80))
		}
	})
	return l
}

var sipLogLine = regexp.MustCompile(`LinphoneRegistration|belle-sip-(error|warning)|SIP/2\.0 \d\d\d|REGISTER sip:|WWW-Authenticate|Authorization:|listening point|reachability`)

// grepTail returns the last n lines of the file at path that match re.
func grepTail(path string, re *regexp.Regexp, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if re.MatchString(line) {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitState waits for user's account to reach state (LinphoneRegistrationOk
// or LinphoneRegistrationFailed) and reports whether it did; reaching the
// other terminal state first ends the wait.
func (l *linphonec) waitState(t *testing.T, user, state string) (bool, string) {
	t.Helper()
	prefix := "for identity [sip:" + user + "@sipwarden.test] moving from state "
	other := "LinphoneRegistrationFailed"
	if state == other {
		other = "LinphoneRegistrationOk"
	}
	return waitLog(testCtx(t, 40*time.Second), l.logPath, l.proc, 30*time.Second,
		func(s string) bool {
			return strings.Contains(s, prefix) && strings.Contains(lineWith(s, "to ["+state+"]"), prefix)
		},
		func(s string) string {
			if line := lineWith(s, "to ["+other+"]"); strings.Contains(line, prefix) {
				return line
			}
			return ""
		})
}

// TestLinphonecRegisters: linphonec registers over UDP, TCP and TLS, and
// with a credential challenged with SHA-256 only; the API then shows the
// binding with the transport and source of linphonec's own socket.
func TestLinphonecRegisters(t *testing.T) {
	requireTools(t, "linphonec")
	srv := startServer(t, nil)
	for _, tc := range []struct {
		name, transport, algorithms string
	}{
		{"udp", "udp", ""},
		{"tcp", "tcp", ""},
		{"tls", "tls", ""},
		{"sha256-only-udp", "udp", "SHA-256"},
		{"sha256-only-tls", "tls", "SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := "linphone-" + tc.name
			password := randomPassword()
			createCredentialCLI(t, srv, user, password, tc.algorithms)
			l := startLinphonec(t, srv, user, password, tc.transport)
			if ok, why := l.waitState(t, user, "LinphoneRegistrationOk"); !ok {
				t.Fatalf("linphonec over %s did not register: %s", tc.transport, why)
			}
			reg := oneRegistration(t, srv, user)
			server := srv.Config.TCP
			if tc.transport == "tls" {
				server = srv.Config.TLS
			}
			checkSource(t, reg, tc.transport, l.proc.PID(), l.udpAddr, server)
			if !strings.Contains(reg.UserAgent, "Linphone") {
				t.Errorf("user_agent: got %q, want linphonec's", reg.UserAgent)
			}

			// The challenge linphonec answered must be the credential's
			// algorithm: its debug log holds the SIP messages.
			b, _ := os.ReadFile(l.logPath)
			log := string(b)
			want := "MD5"
			if tc.algorithms != "" {
				want = tc.algorithms
			}
			challenge := lineWith(log, "WWW-Authenticate:")
			if challenge == "" {
				t.Fatalf("no WWW-Authenticate in linphonec's log: was it challenged?")
			}
			if !strings.Contains(challenge, "algorithm="+want) {
				t.Errorf("challenge: got %q, want algorithm=%s", challenge, want)
			}
			if tc.algorithms == "SHA-256" && strings.Contains(challenge, "MD5") {
				t.Errorf("challenge offers MD5 to a SHA-256-only credential: %q", challenge)
			}
			// linphonec writes "Authorization:  Digest" (two spaces).
			if auth := lineWith(log, "Authorization:"); !strings.Contains(auth, "Digest") || !strings.Contains(auth, "algorithm="+want) {
				t.Errorf("linphonec's Authorization: got %q, want algorithm=%s", auth, want)
			}
		})
	}
}

// TestLinphonecWrongPassword: linphonec with a wrong password ends in
// LinphoneRegistrationFailed and no binding is made.
func TestLinphonecWrongPassword(t *testing.T) {
	requireTools(t, "linphonec")
	srv := startServer(t, nil)
	user := "linphone-wrong"
	createCredentialCLI(t, srv, user, randomPassword(), "")
	l := startLinphonec(t, srv, user, "not-the-password-0", "udp")
	if ok, why := l.waitState(t, user, "LinphoneRegistrationFailed"); !ok {
		t.Fatalf("linphonec with a wrong password: want LinphoneRegistrationFailed: %s", why)
	}
	b, _ := os.ReadFile(l.logPath)
	if !strings.Contains(string(b), "SIP/2.0 403") {
		t.Errorf("no 403 in linphonec's log: want 403 Forbidden after the challenge")
	}
	noRegistration(t, srv, user)
}
