package server_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/sipwarden/sipwarden/config"
)

// Issue 16: connections as trunks. Real sipgo peers on loopback: a PBX
// on a credential trunk, a carrier on an ip connection, devices, a
// gateway.

type connection struct {
	ID string `json:"id"`
}

func (ts *testServer) createConnection(t *testing.T, body map[string]any) connection {
	t.Helper()
	var c connection
	if code := ts.api(t, "POST", "/v1/connections", body, &c); code != 201 {
		t.Fatalf("create connection %v: status %d", body, code)
	}
	return c
}

func (ts *testServer) assignNumber(t *testing.T, body map[string]any) {
	t.Helper()
	if code := ts.api(t, "POST", "/v1/numbers", body, nil); code != 201 {
		t.Fatalf("assign number %v: status %d", body, code)
	}
}

// refusal is the status and reason phrase of a call's final answer.
func refusal(err error) (int, string) {
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		return de.Res.StatusCode, de.Res.Reason
	}
	return 0, ""
}

// freeUDP returns a loopback UDP address nobody listens on now.
func freeUDP(t *testing.T, ip string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().String()
	_ = c.Close()
	return a
}

// TestTrunkCallerIDToGateway: a PBX authenticating as its trunk
// credential presents its caller's number in From; the connection's
// caller ID policy admits the connection's numbers, the call reaches the
// outbound gateway with that number asserted (RFC 3325), and a number
// that is not the connection's is refused as before.
func TestTrunkCallerIDToGateway(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	gwAddr := freeUDP(t, "127.0.0.1")
	cfg.Proxy.Routes = []config.ProxyRoute{{Name: "pstn", Prefix: "+1", Gateway: "sip:" + gwAddr}}
	ts := startServer(t, cfg)
	trunk := ts.createConnection(t, map[string]any{"name": "pbx-trunk", "caller_id_policy": "connection_numbers"})
	ts.createCredential(t, "trunk1", alicePass, map[string]any{"connection_id": trunk.ID})
	ts.assignNumber(t, map[string]any{"number": "1-555-123-4567", "connection_id": trunk.ID})
	other := ts.createConnection(t, map[string]any{"name": "other"})
	ts.assignNumber(t, map[string]any{"number": "+15557654321", "connection_id": other.ID})
	gw := newDevice(t, ts, "udp", "gateway", gwAddr)
	pbx := newDevice(t, ts, "udp", "trunk1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	sess, statuses, err := pbx.callAs(ctx, t, "+15559876543", "+15551234567", "trunk1", alicePass)
	if err != nil {
		t.Fatalf("PBX call with its connection's number in From: %v (statuses %v)", err, statuses)
	}
	inv := recv(t, gw.invites, "INVITE at the gateway")
	if got, want := inv.GetHeader("P-Asserted-Identity"), "<sip:+15551234567@sipwarden.test;user=phone>"; got == nil || got.Value() != want {
		t.Errorf("P-Asserted-Identity at the gateway %v, want %s", got, want)
	}
	if inv.GetHeader("Proxy-Authorization") != nil {
		t.Error("the PBX's credentials reached the gateway")
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, gw.byes, "BYE at the gateway")

	for _, from := range []string{"+15557654321", "+15550000000", "alice"} {
		_, statuses, err = pbx.callAs(ctx, t, "+15559876543", from, "trunk1", alicePass)
		if code, reason := refusal(err); code != 403 || reason != "From User Does Not Match Credential" {
			t.Errorf("From %s: %d %q (statuses %v), want 403 From User Does Not Match Credential", from, code, reason, statuses)
		}
	}

	// caller_id_policy any: whatever the PBX presents.
	if code := ts.api(t, "PATCH", "/v1/connections/"+trunk.ID, map[string]any{"caller_id_policy": "any"}, nil); code != 200 {
		t.Fatalf("PATCH caller_id_policy: %d", code)
	}
	sess, statuses, err = pbx.callAs(ctx, t, "+15559876543", "+15550000000", "trunk1", alicePass)
	if err != nil {
		t.Fatalf("policy any: %v (statuses %v)", err, statuses)
	}
	recv(t, gw.invites, "INVITE at the gateway")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, gw.byes, "BYE at the gateway")

	// A carrier (ip connection) calling a number that is not ours gets
	// 404: it does not go back out through the route (hairpin), which
	// does not name its connection.
	ts.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.2"}})
	carrier := newDevice(t, ts, "udp", "carrier", "127.0.0.2")
	_, statuses, err = carrier.call(ctx, t, "+15559876543", "+442079460958", "")
	if code, reason := refusal(err); code != 404 || reason != "Number Not Assigned" {
		t.Errorf("carrier to a foreign number: %d %q (statuses %v), want 404 Number Not Assigned", code, reason, statuses)
	}
	none(t, gw.invites, "INVITE at the gateway", 200*time.Millisecond)
}

// TestCarrierToDID: a carrier on an ip connection (no credential, no
// challenge) calls a number assigned to a credential, whose registered
// device rings and answers; a number assigned to a trunk goes to its
// PBX; an unassigned number gets 404. The connection takes effect and
// stops without a restart.
func TestCarrierToDID(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	creds := callSetup(t, ts)
	carrierConn := ts.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.2"}})
	ts.assignNumber(t, map[string]any{"number": "+15551230001", "credential_id": creds.bob.ID})
	pbxAddr := freeUDP(t, "127.0.0.1")
	trunk := ts.createConnection(t, map[string]any{"name": "trunk", "pbx_uri": "sip:" + pbxAddr})
	ts.assignNumber(t, map[string]any{"number": "tel:+1-555-123-0002", "connection_id": trunk.ID})
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	pbx := newDevice(t, ts, "udp", "pbx", pbxAddr)
	carrier := newDevice(t, ts, "udp", "carrier", "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	for _, target := range []string{"+15551230001", "15551230001"} {
		sess, statuses, err := carrier.call(ctx, t, target, "+442079460958", "")
		if err != nil {
			t.Fatalf("carrier call to DID %s: %v (statuses %v)", target, err, statuses)
		}
		if containsAll(statuses, 407) {
			t.Errorf("the ip connection was challenged: %v", statuses)
		}
		if !containsAll(statuses, 180, 200) {
			t.Errorf("statuses %v, want 180 and 200", statuses)
		}
		inv := recv(t, bob.invites, "INVITE at bob's device")
		if inv.From().Address.User != "+442079460958" {
			t.Errorf("bob sees From %s", inv.From().Address.String())
		}
		_ = sess.Ack(ctx)
		_ = sess.Bye(ctx)
		recv(t, bob.byes, "BYE at bob")
	}

	sess, statuses, err := carrier.call(ctx, t, "+15551230002", "+442079460958", "")
	if err != nil {
		t.Fatalf("carrier call to the trunk's DID: %v (statuses %v)", err, statuses)
	}
	if inv := recv(t, pbx.invites, "INVITE at the PBX"); inv.Recipient.User != "+15551230002" {
		t.Errorf("PBX Request-URI %s", inv.Recipient.String())
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, pbx.byes, "BYE at the PBX")

	// A block of numbers (a pattern) to the same PBX.
	ts.assignNumber(t, map[string]any{"number": "+1555124*", "connection_id": trunk.ID})
	sess, statuses, err = carrier.call(ctx, t, "+15551240042", "+442079460958", "")
	if err != nil {
		t.Fatalf("carrier call to a number of the trunk's block: %v (statuses %v)", err, statuses)
	}
	if inv := recv(t, pbx.invites, "INVITE at the PBX"); inv.Recipient.User != "+15551240042" {
		t.Errorf("PBX Request-URI %s", inv.Recipient.String())
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, pbx.byes, "BYE at the PBX")

	_, statuses, err = carrier.call(ctx, t, "+15551230999", "+442079460958", "")
	if code, reason := refusal(err); code != 404 || reason != "Number Not Assigned" {
		t.Errorf("unassigned DID: %d %q (statuses %v), want 404 Number Not Assigned", code, reason, statuses)
	}

	// Another address is not the carrier: challenged.
	stranger := newDevice(t, ts, "udp", "carrier", "127.0.0.3")
	_, statuses, err = stranger.call(ctx, t, "+15551230001", "+442079460958", "")
	if dialogStatus(err) != 407 && !containsAll(statuses, 407) {
		t.Errorf("unlisted address: %v %v, want 407", err, statuses)
	}
	// Deactivated: challenged at once, without a restart.
	if code := ts.api(t, "PATCH", "/v1/connections/"+carrierConn.ID, map[string]any{"active": false}, nil); code != 200 {
		t.Fatalf("deactivate: %d", code)
	}
	_, statuses, err = carrier.call(ctx, t, "+15551230001", "+442079460958", "")
	if dialogStatus(err) != 407 && !containsAll(statuses, 407) {
		t.Errorf("deactivated ip connection: %v %v, want 407", err, statuses)
	}
}

// TestSIPURICallingPreference: disabled refuses a call by username from
// another connection (the callee's number still rings); internal admits
// credentials of this server but not an ip connection.
func TestSIPURICallingPreference(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	bobConn := ts.createConnection(t, map[string]any{"name": "bob-co", "sip_uri_calling_preference": "disabled"})
	ts.createCredential(t, "alice", alicePass, nil)
	bobCred := ts.createCredential(t, "bob", bobPass, map[string]any{"connection_id": bobConn.ID})
	ts.assignNumber(t, map[string]any{"number": "+15551230001", "credential_id": bobCred.ID})
	ts.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.2/32"}})
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	carrier := newDevice(t, ts, "udp", "carrier", "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	_, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if code, reason := refusal(err); code != 403 || reason != "SIP URI Calls Not Accepted By This Connection" {
		t.Fatalf("disabled: SIP URI call from another connection: %d %q (statuses %v), want 403", code, reason, statuses)
	}
	none(t, bob.invites, "INVITE at bob", 200*time.Millisecond)
	sess, statuses, err := alice.call(ctx, t, "+15551230001", "alice", alicePass)
	if err != nil {
		t.Fatalf("disabled: call to bob's number: %v (statuses %v)", err, statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")

	if code := ts.api(t, "PATCH", "/v1/connections/"+bobConn.ID, map[string]any{"sip_uri_calling_preference": "internal"}, nil); code != 200 {
		t.Fatalf("PATCH: %d", code)
	}
	sess, statuses, err = alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("internal: call by username from a credential: %v (statuses %v)", err, statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")
	_, statuses, err = carrier.call(ctx, t, "bob", "+442079460958", "")
	if code, _ := refusal(err); code != 403 {
		t.Errorf("internal: SIP URI call from an ip connection: %v (statuses %v), want 403", err, statuses)
	}
}

// TestConnectionCallLimit: a connection's max_calls refuses the call
// over it, made by one of its credentials or made to it, with 503 naming
// the limit, and admits one again when a call ends.
func TestConnectionCallLimit(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	conn := ts.createConnection(t, map[string]any{"name": "small", "max_calls": 1})
	ts.createCredential(t, "alice", alicePass, map[string]any{"connection_id": conn.ID})
	alice2Cred := ts.createCredential(t, "alice2", alicePass, map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "bob", bobPass, nil)
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	alice := newDevice(t, ts, "udp", "alice", "")
	alice2 := newDevice(t, ts, "udp", "alice2", "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	sess, statuses, err := alice.call(ctx, t, "bob", "alice", alicePass)
	if err != nil {
		t.Fatalf("first call: %v (statuses %v)", err, statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	// Another credential of the same connection: the connection's limit.
	_, statuses, err = alice2.call(ctx, t, "bob", "alice2", alicePass)
	if code, reason := refusal(err); code != 503 || reason != "Too Many Calls For This Connection" {
		t.Fatalf("second call: %d %q (statuses %v), want 503 Too Many Calls For This Connection", code, reason, statuses)
	}
	// A call to the connection counts too (a trunk's channels): a
	// carrier's call to alice2's number is refused while alice's is up.
	ts.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.2"}})
	ts.assignNumber(t, map[string]any{"number": "+15551230005", "credential_id": alice2Cred.ID})
	alice2.register(t, alicePass, "")
	carrier := newDevice(t, ts, "udp", "carrier", "127.0.0.2")
	_, statuses, err = carrier.call(ctx, t, "+15551230005", "+442079460958", "")
	if code, reason := refusal(err); code != 503 || reason != "Too Many Calls For This Connection" {
		t.Fatalf("call to the connection at its limit: %d %q (statuses %v), want 503 Too Many Calls For This Connection", code, reason, statuses)
	}
	none(t, alice2.invites, "INVITE at alice2", 100*time.Millisecond)
	_ = sess.Ack(ctx)
	if err := sess.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	recv(t, bob.byes, "BYE at bob")
	// Once the BYE's 200 reached the caller, the slot is free: the next
	// call got 503 now and then, the dialog's removal (and the slot's
	// release) running on a goroutine of its own after the 200 left.
	sess, statuses, err = alice2.call(ctx, t, "bob", "alice2", alicePass)
	if err != nil {
		t.Fatalf("after the first call ended: %v (statuses %v)", err, statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, bob.byes, "BYE at bob")
}

// TestIPConnectionExemptFromBans: failures from an ip connection's
// address never ban it, and the exemption follows the store.
func TestIPConnectionExemptFromBans(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Guard.MaxFailures = 3
	ts := startServer(t, cfg)
	ts.createCredential(t, "alice", alicePass, nil)
	ts.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.5"}})
	for _, src := range []string{"127.0.0.5", "127.0.0.6"} {
		u := newRawUA(t, "udp", src, ts.Addr("udp"))
		bad := answerRegister("alice", u.nonce(), "sip:sipwarden.test", "auth") + "x" // malformed: a failure
		for range 5 {
			_, _ = u.exchange(u.registerMsg("alice", randHex(8), 1, bad, ""), 2*time.Second)
		}
	}
	var bans []map[string]any
	if code := ts.api(t, "GET", "/v1/bans", nil, &bans); code != 200 {
		t.Fatalf("GET /v1/bans: %d", code)
	}
	var banned []string
	for _, b := range bans {
		banned = append(banned, b["ip"].(string))
	}
	got := strings.Join(banned, ",")
	if strings.Contains(got, "127.0.0.5") || !strings.Contains(got, "127.0.0.6") {
		t.Errorf("banned %q: want 127.0.0.6 and not the ip connection's 127.0.0.5", got)
	}
}

// TestConnectionRegistrationLimit: max_registrations refuses a new
// binding over it with 403 naming the limit; refreshing one held passes,
// and removing one makes room.
func TestConnectionRegistrationLimit(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	conn := ts.createConnection(t, map[string]any{"name": "small", "max_registrations": 1})
	ts.createCredential(t, "alice", alicePass, map[string]any{"connection_id": conn.ID})
	ts.createCredential(t, "alice2", alicePass, map[string]any{"connection_id": conn.ID})
	a := newPhone(t, ts, "udp")
	a2 := newPhone(t, ts, "udp")
	wantStatus(t, a.register(t, regOpts{user: "alice", pass: alicePass}), 200)
	wantStatus(t, a.register(t, regOpts{user: "alice", pass: alicePass}), 200) // a refresh
	res := a2.register(t, regOpts{user: "alice2", pass: alicePass})
	if res == nil || res.StatusCode != 403 || res.Reason != "Too Many Registrations For This Connection" {
		t.Fatalf("second registration of the connection: %v, want 403 Too Many Registrations For This Connection", res)
	}
	wantStatus(t, a.register(t, regOpts{user: "alice", pass: alicePass, expires: "0"}), 200)
	wantStatus(t, a2.register(t, regOpts{user: "alice2", pass: alicePass}), 200)
}

// TestConnectionGatewaysFailoverAndAuth: a connection's outbound route
// tries its gateways in order: the first answers 503, the second
// challenges with 401 and accepts the connection's gateway credentials
// (answered by the proxy), and the caller gets the call. With a wrong
// gateway password the caller gets 403; when every gateway is
// unavailable, 500 (RFC 3261 16.7 step 6).
func TestConnectionGatewaysFailoverAndAuth(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	gw1Addr, gw2Addr := freeUDP(t, "127.0.0.1"), freeUDP(t, "127.0.0.1")
	gw1 := newDevice(t, ts, "udp", "gw1", gw1Addr)
	gw1.mode.Store("unavailable")
	gw2 := newDevice(t, ts, "udp", "gw2", gw2Addr)
	gw2.mode.Store("challenge")
	var trunk struct {
		ID                 string `json:"id"`
		GatewayPasswordSet bool   `json:"gateway_password_set"`
	}
	if code := ts.api(t, "POST", "/v1/connections", map[string]any{
		"name": "trunk", "caller_id_policy": "any",
		"outbound_routes":  []map[string]any{{"prefix": "+1", "gateways": []string{"sip:" + gw1Addr, "sip:" + gw2Addr}}},
		"gateway_username": gatewayUser, "gateway_password": gatewayPass,
	}, &trunk); code != 201 || !trunk.GatewayPasswordSet {
		t.Fatalf("create connection: %d %+v", code, trunk)
	}
	ts.createCredential(t, "trunk1", alicePass, map[string]any{"connection_id": trunk.ID})
	pbx := newDevice(t, ts, "udp", "trunk1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	sess, statuses, err := pbx.callAs(ctx, t, "+15559876543", "+15551234567", "trunk1", alicePass)
	if err != nil {
		t.Fatalf("call through the gateways: %v (statuses %v)", err, statuses)
	}
	recv(t, gw1.invites, "INVITE at the first gateway")
	if first := recv(t, gw2.invites, "INVITE at the second gateway"); first.GetHeader("Authorization") != nil {
		t.Error("the first INVITE to the second gateway carried credentials before any challenge")
	}
	if second := recv(t, gw2.invites, "INVITE with credentials at the second gateway"); !gatewayAuthorized(second) {
		t.Errorf("the retried INVITE's credentials do not verify: %v", second.GetHeader("Authorization"))
	}
	if containsAll(statuses, 401) || containsAll(statuses, 503) {
		t.Errorf("the caller saw the gateways' answers: %v", statuses)
	}
	_ = sess.Ack(ctx)
	_ = sess.Bye(ctx)
	recv(t, gw2.byes, "BYE at the second gateway")

	// A wrong gateway password: 403 for the caller, not the challenge.
	if code := ts.api(t, "PATCH", "/v1/connections/"+trunk.ID, map[string]any{"gateway_password": "wrong-password-1"}, nil); code != 200 {
		t.Fatalf("PATCH: %d", code)
	}
	_, statuses, err = pbx.callAs(ctx, t, "+15559876543", "+15551234567", "trunk1", alicePass)
	if code, reason := refusal(err); code != 403 || reason != "Gateway Refused Credentials" {
		t.Errorf("wrong gateway password: %d %q (statuses %v), want 403 Gateway Refused Credentials", code, reason, statuses)
	}
	// Every gateway unavailable: 500 (a 503 would say this proxy is).
	gw2.mode.Store("unavailable")
	_, statuses, err = pbx.callAs(ctx, t, "+15559876543", "+15551234567", "trunk1", alicePass)
	if code, _ := refusal(err); code != 500 {
		t.Errorf("every gateway unavailable: %v (statuses %v), want 500", err, statuses)
	}
	waitFor(t, "no calls", 5*time.Second, func() bool { return len(ts.calls(t)) == 0 })
}

// TestIPConnectionDeactivationEndsCalls: deactivating an ip connection
// ends its carrier's calls in progress (BYE to the callee) as well as
// trusting its address.
func TestIPConnectionDeactivationEndsCalls(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	creds := callSetup(t, ts)
	carrierConn := ts.createConnection(t, map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"127.0.0.2"}})
	ts.assignNumber(t, map[string]any{"number": "+15551230001", "credential_id": creds.bob.ID})
	bob := newDevice(t, ts, "udp", "bob", "")
	bob.register(t, bobPass, "")
	carrier := newDevice(t, ts, "udp", "carrier", "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sess, statuses, err := carrier.call(ctx, t, "+15551230001", "+442079460958", "")
	if err != nil {
		t.Fatalf("carrier call: %v (statuses %v)", err, statuses)
	}
	recv(t, bob.invites, "INVITE at bob")
	_ = sess.Ack(ctx)
	waitFor(t, "the call listed", 5*time.Second, func() bool { return len(ts.calls(t)) == 1 })
	if code := ts.api(t, "PATCH", "/v1/connections/"+carrierConn.ID, map[string]any{"active": false}, nil); code != 200 {
		t.Fatalf("deactivate: %d", code)
	}
	recv(t, bob.byes, "BYE at bob from the proxy")
	recv(t, carrier.byes, "BYE at the carrier from the proxy")
	waitFor(t, "no calls", 5*time.Second, func() bool { return len(ts.calls(t)) == 0 })
}
