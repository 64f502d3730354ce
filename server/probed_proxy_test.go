package server_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
)

// TestNotifyBeforeItsSubscriptionsAnswer: a notifier may send the first
// NOTIFY before its 2xx to the REFER (RFC 3515 2.4.4, RFC 6665 4.1.2.4),
// or right behind it, so that the NOTIFY reaches the proxy first. It got
// 481 (always when sent first; 14 times in 20 right behind a 202), and a
// blind transfer lost its sipfrag NOTIFY. It now waits for the REFER's
// answer and follows the dialog to the subscriber.
func TestNotifyBeforeItsSubscriptionsAnswer(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	bob := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob REGISTER: %q", st)
	}
	alice := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	callID, aliceTag := randHex(8), randHex(4)
	refer := func(cseq int, auth string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "REFER sip:bob@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\n", alice.local, randHex(8))
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:alice@sipwarden.test>;tag=%s\r\nTo: <sip:bob@sipwarden.test>\r\n", aliceTag)
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REFER\r\nContact: <sip:alice@%s>\r\nRefer-To: <sip:carol@sipwarden.test>\r\n", callID, cseq, alice.local)
		if auth != "" {
			fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		return b.String()
	}
	sendAuthenticated(t, alice, refer, "alice", "REFER", "sip:bob@sipwarden.test")
	fwd := awaitStart(bob, "REFER ", 3*time.Second)
	if fwd == "" {
		t.Fatal("the REFER did not reach bob")
	}
	rr := header(fwd, "Record-Route")
	if rr == "" {
		t.Fatalf("the REFER has no Record-Route:\n%s", fwd)
	}
	bobTag := randHex(4)
	body := "SIP/2.0 100 Trying\r\n"
	notify := fmt.Sprintf("NOTIFY sip:alice@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\nRoute: %s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:bob@sipwarden.test>;tag=%s\r\nTo: <sip:alice@sipwarden.test>;tag=%s\r\nCall-ID: %s\r\nCSeq: 1 NOTIFY\r\n"+
		"Event: refer\r\nSubscription-State: active;expires=60\r\nContact: <sip:bob@%s>\r\nContent-Type: message/sipfrag\r\nContent-Length: %d\r\n\r\n%s",
		alice.local, bob.local, randHex(8), rr, bobTag, aliceTag, callID, bob.local, len(body), body)
	accepted := answerTo(fwd, "202 Accepted", bobTag, "Contact: <sip:bob@"+bob.local+">\r\n")

	if err := bob.send(notify); err != nil { // first, before the 202
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := bob.send(accepted); err != nil {
		t.Fatal(err)
	}
	var gotNotify, got202 bool
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline) && !(gotNotify && got202); {
		msg := alice.recv(time.Until(deadline))
		switch {
		case strings.HasPrefix(msg, "NOTIFY "):
			gotNotify = true
		case strings.HasPrefix(msg, "SIP/2.0 202"):
			got202 = true
		}
	}
	if !gotNotify || !got202 {
		t.Errorf("alice got the NOTIFY: %v, the 202: %v; what bob got back: %q", gotNotify, got202, bob.recv(200*time.Millisecond))
	}
}

// TestRequestsPerCredentialCapped: out-of-dialog requests other than
// INVITE forwarded to a device that never answers hold their count until
// Timer F (32 s). One account's 5,000 OPTIONS held every
// limits.max_in_flight slot, and every other REGISTER got 503 for 32 s.
// They now count against a cap of their own per credential (the call
// cap's value), and take no REGISTER slot.
func TestRequestsPerCredentialCapped(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.MaxCallsPerCredential = 2
	cfg.Limits.MaxInFlight = 2
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	ts.createCredential(t, "carol", pw, nil)
	bob := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp")) // never answers
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob REGISTER: %q", st)
	}
	alice := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	message := func(callID string, cseq int, auth string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "MESSAGE sip:bob@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\n", alice.local, randHex(8))
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:alice@sipwarden.test>;tag=%s\r\nTo: <sip:bob@sipwarden.test>\r\n", randHex(4))
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d MESSAGE\r\n", callID, cseq)
		if auth != "" {
			fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
		}
		b.WriteString("Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
		return b.String()
	}
	// No answer is waited for: bob never answers.
	send := func() {
		callID := randHex(8)
		sendAuthenticated(t, alice, func(cseq int, auth string) string { return message(callID, cseq, auth) },
			"alice", "MESSAGE", "sip:bob@sipwarden.test")
	}
	send()
	send()
	at := 0
	waitFor(t, "two MESSAGEs at bob", 5*time.Second, func() bool {
		if strings.HasPrefix(bob.recv(100*time.Millisecond), "MESSAGE ") {
			at++
		}
		return at == 2
	})
	send()
	if st := awaitStart(alice, "SIP/2.0 503", 3*time.Second); !strings.HasPrefix(st, "SIP/2.0 503 Too Many Requests For This Credential\r\n") {
		t.Fatalf("alice's third MESSAGE: %q, want 503 Too Many Requests For This Credential", st)
	}
	carol := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st := carol.register("carol", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("carol REGISTER while alice's MESSAGEs wait: %q, want 200", st)
	}
}

// TestInDialogRequestFromOutsideRefused: a request naming a call's
// Call-ID and tags from an address of neither side is refused 403: an
// unauthenticated sender who learnt them tore the call down with a BYE,
// or redirected its media with a re-INVITE (RFC 3261 26.1). The callee's
// own BYE still goes through.
func TestInDialogRequestFromOutsideRefused(t *testing.T) {
	ts, alice, bob, callID, inv := bobRinging(t)
	bobTag := randHex(4)
	if err := bob.send(answerTo(inv, "200 OK", bobTag, "Contact: <sip:bob@"+bob.local+">\r\n")); err != nil {
		t.Fatal(err)
	}
	if awaitStart(alice, "SIP/2.0 200", 3*time.Second) == "" {
		t.Fatal("alice got no 200")
	}
	aliceTag := between(header(inv, "From"), "tag=", ";")
	rr := header(inv, "Record-Route")
	bye := func(from *rawUA, cseq int, fromUser, fromTag, toUser, toTag, ruri string) string {
		return fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\nRoute: %s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:%s@sipwarden.test>;tag=%s\r\nTo: <sip:%s@sipwarden.test>;tag=%s\r\nCall-ID: %s\r\nCSeq: %d BYE\r\nContent-Length: 0\r\n\r\n",
			ruri, from.local, randHex(8), rr, fromUser, fromTag, toUser, toTag, callID, cseq)
	}
	mallory := newRawUA(t, "udp", "127.0.0.66", ts.Addr("udp"))
	if st, _ := mallory.exchange(bye(mallory, 10, "bob", bobTag, "alice", aliceTag, "sip:alice@"+alice.local), 2*time.Second); st != "SIP/2.0 403 Forbidden" {
		t.Fatalf("a third party's BYE: %q, want 403 Forbidden", st)
	}
	if got := alice.recv(300 * time.Millisecond); strings.HasPrefix(got, "BYE ") {
		t.Fatal("a third party's BYE reached alice")
	}
	if err := bob.send(bye(bob, 11, "bob", bobTag, "alice", aliceTag, "sip:alice@"+alice.local)); err != nil {
		t.Fatal(err)
	}
	got := awaitStart(alice, "BYE ", 3*time.Second)
	if !strings.HasPrefix(got, "BYE ") {
		t.Fatal("bob's BYE did not reach alice")
	}
}

// TestPreAuthRefusalsStateless: an INVITE the proxy refuses before
// authentication (Max-Forwards 0, a foreign Route, an unsupported
// Proxy-Require, a To tag of no dialog) is answered once, without a
// transaction, as the first INVITE's 407 is. Through sipgo's INVITE
// transaction each answer was sent 11 times over 32 s to a source that
// never ACKed: 3 KB back for a spoofed 300-byte INVITE.
func TestPreAuthRefusalsStateless(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "bob", pw, nil)
	u := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	for _, c := range []struct {
		name, extra, want string
		maxForwards       string
		toTag             bool
	}{
		{name: "Max-Forwards 0", maxForwards: "0", want: "SIP/2.0 483 Too Many Hops"},
		{name: "foreign Route", extra: "Route: <sip:192.0.2.9;lr>\r\n", want: "SIP/2.0 403 Preloaded Route Denied"},
		{name: "Proxy-Require", extra: "Proxy-Require: x-teleport\r\n", want: "SIP/2.0 420 Bad Extension"},
		{name: "no such dialog", toTag: true, want: "SIP/2.0 481 Call/Transaction Does Not Exist"},
		// With credentials, even bad ones: a Proxy-Authorization must not
		// buy the stateful path.
		{name: "Max-Forwards 0 with credentials", maxForwards: "0", extra: `Proxy-Authorization: Digest username="x", realm="sipwarden.test", nonce="n", uri="sip:bob@sipwarden.test", response="00"` + "\r\n", want: "SIP/2.0 483 Too Many Hops"},
	} {
		before, _ := ts.StatelessChallenges()
		msg := u.inviteMsg("alice", randHex(8), 1, "")
		if c.maxForwards != "" {
			msg = strings.Replace(msg, "Max-Forwards: 70", "Max-Forwards: "+c.maxForwards, 1)
		}
		if c.toTag {
			msg = strings.Replace(msg, "To: <sip:bob@sipwarden.test>", "To: <sip:bob@sipwarden.test>;tag=nosuch", 1)
		}
		msg = strings.Replace(msg, "Content-Length: 0", c.extra+"Content-Length: 0", 1)
		st, raw := u.exchange(msg, 2*time.Second)
		if st != c.want {
			t.Errorf("%s: %q, want %q\n%s", c.name, st, c.want, raw)
			continue
		}
		if after, _ := ts.StatelessChallenges(); after != before+1 {
			t.Errorf("%s: answered by sipgo's transaction (the front answered %d, before %d)", c.name, after, before)
		}
		// A transaction would send it again 500 ms later (Timer G).
		if again := u.recv(1200 * time.Millisecond); again != "" {
			t.Errorf("%s: the answer came again:\n%s", c.name, again)
		}
	}
}

// TestChallengeLoggedAtDebug: the 407 to a first INVITE, and the front's
// refusals before authentication, are logged at debug, as a REGISTER's
// 401: at info, every unauthenticated INVITE wrote a line (2,000 of them:
// 410 KB of log). The call's own line (the authenticated INVITE's) stays
// at info.
func TestChallengeLoggedAtDebug(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	u := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st, _ := u.exchange(u.inviteMsg("alice", randHex(8), 1, ""), 2*time.Second); !strings.HasPrefix(st, "SIP/2.0 407") {
		t.Fatalf("INVITE: %q", st)
	}
	// A refusal the front answers before authentication too.
	mf0 := strings.Replace(u.inviteMsg("alice", randHex(8), 1, ""), "Max-Forwards: 70", "Max-Forwards: 0", 1)
	if st, _ := u.exchange(mf0, 2*time.Second); st != "SIP/2.0 483 Too Many Hops" {
		t.Fatalf("INVITE with Max-Forwards 0: %q", st)
	}
	waitFor(t, "the INVITEs' log lines", 2*time.Second, func() bool {
		return strings.Contains(ts.logs.String(), "status=407") && strings.Contains(ts.logs.String(), "status=483")
	})
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		if (strings.Contains(line, "status=407") || strings.Contains(line, "status=483")) && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("logged above debug: %s", line)
		}
	}
}

// TestTelURIRouted: an INVITE to a tel: URI (RFC 3966) is routed by its
// number, as sip:+15550002222@domain;user=phone is: to the devices of the
// credential the number is assigned to. It got 403 Relaying Not Allowed:
// No Route To Domain.
func TestTelURIRouted(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	aliceCred := ts.createCredential(t, "alice", pw, nil)
	bobCred := ts.createCredential(t, "bob", pw, nil)
	if code := ts.api(t, "POST", "/v1/numbers", map[string]any{"number": "+15550002222", "credential_id": bobCred.ID}, nil); code != 201 {
		t.Fatalf("assign the number: %d", code)
	}
	if code := ts.api(t, "POST", "/v1/numbers", map[string]any{"number": "+15550001111", "credential_id": aliceCred.ID}, nil); code != 201 {
		t.Fatalf("assign alice's number: %d", code)
	}
	bob := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob REGISTER: %q", st)
	}
	alice := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	const ruri = "tel:+1-555-000-2222"
	callID := randHex(8)
	invite := func(cseq int, auth string) string {
		return strings.Replace(alice.inviteMsg("alice", callID, cseq, auth), "INVITE sip:bob@sipwarden.test SIP/2.0", "INVITE "+ruri+" SIP/2.0", 1)
	}
	sendAuthenticated(t, alice, invite, "alice", "INVITE", ruri)
	got := awaitStart(bob, "INVITE ", 3*time.Second)
	if !strings.HasPrefix(got, "INVITE ") {
		t.Fatalf("the INVITE to %s did not reach bob; alice got %q", ruri, alice.recv(500*time.Millisecond))
	}
	// Alice presenting her own number as a tel: From (it got 403 From
	// User Does Not Match Credential, a tel: URI having no user).
	telCall := randHex(8)
	telFrom := func(cseq int, auth string) string {
		return strings.Replace(alice.inviteMsg("alice", telCall, cseq, auth), "From: <sip:alice@sipwarden.test>", "From: <tel:+1-555-000-1111>", 1)
	}
	sendAuthenticated(t, alice, telFrom, "alice", "INVITE", "sip:bob@sipwarden.test")
	if got := awaitStart(bob, "INVITE ", 3*time.Second); !strings.Contains(got, telCall) {
		t.Fatalf("the INVITE from tel:+1-555-000-1111 did not reach bob; alice got %q", alice.recv(500*time.Millisecond))
	}
	// A tel: URI without a telephone number is malformed, before any
	// challenge (it was challenged, then refused 404).
	for _, bad := range []string{"tel:", "tel:abc", "tel:+", "tel:++15550001"} {
		msg := strings.Replace(alice.inviteMsg("alice", randHex(8), 1, ""), "INVITE sip:bob@sipwarden.test SIP/2.0", "INVITE "+bad+" SIP/2.0", 1)
		if st, _ := alice.exchange(msg, 2*time.Second); st != "SIP/2.0 400 Malformed Request-URI" {
			t.Errorf("INVITE %s: %q, want 400 Malformed Request-URI", bad, st)
		}
	}
}

// TestForkedChallengesAggregated: when the branches of a forked call
// answer 401 and 407, the response relayed carries every branch's
// WWW-Authenticate and Proxy-Authenticate (RFC 3261 16.7 step 7); only
// the chosen branch's came through.
func TestForkedChallengesAggregated(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Registrar.MaxContacts = 2
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	var devices []*rawUA
	for range 2 {
		d := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
		if st := d.register("bob", pw); st != "SIP/2.0 200 OK" {
			t.Fatalf("bob REGISTER: %q", st)
		}
		devices = append(devices, d)
	}
	alice, _ := aliceInvitesBob(t, ts)
	challenges := []string{"WWW-Authenticate: Digest realm=\"b1\", nonce=\"n1\"", "Proxy-Authenticate: Digest realm=\"b2\", nonce=\"n2\""}
	codes := []string{"401 Unauthorized", "407 Proxy Authentication Required"}
	for i, d := range devices {
		inv := awaitStart(d, "INVITE ", 3*time.Second)
		if inv == "" {
			t.Fatalf("device %d got no INVITE", i)
		}
		if err := d.send(answerTo(inv, codes[i], "d"+strconv.Itoa(i), challenges[i]+"\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	final := awaitStart(alice, "SIP/2.0 40", 4*time.Second) // the 401 or 407
	for _, c := range challenges {
		if !strings.Contains(final, c) {
			t.Errorf("the relayed challenge lacks %q:\n%s", c, final)
		}
	}
}

// TestTLSKeepAlivesDoNotKeepUnauthenticated: over TLS, CRLF keep-alives
// do not extend an unauthenticated connection's idle timeout (the framer
// tells the limiter of requests: it sees only encrypted bytes); requests
// do. A CRLF every few seconds kept such a connection open for ever.
func TestTLSKeepAlivesDoNotKeepUnauthenticated(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.IdleTimeout = config.Duration(time.Second)
	ts := startServer(t, cfg)
	dial := func() *tls.Conn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", ts.Addr("tls"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// closedBy sends what send makes every 200 ms and reports whether the
	// server closed the connection within d.
	closedBy := func(c *tls.Conn, d time.Duration, send func() string) bool {
		buf := make([]byte, 4096)
		for end := time.Now().Add(d); time.Now().Before(end); {
			if _, err := io.WriteString(c, send()); err != nil {
				return true
			}
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return true
			}
		}
		return false
	}
	if !closedBy(dial(), 4*time.Second, func() string { return "\r\n\r\n" }) {
		t.Error("an unauthenticated TLS connection sending only keep-alives was open after 4 s (idle_timeout 1s)")
	}
	c := dial()
	local := c.LocalAddr().String()
	n := 0
	options := func() string {
		n++
		return fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-o%d;rport\r\nMax-Forwards: 70\r\n"+
			"To: <sip:%s>\r\nFrom: <sip:probe@sipwarden.test>;tag=o\r\nCall-ID: tls-keep-%d\r\nCSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n",
			ts.Addr("tls"), local, n, ts.Addr("tls"), n, n)
	}
	if closedBy(c, 3*time.Second, options) {
		t.Error("a TLS connection sending requests was closed as idle")
	}
}

// awaitStart returns the next message u receives that starts with prefix
// within timeout ("" when none did), skipping the others.
func awaitStart(u *rawUA, prefix string, timeout time.Duration) string {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if m := u.recv(time.Until(deadline)); strings.HasPrefix(m, prefix) {
			return m
		}
	}
	return ""
}

// answerTo builds a UAS's response to req (as received) with status, a To
// tag and extra header lines: its Vias, From, Call-ID, CSeq and
// Record-Routes copied (RFC 3261 8.2.6.2, 12.1.1).
func answerTo(req, status, toTag, extra string) string {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, line := range strings.Split(req, "\r\n") {
		k, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "via", "from", "call-id", "cseq", "record-route":
			b.WriteString(line + "\r\n")
		case "to":
			b.WriteString(line + ";tag=" + toTag + "\r\n")
		}
	}
	b.WriteString(extra + "Content-Length: 0\r\n\r\n")
	return b.String()
}

// aliceInvitesBob sends an INVITE from alice (a raw UDP client) to bob
// through ts, answering its 407, and returns alice and the Call-ID.
func aliceInvitesBob(t *testing.T, ts *testServer) (*rawUA, string) {
	t.Helper()
	alice := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	callID := randHex(8)
	sendAuthenticated(t, alice, func(cseq int, auth string) string { return alice.inviteMsg("alice", callID, cseq, auth) },
		"alice", "INVITE", "sip:bob@sipwarden.test")
	return alice, callID
}

// bobRinging starts a server, registers bob (a raw UDP client) and has
// alice invite him: it returns the server, alice, bob, the Call-ID and
// the INVITE as bob received it.
func bobRinging(t *testing.T) (*testServer, *rawUA, *rawUA, string, string) {
	t.Helper()
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	bob := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob REGISTER: %q", st)
	}
	alice, callID := aliceInvitesBob(t, ts)
	inv := awaitStart(bob, "INVITE ", 3*time.Second)
	if inv == "" {
		t.Fatal("the INVITE did not reach bob")
	}
	return ts, alice, bob, callID, inv
}

// TestResponseWithoutCallersViaNotRelayed: a callee's 200 that carries
// only the proxy's Via was meant for the proxy (RFC 3261 16.7 step 3) and
// reaches the caller neither as the first answer nor as a retransmission;
// it was relayed without any Via.
func TestResponseWithoutCallersViaNotRelayed(t *testing.T) {
	_, alice, bob, _, inv := bobRinging(t)
	var lines []string
	vias := 0
	for _, line := range strings.Split(answerTo(inv, "200 OK", "b1", "Contact: <sip:bob@"+bob.local+">\r\n"), "\r\n") {
		if strings.HasPrefix(line, "Via:") {
			if vias++; vias > 1 {
				continue // the caller's Via left out
			}
		}
		lines = append(lines, line)
	}
	if vias < 2 {
		t.Fatalf("the forwarded INVITE had %d Vias, want the proxy's and the caller's", vias)
	}
	broken := strings.Join(lines, "\r\n")
	for range 2 { // the first answer, then a retransmission
		if err := bob.send(broken); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if m := alice.recv(time.Until(deadline)); strings.HasPrefix(m, "SIP/2.0 200") {
			t.Fatalf("the 200 without the caller's Via reached the caller:\n%s", m)
		}
	}
}

// sendAuthenticated sends the request build makes (CSeq 1, no
// credentials), answers its 407 with user's digest for method and uri
// (CSeq 2), and returns without waiting for the outcome.
func sendAuthenticated(t *testing.T, u *rawUA, build func(cseq int, auth string) string, user, method, uri string) {
	t.Helper()
	st, raw := u.exchange(build(1, ""), 2*time.Second)
	m := nonceRE.FindStringSubmatch(raw)
	if !strings.HasPrefix(st, "SIP/2.0 407") || m == nil {
		t.Fatalf("%s: %q, want a 407 challenge", method, st)
	}
	if err := u.send(build(2, digestAnswer(user, pw, m[1], method, uri))); err != nil {
		t.Fatal(err)
	}
}

// TestForkWithUnreachableBranch: a call forked to a device that answers
// and to one whose TCP connection is gone (its connect refused at once)
// gets the answering device's 200 and no final response before it,
// whichever registered first. The refused branch left no branch pending,
// and its 480 went to the caller while the other device rang, then its
// 200 after the 480 (RFC 3261 16.7 waits for every branch).
func TestForkWithUnreachableBranch(t *testing.T) {
	for _, tcpFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp first %v", tcpFirst), func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Registrar.MaxContacts = 2
			ts := startServer(t, cfg)
			ts.createCredential(t, "alice", pw, nil)
			ts.createCredential(t, "bob", pw, nil)
			var phone *rawUA
			registerGone := func() {
				gone := newRawUA(t, "tcp", "127.0.0.1", ts.Addr("tcp"))
				if st := gone.register("bob", pw); st != "SIP/2.0 200 OK" {
					t.Fatalf("bob over TCP: %q", st)
				}
				_ = gone.conn.Close() // nothing listens at its Contact any more
			}
			if tcpFirst {
				registerGone()
			}
			phone = newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
			if st := phone.register("bob", pw); st != "SIP/2.0 200 OK" {
				t.Fatalf("bob over UDP: %q", st)
			}
			if !tcpFirst {
				registerGone()
			}
			if n := len(ts.registrations(t, "bob")); n != 2 {
				t.Fatalf("bob has %d bindings, want 2", n)
			}
			alice, _ := aliceInvitesBob(t, ts)
			inv := awaitStart(phone, "INVITE ", 3*time.Second)
			if inv == "" {
				t.Fatal("the UDP phone got no INVITE")
			}
			time.Sleep(300 * time.Millisecond) // the other branch fails meanwhile
			if err := phone.send(answerTo(inv, "200 OK", "p1", "Contact: <sip:bob@"+phone.local+">\r\n")); err != nil {
				t.Fatal(err)
			}
			final := awaitStart(alice, "SIP/2.0 ", 3*time.Second)
			for strings.HasPrefix(final, "SIP/2.0 1") {
				final = awaitStart(alice, "SIP/2.0 ", 3*time.Second)
			}
			if !strings.HasPrefix(final, "SIP/2.0 200") {
				t.Fatalf("alice's first final response: %q, want the phone's 200", final)
			}
		})
	}
}
