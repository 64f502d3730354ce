package server_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

const pw = "correct-horse-battery"

func TestRegisterDigestAllTransports(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	for _, tp := range []string{"udp", "tcp", "tls"} {
		for _, alg := range []string{"MD5", "SHA-256", "SHA-512-256"} {
			t.Run(tp+"/"+alg, func(t *testing.T) {
				user := fmt.Sprintf("u-%s-%s", tp, strings.ToLower(alg))
				ts.createCredential(t, user, pw, map[string]any{"algorithms": []string{alg}})
				p := newPhone(t, ts, tp)
				// The first challenge must offer the credential's algorithm.
				first := p.register(t, regOpts{user: user})
				wantStatus(t, first, 401)
				if h := first.GetHeader("WWW-Authenticate"); h == nil || !strings.Contains(h.Value(), "algorithm="+alg) {
					t.Fatalf("challenge %v does not offer %s", h, alg)
				}
				res := p.register(t, regOpts{user: user, pass: pw, expires: "600"})
				wantStatus(t, res, 200)
				c := res.GetHeader("Contact")
				if c == nil || !strings.Contains(c.Value(), "expires=600") {
					t.Fatalf("200 Contact: got %v, want the binding with expires=600", c)
				}
				rs := ts.registrations(t, user)
				if len(rs) != 1 || rs[0].Transport != tp {
					t.Fatalf("registrations: got %+v, want one over %s", rs, tp)
				}
			})
		}
	}
}

func TestRegisterDefaultChallengeIsMD5Auth(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	res := newPhone(t, ts, "udp").register(t, regOpts{user: "nobody"})
	wantStatus(t, res, 401)
	hs := res.GetHeaders("WWW-Authenticate")
	if len(hs) != 1 {
		t.Fatalf("got %d challenges, want 1", len(hs))
	}
	v := hs[0].Value()
	for _, want := range []string{`realm="sipwarden.test"`, "algorithm=MD5", `qop="auth"`, "nonce="} {
		if !strings.Contains(v, want) {
			t.Errorf("challenge %q lacks %s", v, want)
		}
	}
}

func TestRegisterRefusals(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	ts.createCredential(t, "dora", pw, map[string]any{"enabled": false})
	exp := ts.createCredential(t, "eve", pw, map[string]any{"expires_at": time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
	_ = exp
	time.Sleep(1600 * time.Millisecond) // let eve's credential expire

	p := newPhone(t, ts, "udp")
	cases := []struct {
		name   string
		o      regOpts
		status int
		reason string
	}{
		{"wrong password", regOpts{user: "alice", pass: "wrong-password-123"}, 403, "Forbidden"},
		{"unknown user", regOpts{user: "mallory", pass: pw}, 403, "Forbidden"},
		{"disabled", regOpts{user: "dora", pass: pw}, 403, "Forbidden"},
		{"expired", regOpts{user: "eve", pass: pw}, 403, "Forbidden"},
		{"other user's AOR", regOpts{user: "alice", pass: pw, toUser: "bob"}, 403, "Not Allowed To Register This AOR"},
		{"foreign domain", regOpts{user: "alice", pass: pw, domain: "example.com"}, 404, "Domain Not Served Here"},
		{"interval too brief", regOpts{user: "alice", pass: pw, expires: "10"}, 423, "Interval Too Brief"},
		{"non-numeric Expires", regOpts{user: "alice", pass: pw, expires: "soon"}, 400, "Invalid Expires Header"},
		{"wildcard without Expires 0", regOpts{user: "alice", pass: pw, contact: "*", expires: "60"}, 400, "Wildcard Contact Requires Expires 0 And No Other Contact"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := p.register(t, c.o)
			wantStatus(t, res, c.status)
			if res.Reason != c.reason {
				t.Errorf("reason: got %q, want %q", res.Reason, c.reason)
			}
			if c.status == 423 {
				if h := res.GetHeader("Min-Expires"); h == nil || h.Value() != "60" {
					t.Errorf("Min-Expires: got %v, want 60", h)
				}
			}
		})
	}
	if rs := ts.registrations(t, ""); len(rs) != 0 {
		t.Errorf("refused REGISTERs left bindings: %+v", rs)
	}
	if strings.Contains(ts.logs.String(), pw) {
		t.Error("the password appears in the server log")
	}
}

func TestRegisterExpiresCappedAndWildcard(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	p := newPhone(t, ts, "tcp")
	res := p.register(t, regOpts{user: "alice", pass: pw, expires: "999999", callID: "c1@test", cseq: 1})
	wantStatus(t, res, 200)
	if c := res.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), "expires=7200") {
		t.Fatalf("Contact %v: want expires capped to 7200", c)
	}
	// Contact: * with Expires: 0 removes every binding.
	res = p.register(t, regOpts{user: "alice", pass: pw, contact: "*", expires: "0", callID: "c1@test", cseq: 10})
	wantStatus(t, res, 200)
	if res.GetHeader("Contact") != nil {
		t.Errorf("200 to Contact: * still lists %v", res.GetHeader("Contact"))
	}
	if rs := ts.registrations(t, "alice"); len(rs) != 0 {
		t.Errorf("bindings left after Contact: *: %+v", rs)
	}
}

func TestRegisterCSeqOrdering(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	p := newPhone(t, ts, "udp")
	// The digest retry increments CSeq: 5 -> 6 is stored.
	wantStatus(t, p.register(t, regOpts{user: "alice", pass: pw, callID: "same@test", cseq: 5, expires: "300"}), 200)
	// Same Call-ID, CSeq 3 (+1 for the retry = 4): not higher than 6.
	res := p.register(t, regOpts{user: "alice", pass: pw, callID: "same@test", cseq: 3, expires: "900"})
	wantStatus(t, res, 400)
	rs := ts.registrations(t, "alice")
	if len(rs) != 1 || rs[0].ExpiresIn > 300 {
		t.Fatalf("out-of-order REGISTER changed the binding: %+v", rs)
	}
	wantStatus(t, p.register(t, regOpts{user: "alice", pass: pw, callID: "same@test", cseq: 7, expires: "900"}), 200)
	if rs := ts.registrations(t, "alice"); len(rs) != 1 || rs[0].ExpiresIn < 800 {
		t.Fatalf("in-order refresh not applied: %+v", rs)
	}
}

func TestRegisterLastDeviceWins(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	p1, p2 := newPhone(t, ts, "udp"), newPhone(t, ts, "tcp")
	wantStatus(t, p1.register(t, regOpts{user: "alice", pass: pw, callID: "dev1", contact: "<sip:alice@10.0.0.1:5060>", instance: ""}), 200)
	// Same device refreshing (same Call-ID, new Contact address): updated in place.
	wantStatus(t, p1.register(t, regOpts{user: "alice", pass: pw, callID: "dev1", cseq: 5, contact: "<sip:alice@10.0.0.9:5060>"}), 200)
	rs := ts.registrations(t, "alice")
	if len(rs) != 1 || !strings.Contains(rs[0].Contact, "10.0.0.9") {
		t.Fatalf("refresh: got %+v, want one binding with the new contact", rs)
	}
	firstID := rs[0].ID
	// A second device: it wins, the first is gone.
	res := p2.register(t, regOpts{user: "alice", pass: pw, callID: "dev2", contact: "<sip:alice@10.0.0.2:5060;transport=tcp>"})
	wantStatus(t, res, 200)
	if n := len(res.GetHeaders("Contact")); n != 1 {
		t.Errorf("200 lists %d contacts, want 1", n)
	}
	rs = ts.registrations(t, "alice")
	if len(rs) != 1 || rs[0].ID == firstID || rs[0].Transport != "tcp" || !strings.Contains(rs[0].Contact, "10.0.0.2") {
		t.Fatalf("second device: got %+v, want only the TCP device", rs)
	}
	// Same +sip.instance with another Call-ID: the same device, refreshed.
	wantStatus(t, p2.register(t, regOpts{user: "alice", pass: pw, callID: "i1", instance: "00000000-0000-0000-0000-000000000001", contact: `<sip:alice@10.0.0.3>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>"`}), 200)
	wantStatus(t, p2.register(t, regOpts{user: "alice", pass: pw, callID: "i2", contact: `<sip:alice@10.0.0.4>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>"`}), 200)
	rs = ts.registrations(t, "alice")
	if len(rs) != 1 || !strings.Contains(rs[0].Contact, "10.0.0.4") {
		t.Fatalf("instance refresh: got %+v", rs)
	}
}

func TestRegisterMaxContactsKeepsSeveral(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Registrar.MaxContacts = 2
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	p := newPhone(t, ts, "udp")
	for i := 1; i <= 3; i++ {
		wantStatus(t, p.register(t, regOpts{user: "alice", pass: pw, callID: fmt.Sprintf("d%d", i), contact: fmt.Sprintf("<sip:alice@10.0.0.%d>", i)}), 200)
		time.Sleep(5 * time.Millisecond)
	}
	rs := ts.registrations(t, "alice")
	if len(rs) != 2 {
		t.Fatalf("got %d bindings, want 2", len(rs))
	}
	for _, r := range rs {
		if strings.Contains(r.Contact, "10.0.0.1") {
			t.Errorf("the oldest device was kept: %+v", rs)
		}
	}
}

func TestRestartKeepsBindingsAndDeleteRemovesThem(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	ts := startServer(t, cfg)
	c := ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	p := newPhone(t, ts, "udp")
	wantStatus(t, p.register(t, regOpts{user: "alice", pass: pw}), 200)
	wantStatus(t, p.register(t, regOpts{user: "bob", pass: pw}), 200)
	ts.stop()

	ts = startServer(t, cfg)
	if rs := ts.registrations(t, ""); len(rs) != 2 {
		t.Fatalf("after restart: got %+v, want 2 bindings", rs)
	}
	if code := ts.api(t, "DELETE", "/v1/credentials/"+c.ID, nil, nil); code != 204 {
		t.Fatalf("delete credential: status %d", code)
	}
	if rs := ts.registrations(t, "alice"); len(rs) != 0 {
		t.Fatalf("credential deleted but bindings remain: %+v", rs)
	}
	ts.stop()
	ts = startServer(t, cfg)
	rs := ts.registrations(t, "")
	if len(rs) != 1 || rs[0].Username != "bob" {
		t.Fatalf("after second restart: got %+v, want only bob's binding", rs)
	}
}

func TestRegisterBadInput(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	base := "REGISTER sip:sipwarden.test SIP/2.0\n" +
		"Via: SIP/2.0/%s LOCAL;branch=z9hG4bK-%d;rport\n" +
		"Max-Forwards: 70\n%s" +
		"Content-Length: 0\n\n"
	full := map[string]string{
		"To":      "To: <sip:alice@sipwarden.test>\n",
		"From":    "From: <sip:alice@sipwarden.test>;tag=1\n",
		"Call-ID": "Call-ID: bad-input@test\n",
		"CSeq":    "CSeq: 1 REGISTER\n",
	}
	without := func(skip string, extra string) string {
		var b strings.Builder
		for _, k := range []string{"To", "From", "Call-ID", "CSeq"} {
			if k != skip {
				b.WriteString(full[k])
			}
		}
		b.WriteString(extra)
		return b.String()
	}
	cases := []struct {
		name, headers, want string
		start               string // another request line
	}{
		{"no To", without("To", ""), "SIP/2.0 400", ""},
		{"no From", without("From", ""), "SIP/2.0 400", ""},
		{"no Call-ID", without("Call-ID", ""), "SIP/2.0 400", ""},
		{"garbage Authorization", without("", "Authorization: Digest username=\"alice\", realm=\"sipwarden.test\", nonce=\"x\", uri=\"sip:a\", response=\"zz\"\"\"\n"), "SIP/2.0 400 Malformed Authorization Header", ""},
		{"CSeq method mismatch", strings.Replace(without("", ""), "1 REGISTER", "1 INVITE", 1), "SIP/2.0 400 CSeq Method Does Not Match", ""},
		{"no Contact is a query", without("", ""), "SIP/2.0 401", ""},
		// A second To (or From...): sipgo reads the last, RFC 3261 7.3.1
		// allows one.
		{"two To headers", without("", "To: <sip:bob@sipwarden.test>\n"), "SIP/2.0 400 Duplicate To Header", ""},
		{"two CSeq headers", without("", "CSeq: 2 REGISTER\n"), "SIP/2.0 400 Duplicate CSeq Header", ""},
		{"SIP/3.0", without("", ""), "SIP/2.0 505 Version Not Supported", "REGISTER sip:sipwarden.test SIP/3.0"},
		{"lower-case version", without("", ""), "SIP/2.0 401", "REGISTER sip:sipwarden.test sip/2.0"},
		// RFC 3261 10.3 step 1: the Request-URI names our domain.
		{"tel Request-URI", without("", ""), "SIP/2.0 416 Unsupported URI Scheme", "REGISTER tel:+15551234 SIP/2.0"},
		{"foreign Request-URI", without("", ""), "SIP/2.0 404 Domain Not Served Here", "REGISTER sip:evil.example SIP/2.0"},
		{"Request-URI without host", without("", ""), "SIP/2.0 400 Malformed Request-URI", "REGISTER sip: SIP/2.0"},
	}
	for _, tp := range []string{"udp", "tcp"} {
		for i, c := range cases {
			t.Run(tp+"/"+c.name, func(t *testing.T) {
				msg := fmt.Sprintf(base, strings.ToUpper(tp), i, c.headers)
				if c.start != "" {
					msg = strings.Replace(msg, "REGISTER sip:sipwarden.test SIP/2.0", c.start, 1)
				}
				got := rawExchange(t, tp, ts.Addr(tp), msg, 2*time.Second)
				if !strings.HasPrefix(statusLine(got), c.want) {
					t.Fatalf("got %q, want %q", statusLine(got), c.want)
				}
			})
		}
	}
	// A 60 KB header: dropped or refused, and the server keeps serving.
	huge := fmt.Sprintf(base, "TCP", 999, without("", "X-Huge: "+strings.Repeat("a", 60*1024)+"\n"))
	got := rawExchange(t, "tcp", ts.Addr("tcp"), huge, 2*time.Second)
	if got != "" && !strings.HasPrefix(statusLine(got), "SIP/2.0 4") && !strings.HasPrefix(statusLine(got), "SIP/2.0 5") {
		t.Fatalf("60 KB header: got %q, want no answer or an error status", statusLine(got))
	}
	_ = rawExchange(t, "udp", ts.Addr("udp"), huge, 500*time.Millisecond)
	wantStatus(t, newPhone(t, ts, "udp").register(t, regOpts{user: "alice", pass: pw}), 200)
	wantStatus(t, newPhone(t, ts, "tcp").register(t, regOpts{user: "alice", pass: pw}), 200)
}

var _ = sip.REGISTER

// TestRegisterModes: by default REGISTERs over UDP, TCP and TLS are
// answered by the stateless front (no sipgo transaction); "stateful" hands
// them to sipgo. Both register a real client over every transport, and a
// registered TCP phone can still be called over its connection.
func TestRegisterModes(t *testing.T) {
	for _, mode := range []string{"stateless", "stateful"} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Registrar.UDPMode, cfg.Registrar.StreamMode = mode, mode
			ts := startServer(t, cfg)
			ts.createCredential(t, "alice", "alice-secret-pw-1", nil)
			var want uint64
			for _, tp := range []string{"udp", "tcp", "tls"} {
				ph := newPhone(t, ts, tp)
				wantStatus(t, ph.register(t, regOpts{user: "alice", pass: "alice-secret-pw-1"}), 200)
				want += 2
				switch {
				case mode == "stateless" && ts.StatelessHandled() != want:
					t.Fatalf("stateless mode, %s: the 401 and the 200 did not come from the stateless front", tp)
				case mode == "stateful" && ts.StatelessHandled() != 0:
					t.Fatal("stateful mode answered through the stateless front")
				}
				regs := ts.registrations(t, "alice")
				if len(regs) != 1 {
					t.Fatalf("%s: %d bindings, want 1", tp, len(regs))
				}
			}
		})
	}
}

// TestStatelessRetransmission: a retransmitted REGISTER (same branch) is
// processed again and answered again, not swallowed.
func TestStatelessRetransmission(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	msg := "REGISTER sip:sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-retr;rport\nMax-Forwards: 70\n" +
		"To: <sip:alice@sipwarden.test>\nFrom: <sip:alice@sipwarden.test>;tag=r1\nCall-ID: retr1\nCSeq: 1 REGISTER\n" +
		"Contact: <sip:alice@LOCAL>\nContent-Length: 0\n\n"
	for i := range 2 {
		if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), msg, 2*time.Second)); got != "SIP/2.0 401 Unauthorized" {
			t.Fatalf("attempt %d: %q, want 401", i+1, got)
		}
	}
}

// TestRecycledRequestsNotKept: the stateless front reuses a REGISTER's
// memory for the next one once it is answered (sipparse.Parser.Recycle
// clears it at once). Whatever the server keeps of a REGISTER (the
// binding's contact, Call-ID, User-Agent, source) must be its own copy:
// devices registering in turn over UDP and TCP, through the same
// workers, each keep their own, and refreshes and replays are judged by
// what was kept.
func TestRecycledRequestsNotKept(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	users := []string{"rc-a", "rc-b", "rc-c", "rc-d"}
	for _, u := range users {
		ts.createCredential(t, u, pw, nil)
	}
	phones := map[string]*phone{"udp": newPhone(t, ts, "udp"), "tcp": newPhone(t, ts, "tcp")}
	for round := 1; round <= 3; round++ {
		for i, u := range users {
			tr := []string{"udp", "tcp"}[i%2]
			contact := fmt.Sprintf("<sip:%s@10.9.%d.%d:5060;transport=%s>", u, round, i, tr)
			res := phones[tr].register(t, regOpts{user: u, pass: pw, callID: "call-" + u, cseq: uint32(round), contact: contact})
			wantStatus(t, res, 200)
		}
	}
	for i, u := range users {
		rs := ts.registrations(t, u)
		tr := []string{"udp", "tcp"}[i%2]
		if len(rs) != 1 || rs[0].Username != u || rs[0].Transport != tr ||
			rs[0].Contact != fmt.Sprintf("sip:%s@10.9.3.%d:5060;transport=%s", u, i, tr) || !strings.HasPrefix(rs[0].Source, "127.0.0.1:") {
			t.Errorf("%s: got %+v, want one %s binding with its round-3 contact", u, rs, tr)
		}
	}
	// The kept Call-ID and CSeq still order the next REGISTER of the
	// same device: an older CSeq is refused (RFC 3261 10.3 step 7).
	res := phones["udp"].register(t, regOpts{user: "rc-a", pass: pw, callID: "call-rc-a", cseq: 2, contact: "<sip:rc-a@10.9.9.9:5060>"})
	if res.StatusCode == 200 {
		t.Errorf("an older CSeq of the same Call-ID after recycling: got 200, want a refusal")
	}
}

// TestRestoredStreamBindingReachedAtContact: a device registered over TCP
// whose connection is gone after a restart (its binding restored from
// the store) is reached at its Contact's address, where it listens: the
// proxy dialled the old source port, where nothing listens, and the
// caller got 480 until the device registered again (up to an hour).
func TestRestoredStreamBindingReachedAtContact(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", pw, nil)
	ts.createCredential(t, "bob", pw, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // bob's phone listens here
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })

	dev := newRawUA(t, "tcp", "127.0.0.1", ts.Addr("tcp"))
	contact := func(m string) string {
		return strings.Replace(m, "<sip:bob@"+dev.local+";transport=tcp>", "<sip:bob@"+ln.Addr().String()+";transport=tcp>", 1)
	}
	callID := randHex(8)
	st, raw := dev.exchange(contact(dev.registerMsg("bob", callID, 1, "", "")), 2*time.Second)
	m := nonceRE.FindStringSubmatch(raw)
	if !strings.HasPrefix(st, "SIP/2.0 401") || m == nil {
		t.Fatalf("REGISTER: %q", st)
	}
	if st, _ := dev.exchange(contact(dev.registerMsg("bob", callID, 2, digestAuth("bob", pw, m[1]), "")), 2*time.Second); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER: %q", st)
	}
	ts.stop()
	_ = dev.conn.Close()

	ts = startServer(t, cfg)
	if rs := ts.registrations(t, "bob"); len(rs) != 1 || rs[0].Transport != "tcp" {
		t.Fatalf("after restart: %+v, want bob's tcp binding", rs)
	}
	caller := newRawUA(t, "udp", "127.0.0.1", ts.Addr("udp"))
	done := make(chan string, 1)
	go func() { done <- caller.invite("alice", pw) }()

	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("no connection to bob's contact: %v (the caller got %q)", err, <-done)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INVITE sip:bob@") {
		t.Fatalf("bob's contact read %q, %v; want the INVITE", line, err)
	}
	<-done
}
