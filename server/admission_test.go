package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/server"
)

// inviteMsg builds an out-of-dialog INVITE from user to bob; auth is a
// Proxy-Authorization value or "".
func (u *rawUA) inviteMsg(user, callID string, cseq int, auth string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INVITE sip:bob@sipwarden.test SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n", strings.ToUpper(u.transport), u.local, randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@sipwarden.test>;tag=%s\r\nTo: <sip:bob@sipwarden.test>\r\n", user, randHex(4))
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d INVITE\r\nContact: <sip:%s@%s;transport=%s>\r\n", callID, cseq, user, u.local, u.transport)
	if auth != "" {
		fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// invite runs a digest INVITE flow (407, answer) and returns the final
// status line of the authenticated INVITE.
func (u *rawUA) invite(user, pass string) string {
	callID := randHex(8)
	st, raw := u.exchange(u.inviteMsg(user, callID, 1, ""), 2*time.Second)
	if !strings.HasPrefix(st, "SIP/2.0 407") {
		return st
	}
	m := nonceRE.FindStringSubmatch(raw)
	if m == nil {
		return "no nonce in " + st
	}
	st, _ = u.exchange(u.inviteMsg(user, callID, 2, digestAnswer(user, pass, m[1], "INVITE", "sip:bob@sipwarden.test")), 2*time.Second)
	return st
}

// TestRefusalsSameForRegisterAndInvite: a wrong password, an unknown user,
// a disabled and an expired credential, and a correct password from outside
// the connection's allow-list get the very same status line, as REGISTER
// and as INVITE: nothing on the wire tells a sender that its password was
// right (auth.Outcome.Answer is the one table both use).
func TestRefusalsSameForRegisterAndInvite(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Guard.MaxFailures = 1000 // no ban in the way
	ts := startServer(t, cfg)
	var conn struct{ ID string }
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{"name": "pbx", "allowed_cidrs": []string{"127.0.0.90"}}, &conn); code != 201 {
		t.Fatalf("create connection: %d", code)
	}
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	ts.createCredential(t, "pbx1", pw, map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "dora", pw, map[string]any{"enabled": false})
	ts.createCredential(t, "eve", pw, map[string]any{"expires_at": time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)})
	time.Sleep(1100 * time.Millisecond) // let eve expire

	cases := []struct{ name, user, pass string }{
		{"wrong password", "alice", "wrong-password-123"},
		{"unknown user", "mallory", pw},
		{"disabled credential", "dora", pw},
		{"expired credential", "eve", pw},
		{"right password outside the allow-list", "pbx1", pw},
	}
	for _, tp := range []string{"udp", "tcp"} {
		for _, c := range cases {
			ua := newRawUA(t, tp, "127.0.0.91", ts.Addr(tp))
			reg, inv := ua.register(c.user, c.pass), ua.invite(c.user, c.pass)
			if reg != "SIP/2.0 403 Forbidden" || inv != reg {
				t.Errorf("%s over %s: REGISTER got %q, INVITE %q; want both 403 Forbidden", c.name, tp, reg, inv)
			}
		}
	}
	// The same passwords from inside the allow-list are accepted: the
	// refusals above were the allow-list's, not the password's.
	ua := newRawUA(t, "udp", "127.0.0.90", ts.Addr("udp"))
	if st := ua.register("pbx1", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("pbx1 from its allowed address: got %q, want 200", st)
	}
}

// TestRuleAppliesOnEveryPath adds one admission rule and sees it applied to
// REGISTER on the stateless front (UDP, TCP and TLS) and on sipgo's path
// (stateful mode), and to INVITE and OPTIONS, which always take sipgo's
// path: the rule is written once.
func TestRuleAppliesOnEveryPath(t *testing.T) {
	refuseTagged := func(next admission.Handler) admission.Handler {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			if req.GetHeader("X-Refuse-Me") != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Refused By Test Rule", nil))
				return
			}
			next(req, tx)
		}
	}
	for _, mode := range []string{"stateless", "stateful"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Registrar.UDPMode, cfg.Registrar.StreamMode = mode, mode
			ts := startServer(t, cfg, server.Options{Middleware: []admission.Middleware{refuseTagged}})
			for _, tp := range []string{"udp", "tcp", "tls"} {
				var ua *rawUA
				if tp == "tls" {
					ua = newTLSRawUA(t, ts.Addr(tp))
				} else {
					ua = newRawUA(t, tp, "127.0.0.92", ts.Addr(tp))
				}
				for _, method := range []string{"REGISTER", "INVITE", "OPTIONS"} {
					for _, tagged := range []bool{true, false} {
						msg := ua.registerMsg("alice", randHex(8), 1, "", "")
						switch method {
						case "INVITE":
							msg = ua.inviteMsg("alice", randHex(8), 1, "")
						case "OPTIONS":
							msg = strings.Replace(strings.Replace(msg, "REGISTER sip:", "OPTIONS sip:", 1), "1 REGISTER", "1 OPTIONS", 1)
						}
						if tagged {
							msg = strings.Replace(msg, "Content-Length: 0", "X-Refuse-Me: 1\r\nContent-Length: 0", 1)
						}
						st, _ := ua.exchange(msg, 2*time.Second)
						refused := st == "SIP/2.0 488 Refused By Test Rule"
						if refused != tagged {
							t.Errorf("%s %s over %s, tagged %v: got %q", mode, method, tp, tagged, st)
						}
					}
				}
			}
			if mode == "stateless" && ts.StatelessHandled() == 0 {
				t.Error("no REGISTER took the stateless front")
			}
		})
	}
}

// newTLSRawUA is a rawUA over TLS from 127.0.0.1 (the server's
// certificate is not checked).
func newTLSRawUA(t testing.TB, server string) *rawUA {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", server, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial tls %s: %v", server, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawUA{t: t, conn: c, transport: "tls", local: c.LocalAddr().String(), rd: bufio.NewReaderSize(c, 65536)}
}
