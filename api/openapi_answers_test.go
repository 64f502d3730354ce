package api_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/token"
)

// fakeCalls is a proxy's call list.
type fakeCalls []api.Call

func (f fakeCalls) ActiveCalls(context.Context) ([]api.Call, error) { return slices.Clone(f), nil }
func (f fakeCalls) EndCall(_ context.Context, id string) (bool, error) {
	return slices.ContainsFunc(f, func(c api.Call) bool { return c.ID == id }), nil
}

// answers drives one API server and checks every answer against the
// document.
type answers struct {
	e *env
	a *answerChecker
}

// call sends a request (key "" sends none), requires the status want, and
// checks the exchange against the document; badBody says the body itself
// is what the server refuses. It returns the answer's body.
func (x *answers) call(want int, key, method, path, body string, badBody bool) []byte {
	t := x.a.t
	t.Helper()
	rec := x.e.doKey(key, method, path, body)
	if rec.Code != want {
		t.Fatalf("%s %s %s: got %d, want %d; body %s", method, path, body, rec.Code, want, rec.Body)
	}
	req := httptest.NewRequest(method, path, nil)
	x.a.check(req, body, rec, badBody)
	return rec.Body.Bytes()
}

func (x *answers) ok(want int, method, path, body string) []byte {
	x.a.t.Helper()
	return x.call(want, x.e.key, method, path, body, false)
}

func (x *answers) refused(want int, method, path, body string) []byte {
	x.a.t.Helper()
	return x.call(want, x.e.key, method, path, body, true)
}

// id returns data.id of an answer.
func id(t *testing.T, raw []byte) string {
	t.Helper()
	var v struct{ Data struct{ ID string } }
	if err := json.Unmarshal(raw, &v); err != nil || v.Data.ID == "" {
		t.Fatalf("no data.id in %s: %v", raw, err)
	}
	return v.Data.ID
}

// TestOpenAPIDescribesAnswers drives the real API handler on a real store
// through every documented operation, with successes and failures, and
// checks each answer against api/openapi.json: what keeps the document
// honest. Every documented operation must be answered with a 2xx at least
// once.
func TestOpenAPIDescribesAnswers(t *testing.T) {
	o := loadOpenAPI(t)
	checker := newAnswerChecker(t, o)

	now := time.Now().UTC().Truncate(time.Second)
	g := banGuard(&now)
	e := newEnv(t, func(c *api.Config) { c.Bans = api.LocalBans{Guard: g}; c.MaxBodyBytes = 4096 })
	key, err := token.Ed25519Key(make([]byte, ed25519.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Issuer: "sipwarden", Audience: "sip", TTL: time.Hour, Key: key, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier(token.VerifierConfig{Issuer: "sipwarden", Audience: "sip", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetTokens(iss, ver)
	var level slog.LevelVar
	e.srv.HandleLogLevel(&level)
	x := &answers{e: e, a: checker}

	// Public routes.
	x.call(200, "", "GET", "/healthz", "", false)
	x.call(200, "", "GET", "/v1/openapi.json", "", false)
	x.call(200, "", "GET", "/v1/jwks", "", false)
	x.call(401, "", "GET", "/v1/connections", "", false)
	x.call(401, "swk_nope_nope", "DELETE", "/v1/credentials/x", "", false)

	// Connections.
	conn := id(t, x.ok(201, "POST", "/v1/connections", `{"name":"pbx-trunk","active":true,"allowed_cidrs":["192.0.2.7","2001:db8::/48"]}`))
	x.ok(201, "POST", "/v1/connections", `{"name":"office"}`)
	x.refused(422, "POST", "/v1/connections", `{"name":"","allowed_cidrs":["nowhere"]}`)
	x.refused(400, "POST", "/v1/connections", `{"name":"x","colour":"red"}`)
	x.refused(400, "POST", "/v1/connections", `{"name":`)
	x.refused(413, "POST", "/v1/connections", `{"name":"`+strings.Repeat("x", 5000)+`"}`)
	x.ok(200, "GET", "/v1/connections?page[size]=1", "")
	x.ok(200, "GET", "/v1/connections", "")
	x.ok(400, "GET", "/v1/connections?limit=1", "")
	x.ok(200, "GET", "/v1/connections/"+conn, "")
	x.ok(404, "GET", "/v1/connections/nope", "")
	x.ok(200, "PATCH", "/v1/connections/"+conn, `{"active":false,"allowed_cidrs":null}`)
	x.ok(200, "PATCH", "/v1/connections/"+conn, `{"active":true,"name":"pbx-trunk-2","allowed_cidrs":["198.51.100.0/24"]}`)
	x.refused(422, "PATCH", "/v1/connections/"+conn, `{"active":null}`)
	x.ok(404, "PATCH", "/v1/connections/nope", `{"active":false}`)
	carrier := id(t, x.ok(201, "POST", "/v1/connections", `{"name":"carrier","kind":"ip","allowed_cidrs":["192.0.2.32/28"],"pbx_uri":"sip:192.0.2.33:5080;transport=tcp"}`))
	x.ok(422, "POST", "/v1/connections", `{"name":"carrier-2","kind":"ip"}`) // no addresses: no schema can tell
	x.refused(422, "POST", "/v1/connections", `{"name":"x","kind":"fqdn"}`)
	x.ok(422, "POST", "/v1/connections", `{"name":"x","pbx_uri":"http://pbx"}`)
	x.refused(422, "POST", "/v1/connections", `{"name":"x","caller_id_policy":"whatever","max_calls":-1}`)
	x.ok(200, "PATCH", "/v1/connections/"+carrier, `{"max_calls":2,"max_registrations":3,"caller_id_policy":"connection_numbers","sip_uri_calling_preference":"disabled"}`)
	x.ok(422, "PATCH", "/v1/connections/"+carrier, `{"kind":"credential"}`)
	x.ok(422, "PATCH", "/v1/connections/"+carrier, `{"allowed_cidrs":[]}`)
	gwBody := x.ok(201, "POST", "/v1/connections", `{"name":"gw-trunk","outbound_routes":[{"prefix":"+1","gateways":["sip:192.0.2.40","sip:192.0.2.41:5080;transport=tcp"]}],"gateway_username":"acct","gateway_password":"gw-secret-9876"}`)
	if strings.Contains(string(gwBody), "gw-secret-9876") || !strings.Contains(string(gwBody), `"gateway_password_set": true`) {
		t.Errorf("gateway password shown or not reported set: %s", gwBody)
	}
	x.ok(422, "POST", "/v1/connections", `{"name":"x","outbound_routes":[{"prefix":"+1","gateways":["http://gw"]}]}`)
	x.ok(204, "DELETE", "/v1/connections/"+id(t, gwBody), "")
	hookBody := x.ok(201, "POST", "/v1/connections", `{"name":"hooked","webhook_event_url":"http://127.0.0.1:9/hook","webhook_timeout_secs":5}`)
	if !strings.Contains(string(hookBody), `"webhook_secret": "whsec_`) {
		t.Errorf("no webhook_secret in the answer that made it: %s", hookBody)
	}
	hooked := id(t, hookBody)
	if again := x.ok(200, "PATCH", "/v1/connections/"+hooked, `{"webhook_event_failover_url":"http://localhost:9/backup"}`); strings.Contains(string(again), "webhook_secret\"") {
		t.Errorf("webhook_secret shown again: %s", again)
	}
	if got := x.ok(200, "GET", "/v1/connections/"+hooked, ""); strings.Contains(string(got), "whsec_") {
		t.Errorf("webhook_secret shown by GET: %s", got)
	}
	x.ok(422, "PATCH", "/v1/connections/"+hooked, `{"webhook_event_url":"ftp://x"}`)
	x.ok(422, "PATCH", "/v1/connections/"+hooked, `{"webhook_event_url":"https://no-such-host.invalid/hook"}`)
	x.refused(422, "PATCH", "/v1/connections/"+hooked, `{"webhook_timeout_secs":99}`)
	x.ok(200, "GET", "/v1/connections/"+hooked+"/webhook_deliveries", "")
	x.ok(404, "GET", "/v1/connections/nope/webhook_deliveries", "")
	x.ok(400, "GET", "/v1/connections/"+hooked+"/webhook_deliveries?page[size]=1", "")
	x.ok(200, "POST", "/v1/connections/"+hooked+"/actions/rotate_webhook_secret", "")
	x.ok(400, "POST", "/v1/connections/"+hooked+"/actions/rotate_webhook_secret", `{"secret":"mine"}`)
	x.ok(404, "POST", "/v1/connections/nope/actions/rotate_webhook_secret", "")
	x.ok(204, "DELETE", "/v1/connections/"+hooked, "")

	// Credentials.
	future := e.now.Add(48 * time.Hour).Format(time.RFC3339)
	alice := id(t, x.ok(201, "POST", "/v1/credentials", fmt.Sprintf(
		`{"username":"alice","password":"correct-horse-battery","connection_id":%q,"name":"Alice's desk phone","tag":"sales","enabled":true,"expires_at":%q,"algorithms":["SHA-256","MD5"]}`, conn, future)))
	bob := id(t, x.ok(201, "POST", "/v1/credentials", `{"username":"bob","password":"correct-horse-battery","enabled":false}`))
	x.ok(409, "POST", "/v1/credentials", `{"username":"alice","password":"correct-horse-battery"}`)
	// On-demand: the username and the password generated, the password
	// in the answer (CredentialCreated); "" is refused naming the field.
	x.ok(201, "POST", "/v1/credentials", `{"name":"My-new-credential"}`)
	x.refused(422, "POST", "/v1/credentials", `{"username":"","name":"x"}`)
	x.refused(422, "POST", "/v1/credentials", `{"password":"","name":"x"}`)
	x.refused(422, "POST", "/v1/credentials", `{"username":"a b","password":"short"}`)
	x.refused(422, "POST", "/v1/credentials", `{"username":"carol","password":"correct-horse-battery","state":"active"}`)
	x.refused(422, "POST", "/v1/credentials", `{"username":"carol","password":"correct-horse-battery","algorithms":[]}`)
	x.ok(422, "POST", "/v1/credentials", `{"username":"carol","password":"correct-horse-battery","expires_at":"2001-01-01T00:00:00Z"}`) // in the past: no schema can tell
	x.ok(422, "POST", "/v1/credentials", `{"username":"carol","password":"correct-horse-battery","connection_id":"nope"}`)
	x.refused(400, "POST", "/v1/credentials", `{"username":"carol","password":"correct-horse-battery","enabled":"yes"}`)
	x.ok(409, "DELETE", "/v1/connections/"+conn, "")
	x.ok(409, "DELETE", "/v1/connections/default", "")
	x.ok(404, "DELETE", "/v1/connections/nope", "")
	x.ok(200, "GET", "/v1/credentials?tag=sales&enabled=true&connection_id="+conn+"&username=alice", "")
	x.ok(200, "GET", "/v1/credentials?page[size]=1", "")
	x.ok(400, "GET", "/v1/credentials?page[size]=0", "")
	x.ok(400, "GET", "/v1/credentials?enabled=maybe", "")
	x.ok(200, "GET", "/v1/credentials/"+alice, "")

	// Numbers.
	x.ok(201, "POST", "/v1/numbers", `{"number":"tel:+1-555-123-4567","credential_id":"`+alice+`"}`)
	x.ok(201, "POST", "/v1/numbers", `{"number":"15551234568","connection_id":"`+carrier+`"}`)
	x.ok(409, "POST", "/v1/numbers", `{"number":"+15551234567","connection_id":"`+carrier+`"}`)
	x.ok(422, "POST", "/v1/numbers", `{"number":"+1555abc","connection_id":"`+carrier+`"}`)
	x.ok(422, "POST", "/v1/numbers", `{"number":"+15551234569","connection_id":"nope"}`)
	x.ok(422, "POST", "/v1/numbers", `{"number":"+15551234569","credential_id":"nope"}`)
	x.ok(422, "POST", "/v1/numbers", `{"number":"+15551234569","connection_id":"`+carrier+`","credential_id":"`+alice+`"}`)
	x.refused(422, "POST", "/v1/numbers", `{"connection_id":"`+carrier+`"}`)
	x.refused(400, "POST", "/v1/numbers", `{"number":"+15551234569","colour":"red"}`)
	x.ok(201, "POST", "/v1/numbers", `{"number":"tel:+1-555-777*","connection_id":"`+carrier+`"}`)
	x.ok(200, "GET", "/v1/numbers/+1555777*", "")
	x.ok(204, "DELETE", "/v1/numbers/+1555777*", "")
	x.ok(422, "POST", "/v1/numbers", `{"number":"+15*55","connection_id":"`+carrier+`"}`)
	x.ok(200, "GET", "/v1/numbers?page[size]=1", "")
	x.ok(200, "GET", "/v1/numbers?connection_id="+carrier, "")
	x.ok(400, "GET", "/v1/numbers?owner=me", "")
	x.ok(200, "GET", "/v1/numbers/15551234567", "")
	x.ok(422, "GET", "/v1/numbers/15551234567;ext=1", "")
	x.ok(422, "DELETE", "/v1/numbers/15551234567%0A", "")
	x.ok(422, "PATCH", "/v1/numbers/+", `{"connection_id":"`+carrier+`"}`)
	x.ok(200, "GET", "/v1/numbers/%2B15551234567", "")
	x.ok(404, "GET", "/v1/numbers/+15550000000", "")
	x.ok(200, "PATCH", "/v1/numbers/+15551234567", `{"credential_id":null}`)
	x.ok(200, "PATCH", "/v1/numbers/+15551234567", `{"credential_id":"`+alice+`"}`)
	x.ok(422, "PATCH", "/v1/numbers/+15551234567", `{"connection_id":"nope"}`)
	x.ok(404, "PATCH", "/v1/numbers/+15550000000", `{"credential_id":null}`)
	x.ok(409, "DELETE", "/v1/connections/"+carrier, "")
	x.ok(204, "DELETE", "/v1/numbers/+15551234568", "")
	x.ok(404, "DELETE", "/v1/numbers/+15551234568", "")
	x.ok(204, "DELETE", "/v1/connections/"+carrier, "")
	x.ok(404, "GET", "/v1/credentials/nope", "")
	x.ok(200, "PATCH", "/v1/credentials/"+alice, fmt.Sprintf(`{"tag":null,"name":"","expires_at":%q}`, e.now.Add(-time.Minute).Format(time.RFC3339)))
	x.refused(422, "PATCH", "/v1/credentials/"+alice, `{"username":"alice2"}`)
	x.refused(400, "PATCH", "/v1/credentials/"+alice, `{"enabled":"yes"}`)
	x.ok(404, "PATCH", "/v1/credentials/nope", `{"enabled":true}`)

	// Tokens: alice has expired, bob is disabled.
	x.ok(409, "POST", "/v1/credentials/"+alice+"/token", "")
	x.ok(409, "POST", "/v1/credentials/"+bob+"/token", "")
	x.ok(404, "POST", "/v1/credentials/nope/token", "")
	x.ok(200, "PATCH", "/v1/credentials/"+alice, `{"expires_at":null,"algorithms":null,"password":"a-new-long-password"}`)
	x.ok(201, "POST", "/v1/credentials/"+alice+"/token", "")
	x.ok(201, "POST", "/v1/credentials/"+alice+"/token", "{}")
	x.refused(400, "POST", "/v1/credentials/"+alice+"/token", `{"ttl":"999h"}`)
	x.ok(200, "POST", "/v1/credentials/"+alice+"/actions/revoke_tokens", "")
	x.ok(404, "POST", "/v1/credentials/nope/actions/revoke_tokens", "")
	x.ok(400, "POST", "/v1/credentials/"+alice+"/actions/revoke_tokens", `{"x":1}`)

	// Registrations.
	e.locs.add(
		store.Binding{ID: "b1", AOR: "alice", CredentialID: alice, Contact: "sip:alice@192.0.2.10:52311;transport=tcp", Source: "192.0.2.10:52311",
			Transport: "tcp", UserAgent: "Zoiper rv2.10", InstanceID: "<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>",
			Expires: e.now.Add(time.Hour), RegisteredAt: e.now},
		store.Binding{ID: "b2", AOR: "bob", Contact: "sip:bob@198.51.100.2:5060", Source: "198.51.100.2:5060", Transport: "udp",
			Expires: e.now.Add(-time.Second), RegisteredAt: e.now.Add(-time.Hour)},
	)
	x.ok(200, "GET", "/v1/registrations", "")
	x.ok(200, "GET", "/v1/registrations?username=alice&page[size]=1", "")
	x.ok(200, "GET", "/v1/registrations?page[size]=1", "")
	x.ok(400, "GET", "/v1/registrations?page[after]=!!", "")
	x.ok(204, "DELETE", "/v1/registrations/b1", "")
	x.ok(404, "DELETE", "/v1/registrations/b1", "")

	// Calls: none, then two.
	x.ok(200, "GET", "/v1/calls", "")
	e.srv.SetCalls(fakeCalls{
		{ID: "a84b4c76e66710@pc33;1928301774;314159", CallID: "a84b4c76e66710@pc33", Caller: "sip:alice@test.example", Callee: "sip:bob@test.example",
			CallerCredentialID: alice, CalleeCredentialID: bob, StartedAt: e.now},
		{ID: "f81d4fae@gw1;8812;77", CallID: "f81d4fae@gw1", Caller: "sip:+15551234567@gw.example.net", Callee: "sip:alice@test.example",
			CalleeCredentialID: alice, StartedAt: e.now},
	})
	x.ok(200, "GET", "/v1/calls?credential_id="+alice+"&page[size]=1", "")
	x.ok(200, "GET", "/v1/calls", "")
	x.ok(400, "GET", "/v1/calls?page[after]=!!", "")

	// Bans.
	x.ok(200, "GET", "/v1/bans", "")
	for _, a := range []string{"203.0.113.7", "2001:db8:1:2::99"} {
		for range 3 {
			g.Failure(netip.MustParseAddr(a), "alice", "mismatch")
		}
	}
	x.ok(200, "GET", "/v1/bans?page[size]=1", "")
	x.ok(200, "GET", "/v1/bans", "")
	x.ok(400, "GET", "/v1/bans?page[after]=zz", "")
	x.ok(422, "DELETE", "/v1/bans/nope", "")
	x.ok(204, "DELETE", "/v1/bans/2001:db8:1:2::5", "")
	x.ok(404, "DELETE", "/v1/bans/2001:db8:1:2::5", "")

	// Log level.
	x.ok(200, "GET", "/v1/log-level", "")
	x.ok(400, "GET", "/v1/log-level?verbose=1", "")
	x.ok(200, "PUT", "/v1/log-level", `{"level":"debug"}`)
	x.refused(422, "PUT", "/v1/log-level", `{"level":"loud"}`)
	x.refused(422, "PUT", "/v1/log-level", `{}`)

	// Calls: hang up.
	x.ok(204, "DELETE", "/v1/calls/"+url.PathEscape("a84b4c76e66710@pc33;1928301774;314159"), "")
	x.ok(404, "DELETE", "/v1/calls/nope", "")

	// API keys and their scopes.
	x.refused(422, "POST", "/v1/api-keys", `{"name":"grafana","scope":"root"}`)
	x.refused(422, "POST", "/v1/api-keys", `{"scope":"read"}`)
	x.refused(400, "POST", "/v1/api-keys", `{"name":"grafana","scope":"read","colour":1}`)
	var readKey, adminKey api.APIKey
	decodeData(t, x.ok(201, "POST", "/v1/api-keys", `{"name":"grafana","scope":"read"}`), &readKey)
	decodeData(t, x.ok(201, "POST", "/v1/api-keys", `{"name":"ops","scope":"admin"}`), &adminKey)
	x.ok(200, "GET", "/v1/api-keys", "")
	x.call(200, readKey.Key, "GET", "/v1/credentials", "", false)
	x.call(403, readKey.Key, "POST", "/v1/credentials", `{"username":"erin","password":"correct-horse-battery"}`, false)
	x.call(403, readKey.Key, "GET", "/v1/backup", "", false)
	x.call(403, readKey.Key, "GET", "/v1/api-keys", "", false)
	x.call(403, readKey.Key, "DELETE", "/v1/api-keys/"+readKey.ID, "", false)
	x.call(409, adminKey.Key, "DELETE", "/v1/api-keys/"+adminKey.ID, "", false)
	x.call(204, adminKey.Key, "DELETE", "/v1/api-keys/"+readKey.ID, "", false)
	x.call(401, readKey.Key, "GET", "/v1/credentials", "", false)
	x.ok(404, "DELETE", "/v1/api-keys/"+readKey.ID, "")

	// Backup, export, import.
	x.ok(200, "GET", "/v1/backup", "")
	x.ok(400, "GET", "/v1/backup?full=1", "")
	x.ok(200, "GET", "/v1/export", "")
	x.ok(400, "GET", "/v1/export?x=1", "")
	x.ok(201, "POST", "/v1/import", `{"username":"kam1","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}`+"\n"+
		`{"username":"kam2","realm":"`+testRealm+`","ha1":{"MD5":"939E7578ED9E3C518A452ACEE763BCE9"},"enabled":false,"tag":"kamailio"}`+"\n")
	x.refused(422, "POST", "/v1/import", `{"username":"kam3","ha1":{"MD5":"abc"}}`)
	x.refused(422, "POST", "/v1/import", `{"username":"kam3","ha1":{}}`)
	x.refused(400, "POST", "/v1/import", `{"username":"kam3","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"},"password":"x"}`)
	x.refused(422, "POST", "/v1/import", "")
	x.ok(409, "POST", "/v1/import", `{"username":"kam3","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}`+"\n"+`{"username":"kam1","ha1":{"MD5":"939e7578ed9e3c518a452acee763bce9"}}`)
	x.ok(200, "GET", "/v1/export", "")

	// Deletes last.
	x.ok(204, "DELETE", "/v1/numbers/15551234567", "")
	x.ok(204, "DELETE", "/v1/credentials/"+bob, "")
	x.ok(404, "DELETE", "/v1/credentials/"+bob, "")
	x.ok(204, "DELETE", "/v1/credentials/"+alice, "")
	x.ok(204, "DELETE", "/v1/connections/"+conn, "")

	// A server without tokens, log level or calls, that blocks addresses
	// after failed keys.
	g2 := banGuard(&now)
	e2 := newEnv(t, func(c *api.Config) { c.KeyAttempts = g2 })
	x2 := &answers{e: e2, a: checker}
	x2.call(404, "", "GET", "/v1/jwks", "", false)
	x2.ok(404, "POST", "/v1/credentials/nope/token", "")
	x2.ok(404, "GET", "/v1/log-level", "")
	x2.ok(404, "PUT", "/v1/log-level", `{"level":"debug"}`)
	for range 3 {
		x2.call(401, "swk_nope_nope", "GET", "/v1/credentials", "", false)
	}
	x2.call(429, "swk_nope_again", "GET", "/v1/credentials", "", false)
	x2.call(429, "swk_nope_again", "POST", "/v1/credentials", `{"username":"dave","password":"correct-horse-battery"}`, false)

	for _, p := range slices.Sorted(maps.Keys(checker.ops)) {
		if !checker.seen[p] {
			t.Errorf("%s was never answered with a 2xx here: drive it", p)
		}
	}
}
