package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/digest"
)

// device is a softphone made of sipgo's own dialog code (an implementation
// independent of ours): it registers, calls, answers, rings or is busy.
type device struct {
	t      *testing.T
	user   string
	tp     string
	listen string // a fixed UDP address it listens on (gateways only)
	ph     *phone
	uas    *sipgo.DialogServerCache
	uac    *sipgo.DialogClientCache
	mode   atomic.Value // "answer", "busy" or "ring"

	invites chan *sip.Request
	byes    chan *sip.Request
	acks    chan *sip.Request
	cancels chan *sip.Request

	mu      sync.Mutex
	callees []*sipgo.DialogServerSession
}

const testSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

// newDevice starts a device on transport tp. On UDP it listens on bindIP
// (127.0.0.1 when empty; "ip:port" for a fixed port) and sends from that
// socket.
func newDevice(t *testing.T, ts *testServer, tp, user, bindIP string) *device {
	t.Helper()
	if bindIP == "" {
		bindIP = "127.0.0.1"
	}
	bindPort := 0
	if h, p, err := net.SplitHostPort(bindIP); err == nil {
		bindIP = h
		bindPort, _ = strconv.Atoi(p)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ua.Close() })
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, user: user, tp: tp,
		invites: make(chan *sip.Request, 16), byes: make(chan *sip.Request, 16),
		acks: make(chan *sip.Request, 16), cancels: make(chan *sip.Request, 16)}
	d.mode.Store("answer")
	opts := []sipgo.ClientOption{sipgo.WithClientHostname(bindIP)}
	contact := sip.Uri{Scheme: "sip", User: user, Host: bindIP, Port: 5999}
	var serveUDP *net.UDPConn // served once the handlers are in place
	switch {
	case tp == "udp" && bindPort != 0:
		// A fixed address (a gateway): listen there.
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(bindIP), Port: bindPort})
		if err != nil {
			t.Fatalf("listen udp %s: %v", bindIP, err)
		}
		serveUDP = conn
		d.listen = conn.LocalAddr().String()
		contact.Port = bindPort
	case tp == "udp":
		// A phone: its first request opens an ephemeral socket on bindIP,
		// which it keeps; the server reaches it there (its flow).
		opts = append(opts, sipgo.WithClientConnectionAddr(net.JoinHostPort(bindIP, "0")))
	default:
		contact.UriParams = sip.NewParams()
		contact.UriParams.Add("transport", tp)
	}
	cli, err := sipgo.NewClient(ua, opts...)
	if err != nil {
		t.Fatal(err)
	}
	d.ph = &phone{cli: cli, transport: tp, server: ts.Addr(tp)}
	ch := sip.ContactHeader{Address: contact}
	d.uas = sipgo.NewDialogServerCache(cli, ch)
	d.uac = sipgo.NewDialogClientCache(cli, ch)
	srv.OnInvite(d.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		d.acks <- req
		_ = d.uas.ReadAck(req, tx)
	})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		d.byes <- req
		if d.uas.ReadBye(req, tx) == nil {
			return
		}
		if d.uac.ReadBye(req, tx) == nil {
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	if serveUDP != nil {
		go func() { _ = srv.ServeUDP(serveUDP) }()
	}
	return d
}

func (d *device) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	d.invites <- req
	dlg, err := d.uas.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 500, err.Error(), nil))
		return
	}
	d.mu.Lock()
	d.callees = append(d.callees, dlg)
	d.mu.Unlock()
	switch d.mode.Load() {
	case "busy":
		_ = dlg.Respond(486, "Busy Here", nil)
	case "unavailable":
		_ = dlg.Respond(503, "Service Unavailable", nil)
	case "challenge":
		// A carrier gateway that authenticates us (gatewayUser,
		// gatewayPass): 401 without credentials or with wrong ones.
		if !gatewayAuthorized(req) {
			_ = dlg.Respond(401, "Unauthorized", nil, sip.NewHeader("WWW-Authenticate",
				`Digest realm="carrier.test", nonce="gw-nonce-1", qop="auth", algorithm=MD5`))
			break
		}
		_ = dlg.Respond(180, "Ringing", nil)
		time.Sleep(50 * time.Millisecond)
		_ = dlg.RespondSDP([]byte(testSDP))
	case "ring":
		tx.OnCancel(func(r *sip.Request) { d.cancels <- r })
		_ = dlg.Respond(180, "Ringing", nil)
	case "trying":
		// 100 Trying every 300 ms, never ringing (at most 40 s).
		tx.OnCancel(func(r *sip.Request) { d.cancels <- r })
		for range 133 {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
			select {
			case <-tx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	case "storm":
		// Provisional responses until the caller's CANCEL ends the
		// transaction: every one crosses the CANCEL in the proxy.
		for i := 0; i < 200; i++ {
			select {
			case <-tx.Done():
				return
			default:
			}
			_ = dlg.Respond(180, "Ringing", nil)
		}
	default:
		_ = dlg.Respond(180, "Ringing", nil)
		// sipgo hands each received response to its transaction on its own
		// goroutine: a 200 right behind the 180 may overtake it. A person
		// answering takes longer than this.
		time.Sleep(50 * time.Millisecond)
		_ = dlg.RespondSDP([]byte(testSDP))
	}
	select {
	case <-tx.Done():
	case <-time.After(10 * time.Second):
	}
}

// The credentials a "challenge" device expects.
const (
	gatewayUser = "acct-1234"
	gatewayPass = "gw-secret-9876"
)

// gatewayAuthorized verifies an INVITE's Authorization with our digest
// package (the proxy answers with icholy/digest: two implementations).
func gatewayAuthorized(req *sip.Request) bool {
	h := req.GetHeader("Authorization")
	if h == nil {
		return false
	}
	c, err := digest.ParseCredentials(h.Value())
	if err != nil || c.Username != gatewayUser || c.Realm != "carrier.test" || c.Nonce != "gw-nonce-1" {
		return false
	}
	return digest.Verify(c, digest.MD5, "INVITE", digest.HA1(digest.MD5, gatewayUser, "carrier.test", gatewayPass), nil)
}

// register registers the device's AOR with its own contact.
func (d *device) register(t *testing.T, pass string, contact string) {
	t.Helper()
	o := regOpts{user: d.user, pass: pass, contact: contact}
	wantStatus(t, d.ph.register(t, o), 200)
}

// call sends an INVITE for target through the server and waits for the
// answer; statuses collects every response the caller saw.
func (d *device) call(ctx context.Context, t *testing.T, target, fromUser, pass string) (*sipgo.DialogClientSession, []int, error) {
	t.Helper()
	return d.callAs(ctx, t, target, fromUser, fromUser, pass)
}

// callAs is call with digest username authUser, which need not be the
// From user (a PBX on a trunk presents its caller's number).
func (d *device) callAs(ctx context.Context, t *testing.T, target, fromUser, authUser, pass string) (*sipgo.DialogClientSession, []int, error) {
	t.Helper()
	return d.callWatching(ctx, t, target, fromUser, authUser, pass, nil)
}

// callWatching is callAs with watch seeing each response as it arrives.
func (d *device) callWatching(ctx context.Context, t *testing.T, target, fromUser, authUser, pass string, watch func(*sip.Response)) (*sipgo.DialogClientSession, []int, error) {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(d.ph.server)
	port, _ := strconv.Atoi(portStr)
	ru := sip.Uri{Scheme: "sip", User: target, Host: host, Port: port}
	if d.tp != "udp" {
		ru.UriParams = sip.NewParams()
		ru.UriParams.Add("transport", d.tp)
	}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: fromUser, Host: "sipwarden.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	sess, err := d.uac.Invite(ctx, ru, []byte(testSDP), from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	var statuses []int
	err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{Username: authUser, Password: pass, OnResponse: func(res *sip.Response) error {
		mu.Lock()
		statuses = append(statuses, res.StatusCode)
		mu.Unlock()
		if watch != nil {
			watch(res)
		}
		return nil
	}})
	mu.Lock()
	defer mu.Unlock()
	return sess, append([]int(nil), statuses...), err
}

func recv(t *testing.T, ch chan *sip.Request, what string) *sip.Request {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		return nil
	}
}

func none(t *testing.T, ch chan *sip.Request, what string, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("unexpected %s: %s", what, r.StartLine())
	case <-time.After(d):
	}
}

func dialogStatus(err error) int {
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		return de.Res.StatusCode
	}
	return 0
}

const (
	alicePass = "alice-secret-pw-1"
	bobPass   = "bob-secret-pw-22"
)

type callCredentials struct{ alice, bob credential }

// callPair starts a server with cfg and credentials for alice and bob,
// registers a bob device on calleeTp answering in mode ("answer", "busy",
// "ring") and returns a caller device for alice on callerTp, with a
// context that bounds the test's SIP exchanges.
func callPair(t *testing.T, cfg config.Config, callerTp, calleeTp, mode string) (*testServer, callCredentials, *device, *device, context.Context) {
	t.Helper()
	ts := startServer(t, cfg)
	creds := callSetup(t, ts)
	bob := newDevice(t, ts, calleeTp, "bob", "")
	bob.mode.Store(mode)
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, callerTp, "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ts, creds, alice, bob, ctx
}

func callSetup(t *testing.T, ts *testServer) callCredentials {
	return callCredentials{
		alice: ts.createCredential(t, "alice", alicePass, nil),
		bob:   ts.createCredential(t, "bob", bobPass, nil),
	}
}

func (ts *testServer) calls(t *testing.T) []map[string]any {
	t.Helper()
	var cs []map[string]any
	if code := ts.api(t, "GET", "/v1/calls", nil, &cs); code != 200 {
		t.Fatalf("GET /v1/calls: %d", code)
	}
	return cs
}

func TestCallThroughProxy(t *testing.T) {
	for _, tc := range []struct{ caller, callee string }{{"udp", "udp"}, {"tcp", "udp"}, {"udp", "tcp"}, {"tls", "tls"}} {
		t.Run(tc.caller+"-to-"+tc.callee, func(t *testing.T) {
			ts, _, alice, bob, ctx := callPair(t, testConfig(t, t.TempDir()), tc.caller, tc.callee, "answer")
			sess, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
			if err != nil {
				t.Fatalf("call: %v (statuses %v)", err, statuses)
			}
			inv := recv(t, bob.invites, "INVITE at bob")
			if inv.GetHeader("Proxy-Authorization") != nil {
				t.Error("Proxy-Authorization was forwarded to the callee")
			}
			rrs := inv.GetHeaders("Record-Route")
			wantRR := 1
			if tc.caller != tc.callee {
				wantRR = 2 // RFC 5658 double Record-Route on a transport change
			}
			if len(rrs) != wantRR {
				t.Errorf("callee saw %d Record-Route headers, want %d: %v", len(rrs), wantRR, rrs)
			}
			if mf := inv.MaxForwards(); mf == nil || mf.Val() != 69 {
				t.Errorf("Max-Forwards at callee = %v, want 69", mf)
			}
			if !containsAll(statuses, 180, 200) {
				t.Errorf("caller saw %v, want 180 and 200", statuses)
			}
			if err := sess.Ack(ctx); err != nil {
				t.Fatalf("ACK: %v", err)
			}
			recv(t, bob.acks, "ACK at bob")
			if cs := ts.calls(t); len(cs) != 1 || cs[0]["caller_credential_id"] == nil {
				t.Errorf("GET /v1/calls = %v, want the call with its caller credential", cs)
			}
			if err := sess.Bye(ctx); err != nil {
				t.Fatalf("BYE: %v", err)
			}
			bye := recv(t, bob.byes, "BYE at bob")
			if bye.GetHeader("Proxy-Authorization") != nil {
				t.Error("in-dialog BYE carried credentials")
			}
			waitFor(t, "the call to leave /v1/calls", 3*time.Second, func() bool { return len(ts.calls(t)) == 0 })
		})
	}
}

func containsAll(xs []int, want ...int) bool {
	for _, w := range want {
		found := false
		for _, x := range xs {
			if x == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestCalleeHangsUp(t *testing.T) {
	_, _, alice, bob, ctx := callPair(t, testConfig(t, t.TempDir()), "tcp", "udp", "answer")
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	_ = sess.Ack(ctx)
	recv(t, bob.invites, "INVITE at bob")
	recv(t, bob.acks, "ACK at bob")
	bob.mu.Lock()
	dlg := bob.callees[0]
	bob.mu.Unlock()
	// The callee's BYE follows the route set (our two Record-Routes) back
	// to the caller's TCP connection.
	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	recv(t, alice.byes, "BYE at alice")
}

func TestCancelBeforeAnswer(t *testing.T) {
	ts, _, alice, bob, testCtx := callPair(t, testConfig(t, t.TempDir()), "udp", "udp", "ring")
	ctx, cancel := context.WithCancel(testCtx)
	defer cancel()
	go func() {
		select {
		case <-bob.invites:
			time.Sleep(300 * time.Millisecond) // let the 180 reach the caller
			cancel()
		case <-time.After(5 * time.Second):
			cancel()
		}
	}()
	sess, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err == nil {
		t.Fatal("the cancelled call was answered")
	}
	recv(t, bob.cancels, "CANCEL at bob")
	if sess == nil || sess.InviteResponse == nil || sess.InviteResponse.StatusCode != 487 {
		var got any = "no response"
		if sess != nil && sess.InviteResponse != nil {
			got = sess.InviteResponse.StatusCode
		}
		t.Errorf("caller's final response %v, want 487", got)
	}
	if !containsAll(statuses, 180) {
		t.Errorf("caller saw %v, want 180 before the CANCEL", statuses)
	}
	if len(ts.calls(t)) != 0 {
		t.Error("a cancelled call is listed")
	}
}

func TestCalleeBusy(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			_, _, alice, bob, ctx := callPair(t, testConfig(t, t.TempDir()), tp, "udp", "busy")
			_, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
			if got := dialogStatus(err); got != 486 {
				t.Fatalf("caller got %v (statuses %v), want 486", err, statuses)
			}
			recv(t, bob.invites, "INVITE at bob")
			// The caller's ACK of the 486 ends at the proxy; the callee got
			// the proxy's own ACK, absorbed by its transaction.
			none(t, bob.acks, "ACK reaching the callee's handler", 300*time.Millisecond)
		})
	}
}

func TestCalleeBehindNAT(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	callSetup(t, ts)
	bob := newDevice(t, ts, "udp", "bob", "")
	// The Contact names a private address nobody can reach: the proxy must
	// use the flow the REGISTER came from.
	bob.register(t, bobPass, "<sip:bob@10.255.255.1:5060>")
	alice := newDevice(t, ts, "udp", "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	inv := recv(t, bob.invites, "INVITE at bob")
	if inv.Recipient.Host != "10.255.255.1" {
		t.Errorf("Request-URI %s, want the registered Contact", inv.Recipient.String())
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")
}

func TestCallRefusals(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	callSetup(t, ts)
	ts.createCredential(t, "carol", "carol-secret-pw-3", nil) // never registers
	alice := newDevice(t, ts, "udp", "alice", "")
	for _, tc := range []struct {
		name, target, from, pass string
		want                     int
	}{
		{"unregistered callee", "carol", "alice", alicePass, 480},
		{"unknown user", "nobody", "alice", alicePass, 404},
		{"wrong password", "carol", "alice", "not-the-password", 403},
		{"unknown caller", "carol", "mallory", "whatever-password", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, statuses, err := alice.call(ctx, t, tc.target, tc.from, tc.pass)
			if got := dialogStatus(err); got != tc.want {
				t.Fatalf("got %v (statuses %v), want %d", err, statuses, tc.want)
			}
			if !containsAll(statuses, 407) {
				t.Errorf("statuses %v: the first INVITE was not challenged with 407", statuses)
			}
		})
	}
}

// TestFromMustMatchCredential: authenticated as alice, calling as bob.
func TestFromMustMatchCredential(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	callSetup(t, ts)
	alice := newDevice(t, ts, "udp", "alice", "")
	msg := "INVITE sip:bob@sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-from1;rport\n" +
		"Max-Forwards: 70\nTo: <sip:bob@sipwarden.test>\nFrom: <sip:bob@sipwarden.test>;tag=1\nCall-ID: from-mismatch\n" +
		"CSeq: 1 INVITE\nContact: <sip:alice@LOCAL>\nContent-Length: 0\n\n"
	res := rawExchange(t, "udp", ts.Addr("udp"), msg, 2*time.Second)
	if !strings.HasPrefix(statusLine(res), "SIP/2.0 407") {
		t.Fatalf("first INVITE: %q, want 407", statusLine(res))
	}
	nonce := between(res, `nonce="`, `"`)
	authz := digestAnswer("alice", alicePass, nonce, "INVITE", "sip:bob@sipwarden.test")
	msg2 := strings.Replace(msg, "CSeq: 1", "Proxy-Authorization: "+authz+"\nCSeq: 2", 1)
	msg2 = strings.Replace(msg2, "branch=z9hG4bK-from1", "branch=z9hG4bK-from2", 1)
	res = rawExchange(t, "udp", ts.Addr("udp"), msg2, 2*time.Second)
	if got := statusLine(res); got != "SIP/2.0 403 From User Does Not Match Credential" {
		t.Fatalf("INVITE as bob with alice's credentials: %q", got)
	}
	// Alice, but in another domain: she would show the callee another
	// domain's alice (it was forwarded as it was).
	for i, host := range []string{"anybank.example", "sipwarden.test"} {
		m := strings.NewReplacer("From: <sip:bob@sipwarden.test>", "From: <sip:alice@"+host+">",
			"branch=z9hG4bK-from1", fmt.Sprintf("branch=z9hG4bK-dom%d", i), "Call-ID: from-mismatch", fmt.Sprintf("Call-ID: from-domain-%d", i)).Replace(msg)
		res = rawExchange(t, "udp", ts.Addr("udp"), m, 2*time.Second)
		nonce = between(res, `nonce="`, `"`)
		m = strings.Replace(m, "CSeq: 1", "Proxy-Authorization: "+digestAnswer("alice", alicePass, nonce, "INVITE", "sip:bob@sipwarden.test")+"\nCSeq: 2", 1)
		m = strings.Replace(m, fmt.Sprintf("branch=z9hG4bK-dom%d", i), fmt.Sprintf("branch=z9hG4bK-dom%d-2", i), 1)
		got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), m, 2*time.Second))
		want := "SIP/2.0 403 From Domain Not Served Here"
		if host == "sipwarden.test" {
			want = "SIP/2.0 480 Temporarily Unavailable" // bob has not registered: past the check
		}
		if got != want {
			t.Errorf("INVITE from alice@%s: %q, want %q", host, got, want)
		}
	}
	_ = alice
}

func TestMaxForwardsAndBadRequests(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	base := "INVITE sip:bob@sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-mf%d;rport\n" +
		"Max-Forwards: %d\nTo: <sip:bob@sipwarden.test>\nFrom: <sip:alice@sipwarden.test>;tag=1\nCall-ID: mf%d\n" +
		"CSeq: 1 INVITE\nContent-Length: 0\n\n"
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), fmt.Sprintf(base, 1, 0, 1), 2*time.Second)); got != "SIP/2.0 483 Too Many Hops" {
		t.Errorf("Max-Forwards 0: %q", got)
	}
	noTo := strings.Replace(fmt.Sprintf(base, 2, 70, 2), "To: <sip:bob@sipwarden.test>\n", "", 1)
	if got := statusLine(rawExchange(t, "tcp", ts.Addr("tcp"), noTo, 2*time.Second)); got != "SIP/2.0 400 Missing To Header" {
		t.Errorf("INVITE without To: %q", got)
	}
	// A second From (the first one a caller ID of someone else's) is
	// malformed: sipgo's From() gives the last, the callee would read the
	// first. Also before authentication: the stateless 407 leaves it to
	// the proxy.
	twoFroms := strings.Replace(fmt.Sprintf(base, 5, 70, 5), "From:", "From: \"CEO\" <sip:carol@sipwarden.test>;tag=c\nFrom:", 1)
	for _, tp := range []string{"udp", "tcp"} {
		if got := statusLine(rawExchange(t, tp, ts.Addr(tp), twoFroms, 2*time.Second)); got != "SIP/2.0 400 Duplicate From Header" {
			t.Errorf("INVITE with two From headers over %s: %q", tp, got)
		}
	}
	v3 := strings.Replace(fmt.Sprintf(base, 6, 70, 6), "SIP/2.0\nVia", "SIP/3.0\nVia", 1)
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), v3, 2*time.Second)); got != "SIP/2.0 505 Version Not Supported" {
		t.Errorf("INVITE SIP/3.0: %q", got)
	}
	preloaded := strings.Replace(fmt.Sprintf(base, 3, 70, 3), "CSeq:", "Route: <sip:198.51.100.1;lr>\nCSeq:", 1)
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), preloaded, 2*time.Second)); got != "SIP/2.0 403 Preloaded Route Denied" {
		t.Errorf("preloaded Route: %q", got)
	}
	inDialog := strings.Replace(fmt.Sprintf(base, 4, 70, 4), "To: <sip:bob@sipwarden.test>", "To: <sip:bob@sipwarden.test>;tag=zz", 1)
	inDialog = strings.Replace(inDialog, "INVITE", "BYE", -1)
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), inDialog, 2*time.Second)); got != "SIP/2.0 481 Call/Transaction Does Not Exist" {
		t.Errorf("BYE for an unknown dialog: %q", got)
	}
	opts := "OPTIONS sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-opt;rport\nMax-Forwards: 70\n" +
		"To: <sip:127.0.0.1>\nFrom: <sip:ping@127.0.0.1>;tag=1\nCall-ID: opt1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
	if got := statusLine(rawExchange(t, "udp", ts.Addr("udp"), opts, 2*time.Second)); got != "SIP/2.0 200 OK" {
		t.Errorf("OPTIONS keepalive to the server: %q", got)
	}
}

func TestTrustedPeerIsNotChallenged(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.TrustedPeers = []string{"127.0.0.2/32"}
	ts := startServer(t, cfg)
	callSetup(t, ts)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	gw := newDevice(t, ts, "udp", "carrier", "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, statuses, err := gw.call(ctx, t, "bob", "carrier", "")
	if err != nil {
		t.Fatalf("call from the trusted peer: %v (statuses %v)", err, statuses)
	}
	if containsAll(statuses, 407) {
		t.Errorf("trusted peer was challenged: %v", statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")

	// The same peer from an untrusted address is challenged.
	other := newDevice(t, ts, "udp", "carrier", "127.0.0.3")
	_, statuses, err = other.call(ctx, t, "bob", "carrier", "")
	if dialogStatus(err) != 407 && !containsAll(statuses, 407) {
		t.Errorf("untrusted peer: %v %v, want 407", err, statuses)
	}
}

func TestOutboundRoute(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	// The gateway: a device listening on its own UDP socket.
	gwConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	gwAddr := gwConn.LocalAddr().String()
	_ = gwConn.Close()
	// Routes are config: start the server with the gateway's address.
	cfg.Proxy.Routes = []config.ProxyRoute{{Name: "pstn", Prefix: "9", Gateway: "sip:" + gwAddr}}
	ts := startServer(t, cfg)
	callSetup(t, ts)
	gw := newDevice(t, ts, "udp", "gateway", gwAddr)
	alice := newDevice(t, ts, "udp", "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, statuses, err := alice.call(ctx, t, "9123456", "alice", alicePass)
	if err != nil {
		t.Fatalf("call to the gateway: %v (statuses %v)", err, statuses)
	}
	inv := recv(t, gw.invites, "INVITE at the gateway")
	if inv.Recipient.User != "9123456" {
		t.Errorf("gateway Request-URI %s", inv.Recipient.String())
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, gw.byes, "BYE at the gateway")
}

func TestInFlightCap(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.MaxInFlight = 1
	ts := startServer(t, cfg)
	callSetup(t, ts)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.mode.Store("ring")
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{})
	go func() { defer close(first); _, _, _ = alice.call(ctx, t, "bob", "alice", alicePass) }()
	// The first call uses t: it must end before the test does.
	defer func() { cancel(); <-first }()
	recv(t, bob.invites, "INVITE at bob")
	alice2 := newDevice(t, ts, "udp", "alice", "")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	_, statuses, err := alice2.call(ctx2, t, "bob", "alice", alicePass)
	if got := dialogStatus(err); got != 503 {
		t.Fatalf("second call while one rings with max_in_flight 1: %v %v, want 503", err, statuses)
	}
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) && de.Res.GetHeader("Retry-After") == nil {
		t.Error("503 without Retry-After")
	}
}

// TestCancelCrossingProvisionals: a CANCEL arriving while the proxy relays
// a 180 must end the call. sipgo fires OnCancel with the transaction's lock
// held; cancelling inline deadlocked against a relay holding the call's lock
// (seen in CI as a call that never ended and a node that never closed).
func TestCancelCrossingProvisionals(t *testing.T) {
	ts, _, alice, bob, _ := callPair(t, testConfig(t, t.TempDir()), "udp", "udp", "storm")
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		first := make(chan struct{})
		var once sync.Once
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = alice.callWatching(ctx, t, "bob", "alice", "alice", alicePass, func(res *sip.Response) {
				if res.StatusCode == 180 {
					once.Do(func() { close(first) })
				}
			})
		}()
		select {
		case <-first:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
			t.Fatalf("call %d: no 180", i)
		}
		cancel() // sipgo sends the CANCEL
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d: the caller's CANCEL got no answer within 10 s", i)
		}
		<-bob.invites
		waitFor(t, fmt.Sprintf("call %d ended", i), 5*time.Second, func() bool { return len(ts.calls(t)) == 0 })
	}
}

func TestCredentialDeletionEndsCall(t *testing.T) {
	ts, creds, alice, bob, ctx := callPair(t, testConfig(t, t.TempDir()), "tcp", "udp", "answer")
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	_ = sess.Ack(ctx)
	recv(t, bob.acks, "ACK at bob")
	if n := len(ts.calls(t)); n != 1 {
		t.Fatalf("%d calls listed, want 1", n)
	}
	if code := ts.api(t, "DELETE", "/v1/credentials/"+creds.bob.ID, nil, nil); code != 204 {
		t.Fatalf("delete credential: %d", code)
	}
	// Both sides get a BYE from the proxy.
	b1 := recv(t, bob.byes, "BYE at bob")
	b2 := recv(t, alice.byes, "BYE at alice")
	for _, b := range []*sip.Request{b1, b2} {
		if r := b.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "403") {
			t.Errorf("BYE without the revocation Reason: %v", r)
		}
	}
	waitFor(t, "no calls listed", 3*time.Second, func() bool { return len(ts.calls(t)) == 0 })
	if rs := ts.registrations(t, "bob"); len(rs) != 0 {
		t.Errorf("bob still has %d registrations", len(rs))
	}
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}

// digestAnswer is an MD5 qop=auth Proxy-Authorization value for a raw test.
func digestAnswer(user, pass, nonce, method, uri string) string {
	c := digest.Credentials{Username: user, Realm: "sipwarden.test", Nonce: nonce, URI: uri,
		QOP: "auth", CNonce: "abcdef", NC: "00000001", NonceCount: 1, Algorithm: "MD5"}
	resp := digest.Response(c, digest.MD5, method, digest.HA1(digest.MD5, user, "sipwarden.test", pass), nil)
	return fmt.Sprintf(`Digest username="%s", realm="sipwarden.test", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="abcdef"`,
		user, nonce, uri, resp)
}

// TestACKOfOwnErrorAbsorbedOverTCP: over TCP the ACK of our 407 reaches the
// handler (no UDP transaction to absorb it); it must get no answer.
func TestACKOfOwnErrorAbsorbedOverTCP(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	c, err := net.DialTimeout("tcp", ts.Addr("tcp"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	inv := "INVITE sip:bob@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/TCP " + local + ";branch=z9hG4bK-ackabs\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:bob@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=a1\r\nCall-ID: ackabs\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:alice@" + local + ";transport=tcp>\r\nContent-Length: 0\r\n\r\n"
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(inv)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer to the INVITE: %v", err)
	}
	res := string(buf[:n])
	if !strings.HasPrefix(res, "SIP/2.0 407") {
		t.Fatalf("INVITE: %q, want 407", statusLine(res))
	}
	toTag := between(res, "To: <sip:bob@sipwarden.test>;tag=", "\r\n")
	ack := "ACK sip:bob@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/TCP " + local + ";branch=z9hG4bK-ackabs\r\n" +
		"Max-Forwards: 70\r\nTo: <sip:bob@sipwarden.test>;tag=" + toTag + "\r\nFrom: <sip:alice@sipwarden.test>;tag=a1\r\nCall-ID: ackabs\r\n" +
		"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(ack)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("the ACK was answered: %q", statusLine(string(buf[:n])))
	}
}

// TestLastRegisteredDeviceRings: with max_contacts 1, a second device
// replaces the first, and only it rings.
func TestLastRegisteredDeviceRings(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	callSetup(t, ts)
	old := newDevice(t, ts, "udp", "bob", "")
	old.register(t, bobPass, "")
	newer := newDevice(t, ts, "tcp", "bob", "")
	newer.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	recv(t, newer.invites, "INVITE at the newest device")
	none(t, old.invites, "INVITE at the replaced device", 200*time.Millisecond)
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
}

// TestForkToEveryBinding: with max_contacts 2 both devices ring (RFC 3261
// 16.7 parallel forking); the first to answer wins and the other is
// cancelled.
func TestForkToEveryBinding(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Registrar.MaxContacts = 2
	ts := startServer(t, cfg)
	callSetup(t, ts)
	desk := newDevice(t, ts, "udp", "bob", "")
	desk.mode.Store("ring")
	desk.register(t, bobPass, "")
	mobile := newDevice(t, ts, "tcp", "bob", "")
	mobile.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	recv(t, desk.invites, "INVITE at the desk phone")
	recv(t, mobile.invites, "INVITE at the mobile")
	recv(t, desk.cancels, "CANCEL at the desk phone once the mobile answered")
	_ = sess.Ack(ctx)
	recv(t, mobile.acks, "ACK at the mobile")
	_ = sess.Bye(ctx)
	recv(t, mobile.byes, "BYE at the mobile")
}

// TestTimerC: a callee that rings longer than timer_c is cancelled and the
// caller gets 408.
func TestTimerC(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.TimerC = config.Duration(time.Second)
	_, _, alice, bob, ctx := callPair(t, cfg, "udp", "udp", "ring")
	start := time.Now()
	_, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if got := dialogStatus(err); got != 408 {
		t.Fatalf("caller got %v (statuses %v), want 408", err, statuses)
	}
	recv(t, bob.cancels, "CANCEL at bob")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("408 after %v with a 1 s Timer C", d)
	}
	// A 100 does not restart Timer C (RFC 3261 16.7 step 2: 101 to 199
	// do); a callee sending 100 every 300 ms rang until Timer B's 32 s.
	bob.mode.Store("trying")
	start = time.Now()
	_, statuses, err = alice.call(ctx, t, "bob", "alice", alicePass)
	if got := dialogStatus(err); got != 408 {
		t.Fatalf("caller of a callee sending 100s got %v (statuses %v), want 408", err, statuses)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("408 after %v with a 1 s Timer C and 100s only", d)
	}
}

// TestMetricsAfterCall scrapes /metrics after a call and a refused call and
// checks the proxy's counters exactly.
func TestMetricsAfterCall(t *testing.T) {
	ts, _, alice, bob, ctx := callPair(t, testConfig(t, t.TempDir()), "udp", "udp", "answer")
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	recv(t, bob.invites, "INVITE at bob")
	if got := ts.scrapeSettled(t)[`sipwarden_proxy_dialogs_active`]; got != 1 {
		t.Errorf("dialogs_active during the call = %v, want 1", got)
	}
	_ = sess.Ack(ctx)
	recv(t, bob.acks, "ACK at bob")
	if err := sess.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	recv(t, bob.byes, "BYE at bob")
	// A call to a user that does not exist.
	if _, _, err := alice.call(ctx, t, "nobody", "alice", alicePass); dialogStatus(err) != 404 {
		t.Fatalf("call to nobody: %v", err)
	}
	waitFor(t, "the call to end", 3*time.Second, func() bool { return len(ts.calls(t)) == 0 })
	wantSamples(t, ts.scrapeSettled(t), map[string]float64{
		`sipwarden_proxy_calls_attempted_total`:                                 1,
		`sipwarden_proxy_calls_answered_total`:                                  1,
		`sipwarden_proxy_forwarded_requests_total{method="INVITE"}`:             1,
		`sipwarden_proxy_forwarded_requests_total{method="BYE"}`:                1,
		`sipwarden_proxy_dialogs_active`:                                        0,
		`sipwarden_sip_requests_total{method="INVITE",transport="udp"}`:         4,
		`sipwarden_sip_responses_total{class="4xx",code="407",method="INVITE"}`: 2,
		`sipwarden_sip_responses_total{class="4xx",code="404",method="INVITE"}`: 1,
		`sipwarden_sip_responses_total{class="2xx",code="200",method="BYE"}`:    1,
		`sipwarden_auth_outcomes_total{result="ok",scheme="digest"}`:            3, // bob's REGISTER and two INVITEs
	})
}

// TestCallee2xxRetransmissionsRelayed: a callee retransmits its 200 to an
// INVITE until the ACK comes (RFC 3261 13.3.1.4); the proxy relays every
// copy (16.7 step 5), so a caller whose first 200 was lost gets the next.
// The callee is a gateway on a raw UDP socket that sends its 200 three
// times; the caller a raw UDP socket authenticated as alice.
func TestCallee2xxRetransmissionsRelayed(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	gw, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	cfg.Proxy.Routes = []config.ProxyRoute{{Name: "pstn", Prefix: "9", Gateway: "sip:" + gw.LocalAddr().String()}}
	ts := startServer(t, cfg)
	callSetup(t, ts)

	const copies = 3
	gwDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 65535)
		_ = gw.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, from, err := gw.ReadFromUDP(buf)
			if err != nil {
				gwDone <- err
				return
			}
			m, err := sip.ParseMessage(buf[:n])
			if err != nil {
				continue
			}
			req, ok := m.(*sip.Request)
			if !ok || req.Method != sip.INVITE {
				continue // the ACK
			}
			res := sip.NewResponseFromRequest(req, 200, "OK", nil)
			res.To().Params.Add("tag", "gw1")
			res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: gw.LocalAddr().(*net.UDPAddr).Port}})
			for range copies {
				if _, err := gw.WriteToUDP([]byte(res.String()), from); err != nil {
					gwDone <- err
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			gwDone <- nil
			return
		}
	}()

	caller, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	server, err := net.ResolveUDPAddr("udp", ts.Addr("udp"))
	if err != nil {
		t.Fatal(err)
	}
	local := caller.LocalAddr().String()
	invite := strings.ReplaceAll("INVITE sip:9123456@sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-rtx%d;rport\r\n"+
		"Max-Forwards: 70\r\nTo: <sip:9123456@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=a1\r\nCall-ID: rtx-2xx\r\n"+
		"CSeq: %d INVITE\r\n%sContact: <sip:alice@LOCAL>\r\nContent-Length: 0\r\n\r\n", "LOCAL", local)
	read := func(d time.Duration) []string {
		var out []string
		buf := make([]byte, 65535)
		_ = caller.SetReadDeadline(time.Now().Add(d))
		for {
			n, err := caller.Read(buf)
			if err != nil {
				return out
			}
			out = append(out, string(buf[:n]))
		}
	}
	if _, err := caller.WriteToUDP(fmt.Appendf(nil, invite, 1, 1, ""), server); err != nil {
		t.Fatal(err)
	}
	got := read(time.Second)
	if len(got) == 0 || !strings.HasPrefix(statusLine(got[0]), "SIP/2.0 407") {
		t.Fatalf("first INVITE: %q, want 407", got)
	}
	nonce := between(got[0], `nonce="`, `"`)
	authz := "Proxy-Authorization: " + digestAnswer("alice", alicePass, nonce, "INVITE", "sip:9123456@sipwarden.test") + "\r\n"
	if _, err := caller.WriteToUDP(fmt.Appendf(nil, invite, 2, 2, authz), server); err != nil {
		t.Fatal(err)
	}
	oks := 0
	for _, m := range read(2 * time.Second) {
		if statusLine(m) == "SIP/2.0 200 OK" {
			oks++
		}
	}
	if err := <-gwDone; err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if oks != copies {
		t.Fatalf("caller got %d copies of the callee's 200, want %d (every retransmission relayed)", oks, copies)
	}
}

// aliceCalls sends alice's INVITE to ruri as raw datagrams, the first
// without credentials (which must get 407) and then with them, and
// returns the status line of the first answer to the second.
func aliceCalls(t *testing.T, ts *testServer, ruri, branch string) string {
	t.Helper()
	invite := func(branch, authz string) string {
		t.Helper()
		msg := "INVITE " + ruri + " SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=" + branch + ";rport\n" +
			"Max-Forwards: 70\nTo: <" + ruri + ">\nFrom: <sip:alice@sipwarden.test>;tag=1\nCall-ID: call-" + branch + "\n" +
			"CSeq: 1 INVITE\nContact: <sip:alice@LOCAL>\nContent-Length: 0\n\n"
		if authz != "" {
			msg = strings.Replace(msg, "CSeq: 1", "Proxy-Authorization: "+authz+"\nCSeq: 2", 1)
		}
		return rawExchange(t, "udp", ts.Addr("udp"), msg, 3*time.Second)
	}
	res := invite(branch+"a", "")
	if !strings.HasPrefix(statusLine(res), "SIP/2.0 407") {
		t.Fatalf("first INVITE to %s: %q, want 407", ruri, statusLine(res))
	}
	authz := digestAnswer("alice", alicePass, between(res, `nonce="`, `"`), "INVITE", ruri)
	return statusLine(invite(branch+"b", authz))
}

// TestSIPSCallNeedsTLS: a call to a sips: Request-URI is forwarded over TLS
// only (RFC 3261 section 26.2.2): to a callee registered over UDP it is
// refused 480, where it used to ring over UDP with a sip: Request-URI; to
// one registered over TLS it rings.
func TestSIPSCallNeedsTLS(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	callSetup(t, ts)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	if got := aliceCalls(t, ts, "sips:bob@sipwarden.test", "z9hG4bK-sips1"); got != "SIP/2.0 480 SIPS Target Not Reachable Over TLS" {
		t.Fatalf("SIPS call to a UDP callee: %q", got)
	}
	none(t, bob.invites, "INVITE at the UDP callee", 200*time.Millisecond)

	bobTLS := newDevice(t, ts, "tls", "bob", "")
	bobTLS.register(t, bobPass, "")
	// The first answer: 100 Trying, or the callee's 180 or 200.
	if got := aliceCalls(t, ts, "sips:bob@sipwarden.test", "z9hG4bK-sips2"); strings.HasPrefix(got, "SIP/2.0 4") {
		t.Fatalf("SIPS call to a TLS callee: %q", got)
	}
	if inv := recv(t, bobTLS.invites, "INVITE at the TLS callee"); inv.Transport() != "TLS" {
		t.Fatalf("INVITE reached the callee over %s", inv.Transport())
	}
}

// TestEscapedCalleeUser: an escaped character of the Request-URI's user
// part is the character (RFC 3261 section 19.1.4): sip:%62ob@ rings bob;
// it used to get 404 User Not Found.
func TestEscapedCalleeUser(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	callSetup(t, ts)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	if got := aliceCalls(t, ts, "sip:%62ob@sipwarden.test", "z9hG4bK-esc"); strings.HasPrefix(got, "SIP/2.0 4") {
		t.Fatalf("call to sip:%%62ob@: %q", got)
	}
	recv(t, bob.invites, "INVITE at bob")
}

// TestUnknownMethodToServer: a method the server does not know, sent to
// the server itself, gets 501 with Allow (RFC 3261 8.2.1, 21.5.2), no
// challenge; it used to be challenged, then answered 404 No User In
// Request-URI. To a user it is still a request to proxy: challenged.
func TestUnknownMethodToServer(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	msg := func(ruri, branch string) string {
		return "FOO " + ruri + " SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=" + branch + ";rport\nMax-Forwards: 70\n" +
			"To: <" + ruri + ">\nFrom: <sip:alice@sipwarden.test>;tag=1\nCall-ID: foo-" + branch + "\nCSeq: 1 FOO\nContent-Length: 0\n\n"
	}
	res := rawExchange(t, "udp", ts.Addr("udp"), msg("sip:sipwarden.test", "z9hG4bK-foo1"), 2*time.Second)
	if got := statusLine(res); got != "SIP/2.0 501 Not Implemented" || !strings.Contains(res, "\r\nAllow: INVITE, ACK,") {
		t.Fatalf("FOO to the server: %q\n%s", got, res)
	}
	res = rawExchange(t, "udp", ts.Addr("udp"), msg("sip:bob@sipwarden.test", "z9hG4bK-foo2"), 2*time.Second)
	if got := statusLine(res); !strings.HasPrefix(got, "SIP/2.0 407") {
		t.Fatalf("FOO to a user: %q, want 407", got)
	}
}

var inviteCSeq = regexp.MustCompile(`CSeq: \d+ INVITE`)

// TestRelayedResponseTransport: a response relayed to a UDP caller from a
// TCP callee goes out, and is traced, as udp: the trace said tcp (the
// callee leg's), which misled whoever read it, and a 2xx relayed after the
// server transaction ended looked for a connection of the wrong
// transport.
func TestRelayedResponseTransport(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.SIPTrace = true
	ts := startServer(t, cfg)
	callSetup(t, ts)
	bob := newDevice(t, ts, "tcp", "bob", "")
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, _, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	found := 0
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		if !strings.Contains(line, `msg="SIP response sending"`) || !strings.Contains(line, "SIP/2.0 200 OK") || !inviteCSeq.MatchString(line) {
			continue
		}
		found++
		if !strings.Contains(line, "transport=udp") {
			t.Errorf("the 200 relayed to the UDP caller traced as:\n%s", line)
		}
	}
	if found == 0 {
		t.Fatalf("no 200 to the INVITE in the trace:\n%s", tail(ts.logs.String(), 3000))
	}
}
