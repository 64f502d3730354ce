package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/guard"
)

type errorBody struct {
	Errors []struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Source struct {
			Pointer   string `json:"pointer"`
			Parameter string `json:"parameter"`
		} `json:"source"`
	} `json:"errors"`
}

func decodeErrors(t *testing.T, raw []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(raw, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an error body: %s (%v)", raw, err)
	}
	return e
}

func TestConnectionAllowedCIDRs(t *testing.T) {
	e := newEnv(t)
	var c api.Connection
	e.ok(201, "POST", "/v1/connections", map[string]any{"name": "pbx", "allowed_cidrs": []string{"192.0.2.7", "10.1.2.3/8", "2001:db8::/32", "10.0.0.0/8"}}, &c)
	want := []string{"192.0.2.7/32", "10.0.0.0/8", "2001:db8::/32"}
	if fmt.Sprint(c.AllowedCIDRs) != fmt.Sprint(want) {
		t.Fatalf("allowed_cidrs: got %v, want %v (canonical, no duplicates)", c.AllowedCIDRs, want)
	}
	var got api.Connection
	e.ok(200, "GET", "/v1/connections/"+c.ID, nil, &got)
	if fmt.Sprint(got.AllowedCIDRs) != fmt.Sprint(want) {
		t.Fatalf("stored allowed_cidrs: got %v, want %v", got.AllowedCIDRs, want)
	}
	// Validation names each bad entry.
	rec := e.do("POST", "/v1/connections", map[string]any{"name": "x", "allowed_cidrs": []string{"10.0.0.0/8", "10.0.0.0/33", "example.com"}})
	if rec.Code != 422 {
		t.Fatalf("bad CIDRs: got %d, want 422: %s", rec.Code, rec.Body)
	}
	eb := decodeErrors(t, rec.Body.Bytes())
	if len(eb.Errors) != 2 || eb.Errors[0].Source.Pointer != "/allowed_cidrs/1" || eb.Errors[1].Source.Pointer != "/allowed_cidrs/2" ||
		eb.Errors[0].Code != api.CodeInvalidValue || !strings.Contains(eb.Errors[0].Detail, "allowed_cidrs[1]") {
		t.Fatalf("bad CIDRs: got %s, want invalid_value at /allowed_cidrs/1 and /2", rec.Body)
	}
	if rec := e.do("POST", "/v1/connections", `{"name":"x","allowed_cidrs":"10.0.0.0/8"}`); rec.Code != 400 || !strings.Contains(rec.Body.String(), "/allowed_cidrs") {
		t.Fatalf("wrong type: got %d %s, want 400 naming /allowed_cidrs", rec.Code, rec.Body)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.%d.0/24", i)
	}
	if rec := e.do("POST", "/v1/connections", map[string]any{"name": "x", "allowed_cidrs": many}); rec.Code != 422 {
		t.Fatalf("101 entries: got %d, want 422", rec.Code)
	}
	// PATCH replaces, leaves alone when absent, clears with null or [].
	e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"allowed_cidrs": []string{"198.51.100.0/24"}}, &got)
	if fmt.Sprint(got.AllowedCIDRs) != "[198.51.100.0/24]" {
		t.Fatalf("after PATCH: got %v", got.AllowedCIDRs)
	}
	e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"name": "renamed"}, &got)
	if fmt.Sprint(got.AllowedCIDRs) != "[198.51.100.0/24]" {
		t.Fatalf("PATCH without allowed_cidrs changed it: %v", got.AllowedCIDRs)
	}
	rec = e.do("PATCH", "/v1/connections/"+c.ID, map[string]any{"allowed_cidrs": []string{"bad"}})
	if rec.Code != 422 || !strings.Contains(rec.Body.String(), "/allowed_cidrs/0") {
		t.Fatalf("PATCH bad: got %d %s", rec.Code, rec.Body)
	}
	for _, clear := range []string{`{"allowed_cidrs":null}`, `{"allowed_cidrs":[]}`} {
		e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"allowed_cidrs": []string{"198.51.100.0/24"}}, nil)
		e.ok(200, "PATCH", "/v1/connections/"+c.ID, clear, &got)
		if got.AllowedCIDRs == nil || len(got.AllowedCIDRs) != 0 {
			t.Fatalf("after %s: got %#v, want []", clear, got.AllowedCIDRs)
		}
	}
}

// TestIPConnectionCIDRsNotTooBroad: an ip connection's addresses are
// trusted without a password; 0.0.0.0/0 would trust everybody. A
// credential connection's allow-list only narrows, so it may be broad.
func TestIPConnectionCIDRsNotTooBroad(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ cidr, ptr string }{
		{"0.0.0.0/0", "/allowed_cidrs/1"}, {"128.0.0.0/1", "/allowed_cidrs/1"}, {"10.0.0.0/7", "/allowed_cidrs/1"},
		{"::/0", "/allowed_cidrs/1"}, {"2001:db8::/31", "/allowed_cidrs/1"},
	} {
		rec := e.do("POST", "/v1/connections", map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"192.0.2.1", tc.cidr}})
		if rec.Code != 422 {
			t.Fatalf("ip connection with %s: got %d, want 422: %s", tc.cidr, rec.Code, rec.Body)
		}
		eb := decodeErrors(t, rec.Body.Bytes())
		if len(eb.Errors) != 1 || eb.Errors[0].Source.Pointer != tc.ptr || !strings.Contains(eb.Errors[0].Detail, "too broad") {
			t.Fatalf("ip connection with %s: got %s, want invalid_value at %s", tc.cidr, rec.Body, tc.ptr)
		}
	}
	var c api.Connection
	e.ok(201, "POST", "/v1/connections", map[string]any{"name": "carrier", "kind": "ip", "allowed_cidrs": []string{"10.0.0.0/8", "2001:db8::/32"}}, &c)
	rec := e.do("PATCH", "/v1/connections/"+c.ID, map[string]any{"allowed_cidrs": []string{"0.0.0.0/0"}})
	if rec.Code != 422 || !strings.Contains(rec.Body.String(), "/allowed_cidrs/0") {
		t.Fatalf("PATCH to 0.0.0.0/0: got %d %s, want 422 at /allowed_cidrs/0", rec.Code, rec.Body)
	}
	var got api.Connection
	e.ok(200, "GET", "/v1/connections/"+c.ID, nil, &got)
	if fmt.Sprint(got.AllowedCIDRs) != "[10.0.0.0/8 2001:db8::/32]" {
		t.Fatalf("refused PATCH changed allowed_cidrs: %v", got.AllowedCIDRs)
	}
	e.ok(201, "POST", "/v1/connections", map[string]any{"name": "users", "allowed_cidrs": []string{"0.0.0.0/0"}}, nil)
}

// public_targets: usernames and numbers, deduplicated, each bad entry
// named; PATCH replaces, leaves alone when absent, clears with null or [].
func TestConnectionPublicTargets(t *testing.T) {
	e := newEnv(t)
	var c api.Connection
	e.ok(201, "POST", "/v1/connections", map[string]any{"name": "web", "public_targets": []string{"sales", "+15550100", "sales"}}, &c)
	if fmt.Sprint(c.PublicTargets) != "[sales +15550100]" {
		t.Fatalf("public_targets: got %v, want [sales +15550100]", c.PublicTargets)
	}
	var got api.Connection
	e.ok(200, "GET", "/v1/connections/"+c.ID, nil, &got)
	if fmt.Sprint(got.PublicTargets) != "[sales +15550100]" {
		t.Fatalf("stored public_targets: got %v", got.PublicTargets)
	}
	rec := e.do("POST", "/v1/connections", map[string]any{"name": "x", "public_targets": []string{"ok", "bad target", ""}})
	if rec.Code != 422 {
		t.Fatalf("bad targets: got %d, want 422: %s", rec.Code, rec.Body)
	}
	eb := decodeErrors(t, rec.Body.Bytes())
	if len(eb.Errors) != 2 || eb.Errors[0].Source.Pointer != "/public_targets/1" || eb.Errors[1].Source.Pointer != "/public_targets/2" {
		t.Fatalf("bad targets: got %s, want errors at /public_targets/1 and /2", rec.Body)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	if rec := e.do("POST", "/v1/connections", map[string]any{"name": "x", "public_targets": many}); rec.Code != 422 {
		t.Fatalf("101 entries: got %d, want 422", rec.Code)
	}
	e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"name": "renamed"}, &got)
	if fmt.Sprint(got.PublicTargets) != "[sales +15550100]" {
		t.Fatalf("PATCH without public_targets changed it: %v", got.PublicTargets)
	}
	e.ok(200, "PATCH", "/v1/connections/"+c.ID, map[string]any{"public_targets": []string{"support"}}, &got)
	if fmt.Sprint(got.PublicTargets) != "[support]" {
		t.Fatalf("after PATCH: got %v", got.PublicTargets)
	}
	e.ok(200, "PATCH", "/v1/connections/"+c.ID, `{"public_targets":null}`, &got)
	if got.PublicTargets == nil || len(got.PublicTargets) != 0 {
		t.Fatalf("after null: got %#v, want []", got.PublicTargets)
	}
}

func banGuard(now *time.Time) *guard.Guard {
	return guard.New(guard.Config{MaxFailures: 3, BanDuration: 10 * time.Minute, Now: func() time.Time { return *now }})
}

func TestBans(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := banGuard(&now)
	e := newEnv(t, func(c *api.Config) { c.Bans = api.LocalBans{Guard: g} })
	var bans []api.Ban
	e.ok(200, "GET", "/v1/bans", nil, &bans)
	if len(bans) != 0 {
		t.Fatalf("bans: got %v, want none", bans)
	}
	for _, a := range []string{"203.0.113.7", "2001:db8:1:2::99", "198.51.100.3"} {
		for range 3 {
			g.Failure(netip.MustParseAddr(a), "alice", "mismatch")
		}
	}
	var page listResponse[api.Ban]
	rec := e.do("GET", "/v1/bans?page[size]=2", nil)
	if rec.Code != 200 {
		t.Fatalf("GET /v1/bans: %d %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Meta.NextCursor == nil || page.Data[0].IP != "198.51.100.3" || page.Data[1].IP != "203.0.113.7" {
		t.Fatalf("first page: got %s", rec.Body)
	}
	b := page.Data[1]
	if b.Prefix != "203.0.113.7/32" || b.Failures != 3 || !b.Since.Equal(now) || !b.Until.Equal(now.Add(10*time.Minute)) ||
		!strings.Contains(b.Reason, "mismatch") {
		t.Errorf("ban: got %+v", b)
	}
	e.ok(200, "GET", "/v1/bans?page[after]="+*page.Meta.NextCursor, nil, &bans)
	if len(bans) != 1 || bans[0].IP != "2001:db8:1:2::" || bans[0].Prefix != "2001:db8:1:2::/64" {
		t.Fatalf("second page: got %+v", bans)
	}
	// Lift: any address of the /64 lifts the IPv6 ban.
	e.ok(204, "DELETE", "/v1/bans/2001:db8:1:2::5", nil, nil)
	e.ok(204, "DELETE", "/v1/bans/203.0.113.7", nil, nil)
	if rec := e.do("DELETE", "/v1/bans/203.0.113.7", nil); rec.Code != 404 {
		t.Fatalf("second DELETE: got %d, want 404", rec.Code)
	}
	if v := g.Check(netip.MustParseAddr("203.0.113.7"), ""); v != guard.Allow {
		t.Fatalf("after DELETE the guard says %v", v)
	}
	rec = e.do("DELETE", "/v1/bans/not-an-ip", nil)
	if rec.Code != 422 {
		t.Fatalf("bad ip: got %d, want 422", rec.Code)
	}
	if eb := decodeErrors(t, rec.Body.Bytes()); eb.Errors[0].Source.Parameter != "ip" || eb.Errors[0].Code != api.CodeInvalidValue {
		t.Fatalf("bad ip: got %s, want invalid_value naming parameter ip", rec.Body)
	}
	if rec := e.do("GET", "/v1/bans?page[after]=zz", nil); rec.Code != 400 {
		t.Fatalf("bad cursor: got %d, want 400", rec.Code)
	}
	if rec := e.doKey("", "GET", "/v1/bans", nil); rec.Code != 401 {
		t.Fatalf("without a key: got %d, want 401", rec.Code)
	}
	e.ok(200, "GET", "/v1/bans", nil, &bans)
	if len(bans) != 1 || bans[0].IP != "198.51.100.3" {
		t.Fatalf("after lifting two: %+v", bans)
	}
}

func TestFailedKeyAttemptsBlocked(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := banGuard(&now)
	e := newEnv(t, func(c *api.Config) { c.KeyAttempts, c.Now = g, func() time.Time { return now } })
	from := func(addr, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/connections", nil)
		req.RemoteAddr = addr
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 3 {
		if rec := from("192.0.2.9:4000", "swk_nope_wrong"); rec.Code != 401 {
			t.Fatalf("attempt %d: got %d, want 401", i+1, rec.Code)
		}
	}
	rec := from("192.0.2.9:4001", "swk_nope_wrong_again")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "600" {
		t.Fatalf("blocked: got %d Retry-After %q, want 429 and 600", rec.Code, rec.Header().Get("Retry-After"))
	}
	if eb := decodeErrors(t, rec.Body.Bytes()); eb.Errors[0].Code != api.CodeTooManyAttempts {
		t.Fatalf("blocked: got %s", rec.Body)
	}
	// The right key from the blocked address is refused too, unchecked:
	// were it answered 200, a 429 would just mean "wrong key" and the
	// guessing would go on (it used to). Exempt addresses are the way not
	// to lock the operator out (TestKeyBlockExempt).
	if rec := from("192.0.2.9:4002", testAdminKey); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the right key from the blocked address: got %d, want 429", rec.Code)
	}
	// Keys are not counted while blocked: the block ends on time.
	for range 5 {
		from("192.0.2.9:4003", "swk_nope_wrong")
	}
	if rec := from("192.0.2.10:4000", testAdminKey); rec.Code != 200 {
		t.Fatalf("another address: got %d, want 200", rec.Code)
	}
	// Good keys never count.
	for range 10 {
		if rec := from("192.0.2.11:4000", testAdminKey); rec.Code != 200 {
			t.Fatalf("good key: got %d", rec.Code)
		}
	}
	now = now.Add(11 * time.Minute)
	if rec := from("192.0.2.9:4000", testAdminKey); rec.Code != 200 {
		t.Fatalf("after the block: got %d, want 200", rec.Code)
	}
}

func TestBodyTooLargeNamesLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxBodyBytes = 2048 })
	rec := e.do("POST", "/v1/connections", `{"name":"`+strings.Repeat("a", 4096)+`"}`)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), "2048 bytes") {
		t.Fatalf("got %d %s, want 413 naming 2048 bytes", rec.Code, rec.Body)
	}
}

// TestKeyBlockExempt: an address the guard exempts (guard.exempt_cidrs) is
// never blocked, however many wrong keys it sends, and its right key
// keeps working; its neighbour is blocked.
func TestKeyBlockExempt(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := guard.New(guard.Config{MaxFailures: 3, BanDuration: 10 * time.Minute, LongMaxFailures: -1,
		Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.9/32")}, Now: func() time.Time { return now }})
	e := newEnv(t, func(c *api.Config) { c.KeyAttempts, c.Now = g, func() time.Time { return now } })
	from := func(addr, key string) int {
		req := httptest.NewRequest("GET", "/v1/connections", nil)
		req.RemoteAddr = addr
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 10 {
		if code := from("192.0.2.9:4000", "swk_nope_wrong"); code != http.StatusUnauthorized {
			t.Fatalf("exempt address, wrong key %d: got %d, want 401", i+1, code)
		}
		from("192.0.2.10:4000", "swk_nope_wrong")
	}
	if code := from("192.0.2.9:4000", testAdminKey); code != http.StatusOK {
		t.Fatalf("exempt address, right key: got %d, want 200", code)
	}
	if code := from("192.0.2.10:4000", testAdminKey); code != http.StatusTooManyRequests {
		t.Fatalf("blocked neighbour, right key: got %d, want 429", code)
	}
}

// TestRequestsWithoutKeyNotCounted: a request that sends no key guesses
// none. Browsers and monitors send them by themselves (a browser's
// /apple-touch-icon.png, a load balancer's health check at the wrong
// path, an OPTIONS preflight): each used to count as a failed key, and
// ten of them blocked the operator's own address, his right key and the
// console included, for limits.api_key_block.
func TestRequestsWithoutKeyNotCounted(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := banGuard(&now)
	e := newEnv(t, func(c *api.Config) { c.KeyAttempts, c.Now = g, func() time.Time { return now } })
	send := func(method, path, key string) int {
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = "192.0.2.9:4000"
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec.Code
	}
	for range 10 {
		for _, r := range [][2]string{{"GET", "/apple-touch-icon.png"}, {"GET", "/v1/connections"}, {"OPTIONS", "/v1/credentials"}, {"POST", "/healthz"}} {
			if code := send(r[0], r[1], ""); code != http.StatusUnauthorized {
				t.Fatalf("%s %s without a key: got %d, want 401", r[0], r[1], code)
			}
		}
	}
	if code := send("GET", "/v1/connections", testAdminKey); code != http.StatusOK {
		t.Fatalf("the right key after requests without any: got %d, want 200", code)
	}
	// A wrong key still counts (banGuard blocks after 3).
	for range 3 {
		send("GET", "/v1/connections", "swk_nope_wrong")
	}
	if code := send("GET", "/v1/connections", testAdminKey); code != http.StatusTooManyRequests {
		t.Fatalf("after wrong keys: got %d, want 429", code)
	}
}
