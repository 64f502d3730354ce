package store

import (
	"reflect"
	"testing"
	"time"
)

// TestDecodeConnectionFormat1: records written before allowed_cidrs
// existed (format 1) decode with none, and are rewritten in the latest
// format.
func TestDecodeConnectionFormat1(t *testing.T) {
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	e := encoder{}
	e.byte(1)
	e.str("trunk-1")
	e.str("Trunk")
	e.bool(true)
	e.time(t1)
	e.time(t1)
	var c Connection
	if err := decodeConnection(&c, e.b); err != nil {
		t.Fatalf("decode format 1: %v", err)
	}
	want := Connection{ID: "trunk-1", Name: "Trunk", Active: true, CreatedAt: t1, UpdatedAt: t1}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	// Format 1 with trailing bytes is still corrupt.
	if err := decodeConnection(&c, append(e.b, 0)); err == nil {
		t.Fatal("format 1 with a trailing byte decoded")
	}
	// The latest format carries the list.
	want.AllowedCIDRs = []string{"192.0.2.0/24", "2001:db8::/32"}
	// Format 2: the latest without the trailing PublicTargets (an empty
	// list is one zero count byte), the six fields of format 4 (four
	// empty strings and two zeros: six zero bytes) and the three of format
	// 5 (an empty list and two empty strings: three zero bytes) and the
	// four of format 6 (four zero bytes).
	v2 := appendConnection(nil, &want)
	v2 = append([]byte{2}, v2[1:len(v2)-14]...)
	if err := decodeConnection(&c, v2); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("format 2: got %+v, %v; want %+v", c, err, want)
	}
	want.PublicTargets = []string{"sales", "+15550100"}
	// Format 3: without the fields of formats 4 to 6.
	v3 := appendConnection(nil, &want)
	v3 = append([]byte{3}, v3[1:len(v3)-13]...)
	if err := decodeConnection(&c, v3); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("format 3: got %+v, %v; want %+v", c, err, want)
	}
	want.Kind, want.PBXURI, want.CallerIDPolicy = ConnectionIP, "sip:192.0.2.1", CallerIDAny
	want.SIPURICallingPreference, want.MaxCalls, want.MaxRegistrations = URICallingDisabled, 7, 1_000_000
	// Format 4: without the fields of formats 5 and 6.
	v4 := appendConnection(nil, &want)
	v4 = append([]byte{4}, v4[1:len(v4)-7]...)
	if err := decodeConnection(&c, v4); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("format 4: got %+v, %v; want %+v", c, err, want)
	}
	want.OutboundRoutes = []OutboundRoute{{Prefix: "+1", Gateways: []string{"sip:a", "sip:b"}}, {Gateways: []string{"sip:c"}}}
	want.GatewayUsername, want.GatewayPassword = "gw-user", "gw-pass"
	// Format 5: without the four webhook fields (four zero bytes).
	v5 := appendConnection(nil, &want)
	v5 = append([]byte{5}, v5[1:len(v5)-4]...)
	if err := decodeConnection(&c, v5); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("format 5: got %+v, %v; want %+v", c, err, want)
	}
	want.WebhookEventURL, want.WebhookEventFailoverURL = "https://hooks.example/a", "https://hooks.example/b"
	want.WebhookTimeoutSecs, want.WebhookSecret = 7, "whsec_x"
	v := appendConnection(nil, &want)
	if v[0] != connectionFormat || connectionFormat != 6 {
		t.Fatalf("format byte %d, want 6", v[0])
	}
	if err := decodeConnection(&c, v); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("round trip: got %+v, %v; want %+v", c, err, want)
	}
}

// TestDecodeCredentialFormat1: credentials written before tokens_not_before
// existed decode with the zero time.
func TestDecodeCredentialFormat1(t *testing.T) {
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	want := Credential{ID: "c1", ConnectionID: DefaultConnectionID, Username: "alice", Enabled: true, Realm: "r",
		HA1: map[string]string{"MD5": "aa"}, CreatedAt: t1, UpdatedAt: t1}
	v := appendCredential(nil, &want)
	if v[0] != 2 {
		t.Fatalf("format byte %d, want 2", v[0])
	}
	// Format 1: the same bytes without the trailing TokensNotBefore.
	old := append([]byte{1}, v[1:len(v)-len(appendTime(nil, time.Time{}))]...)
	var c Credential
	if err := decodeCredential(&c, old); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("format 1: got %+v, %v; want %+v", c, err, want)
	}
	want.TokensNotBefore = t1
	if err := decodeCredential(&c, appendCredential(nil, &want)); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("round trip: got %+v, %v", c, err)
	}
}

// TestDecodeBindingsFormat1: bindings written before token_issued_at
// existed decode with the zero time (registered with a password).
func TestDecodeBindingsFormat1(t *testing.T) {
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	b := Binding{ID: "b1", AOR: "alice", CredentialID: "c1", Contact: "<sip:alice@192.0.2.1>", Source: "192.0.2.1:5060",
		Transport: "udp", CallID: "x", CSeq: 7, Expires: t1, RegisteredAt: t1, UpdatedAt: t1}
	v := appendBindings(nil, "alice", []Binding{b, b})
	if v[0] != 2 {
		t.Fatalf("format byte %d, want 2", v[0])
	}
	// Format 1: each binding without its trailing TokenIssuedAt.
	zero := len(appendTime(nil, time.Time{}))
	one := appendBindings(nil, "alice", []Binding{b})
	per := len(one) - len(appendBindings(nil, "alice", nil)) // one binding's bytes
	head := len(v) - 2*per
	old := append([]byte{1}, v[1:head]...)
	old = append(old, v[head:head+per-zero]...)
	old = append(old, v[head+per:head+2*per-zero]...)
	got, err := decodeBindings(nil, old, nil)
	if err != nil || len(got) != 2 || !reflect.DeepEqual(got[1], b) {
		t.Fatalf("format 1: got %+v, %v; want two of %+v", got, err, b)
	}
	b.TokenIssuedAt = t1
	if got, err := decodeBindings(nil, appendBindings(nil, "alice", []Binding{b}), nil); err != nil || !reflect.DeepEqual(got[0], b) {
		t.Fatalf("round trip: got %+v, %v", got, err)
	}
}

func appendTime(b []byte, t time.Time) []byte {
	e := encoder{b}
	e.time(t)
	return e.b
}

// TestDecodeAPIKeyFormat1: keys written before scopes existed decode as
// admin keys (every key was one).
func TestDecodeAPIKeyFormat1(t *testing.T) {
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	e := encoder{}
	e.byte(1)
	e.str("k1")
	e.str("admin")
	e.bytes([]byte{1, 2})
	e.time(t1)
	var k APIKey
	if err := decodeAPIKey(&k, e.b); err != nil {
		t.Fatalf("decode format 1: %v", err)
	}
	want := APIKey{ID: "k1", Name: "admin", Hash: []byte{1, 2}, CreatedAt: t1, Scope: ScopeAdmin}
	if !reflect.DeepEqual(k, want) {
		t.Fatalf("got %+v, want %+v", k, want)
	}
	want.Scope = ScopeRead
	v := appendAPIKey(nil, &want)
	if v[0] != 2 {
		t.Fatalf("format byte %d, want 2", v[0])
	}
	if err := decodeAPIKey(&k, v); err != nil || !reflect.DeepEqual(k, want) {
		t.Fatalf("round trip: got %+v, %v; want %+v", k, err, want)
	}
}
