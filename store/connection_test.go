package store_test

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

func TestConnectionCRUD(t *testing.T) {
	clk := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := open(t, store.Options{Now: clk.now})

	c, err := db.CreateConnection(store.Connection{Name: "trunk", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if !uuidV7.MatchString(c.ID) || !c.CreatedAt.Equal(clk.t) || !c.UpdatedAt.Equal(clk.t) {
		t.Fatalf("created %+v, want a UUIDv7 ID and both times %v", c, clk.t)
	}
	got, err := db.Connection(c.ID)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("Connection = %+v, %v; want %+v", got, err, c)
	}

	clk.t = clk.t.Add(time.Minute)
	sentinel := errors.New("refused")
	tests := []struct {
		name    string
		id      string
		fn      func(*store.Connection) error
		wantErr error
		want    store.Connection
	}{
		{"rename", c.ID, func(x *store.Connection) error { x.Name = "renamed"; return nil }, nil,
			store.Connection{ID: c.ID, Name: "renamed", Active: true, CreatedAt: c.CreatedAt, UpdatedAt: clk.t}},
		{"id and created at are kept", c.ID, func(x *store.Connection) error {
			x.ID, x.CreatedAt, x.Active = "other", time.Time{}, false
			return nil
		}, nil, store.Connection{ID: c.ID, Name: "renamed", Active: false, CreatedAt: c.CreatedAt, UpdatedAt: clk.t}},
		{"fn sets updated at", c.ID, func(x *store.Connection) error { x.UpdatedAt = clk.t.Add(time.Hour); return nil }, nil,
			store.Connection{ID: c.ID, Name: "renamed", Active: false, CreatedAt: c.CreatedAt, UpdatedAt: clk.t.Add(time.Hour)}},
		{"fn error aborts", c.ID, func(x *store.Connection) error { x.Name = "lost"; return sentinel }, sentinel,
			store.Connection{ID: c.ID, Name: "renamed", Active: false, CreatedAt: c.CreatedAt, UpdatedAt: clk.t.Add(time.Hour)}},
		{"missing", "nope", func(*store.Connection) error { return nil }, store.ErrNotFound,
			store.Connection{ID: c.ID, Name: "renamed", Active: false, CreatedAt: c.CreatedAt, UpdatedAt: clk.t.Add(time.Hour)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ret, err := db.UpdateConnection(tc.id, tc.fn)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("UpdateConnection: got %v, want %v", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(ret, tc.want) {
				t.Errorf("UpdateConnection returned %+v, want %+v", ret, tc.want)
			}
			if got, err := db.Connection(c.ID); err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("stored %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := db.Connection("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Connection(missing): got %v, want ErrNotFound", err)
	}
	mustCheck(t, db)
}

func TestCreateConnectionWithID(t *testing.T) {
	db := open(t, store.Options{})
	tests := []struct {
		id      string
		wantErr error
	}{
		{"trunk-a", nil},
		{"trunk-a", store.ErrExists},
		{store.DefaultConnectionID, store.ErrExists},
		{"a\x00b", store.ErrInvalid},
		{string(make([]byte, 300)), store.ErrInvalid},
	}
	for _, tc := range tests {
		_, err := db.CreateConnection(store.Connection{ID: tc.id, Name: "x"})
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("CreateConnection(ID %q): got %v, want %v", tc.id, err, tc.wantErr)
		}
	}
}

func TestDeleteConnection(t *testing.T) {
	db := open(t, store.Options{})
	used, err := db.CreateConnection(store.Connection{Name: "used"})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := db.CreateConnection(store.Connection{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	// A connection whose ID is a prefix of the used one is not in use.
	prefix, err := db.CreateConnection(store.Connection{ID: used.ID[:10], Name: "prefix"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCredential(store.Credential{ConnectionID: used.ID, Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		wantErr error
	}{
		{"default", store.DefaultConnectionID, store.ErrDefaultConnection},
		{"missing", "nope", store.ErrNotFound},
		{"in use", used.ID, store.ErrConnectionInUse},
		{"empty", empty.ID, nil},
		{"empty again", empty.ID, store.ErrNotFound},
		{"prefix of one in use", prefix.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.DeleteConnection(tc.id); !errors.Is(err, tc.wantErr) {
				t.Fatalf("DeleteConnection: got %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := db.Connection(empty.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted connection: got %v, want ErrNotFound", err)
	}
	if _, err := db.Connection(used.ID); err != nil {
		t.Errorf("connection in use: got %v, want it kept", err)
	}
	// Once its credential is gone, the connection can go.
	cred, _ := db.CredentialByUsername("alice")
	if _, err := db.DeleteCredential(cred.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteConnection(used.ID); err != nil {
		t.Fatalf("DeleteConnection after its credential went: %v", err)
	}
	mustCheck(t, db)
}

func TestConnectionsPages(t *testing.T) {
	db := open(t, store.Options{})
	want := []string{store.DefaultConnectionID}
	for range 7 {
		c, err := db.CreateConnection(store.Connection{Name: "c"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, c.ID)
	}
	for _, limit := range []int{1, 2, 3, 8, 100} {
		var got []string
		after, pages := "", 0
		for {
			cs, next, err := db.Connections(store.Page{After: after, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range cs {
				got = append(got, c.ID)
			}
			if next == "" {
				break
			}
			if len(cs) != limit {
				t.Fatalf("limit %d: page of %d with a next cursor", limit, len(cs))
			}
			after = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, want)
		}
		if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}
}

func TestNumbersAndPeers(t *testing.T) {
	db := open(t, store.Options{NoSync: true})
	carrier, err := db.CreateConnection(store.Connection{Name: "carrier", Active: true, Kind: store.ConnectionIP,
		AllowedCIDRs: []string{"127.0.0.0/8", "127.0.0.9/32"}})
	if err != nil {
		t.Fatal(err)
	}
	wide, err := db.CreateConnection(store.Connection{Name: "wide", Active: true, Kind: store.ConnectionIP,
		AllowedCIDRs: []string{"127.0.0.9/32"}})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "alice", Enabled: true,
		Realm: "r", HA1: map[string]string{"MD5": "aa"}})
	if err != nil {
		t.Fatal(err)
	}
	// The most specific prefix wins; an inactive connection is no peer.
	if c, ok := db.PeerConnection(netip.MustParseAddr("127.0.0.9")); !ok || c.ID != carrier.ID && c.ID != wide.ID {
		t.Fatalf("PeerConnection(127.0.0.9) = %v, %v", c.ID, ok)
	}
	if c, ok := db.PeerConnection(netip.MustParseAddr("127.0.0.2")); !ok || c.ID != carrier.ID {
		t.Fatalf("PeerConnection(127.0.0.2) = %v, %v; want %v", c.ID, ok, carrier.ID)
	}
	if _, err := db.UpdateConnection(carrier.ID, func(c *store.Connection) error { c.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if c, ok := db.PeerConnection(netip.MustParseAddr("127.0.0.2")); ok {
		t.Fatalf("PeerConnection(127.0.0.2) = %v after deactivation, want none", c.ID)
	}
	if _, ok := db.PeerConnection(netip.MustParseAddr("::ffff:127.0.0.9")); !ok {
		t.Fatal("a v4-mapped address did not match its v4 prefix")
	}

	// Numbers: references checked, lookups from memory follow writes.
	if _, err := db.CreateNumber(store.Number{Number: "+15550001", ConnectionID: "nope"}); !errors.Is(err, store.ErrConnectionNotFound) {
		t.Fatalf("unknown connection: %v, want ErrConnectionNotFound", err)
	}
	if _, err := db.CreateNumber(store.Number{Number: "+15550001", ConnectionID: carrier.ID, CredentialID: cred.ID}); !errors.Is(err, store.ErrCredentialNotFound) {
		t.Fatalf("credential of another connection: %v, want ErrCredentialNotFound", err)
	}
	if _, err := db.CreateNumber(store.Number{Number: "+15550001", ConnectionID: store.DefaultConnectionID, CredentialID: cred.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateNumber(store.Number{Number: "+15550001", ConnectionID: carrier.ID}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second assignment: %v, want ErrExists", err)
	}
	if a, ok := db.AssignedNumber("+15550001"); !ok || a.Username != "alice" || a.CredentialID != cred.ID {
		t.Fatalf("AssignedNumber = %+v, %v; want alice's", a, ok)
	}
	if _, err := db.CreateNumber(store.Number{Number: "+15550002", ConnectionID: carrier.ID}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteConnection(carrier.ID); !errors.Is(err, store.ErrConnectionInUse) {
		t.Fatalf("DeleteConnection with a number: %v, want ErrConnectionInUse", err)
	}
	ns, next, err := db.Numbers(store.NumberFilter{}, store.Page{Limit: 1})
	if err != nil || len(ns) != 1 || ns[0].Number != "+15550001" || next != "+15550001" {
		t.Fatalf("Numbers page 1 = %+v, %q, %v", ns, next, err)
	}
	ns, next, err = db.Numbers(store.NumberFilter{}, store.Page{After: next, Limit: 1})
	if err != nil || len(ns) != 1 || ns[0].Number != "+15550002" || next != "" {
		t.Fatalf("Numbers page 2 = %+v, %q, %v", ns, next, err)
	}
	// Patterns: the longest matching one, after an exact number.
	for _, n := range []string{"+1555*", "+155500*"} {
		if _, err := db.CreateNumber(store.Number{Number: n, ConnectionID: carrier.ID}); err != nil {
			t.Fatal(err)
		}
	}
	for num, want := range map[string]string{"+15559999": "+1555*", "+15550077": "+155500*", "+15550002": "+15550002", "+16660000": ""} {
		a, ok := db.AssignedNumber(num)
		if a.Number != want || ok != (want != "") {
			t.Errorf("AssignedNumber(%s) = %q, %v; want %q", num, a.Number, ok, want)
		}
	}
	for _, n := range []string{"+1555*", "+155500*"} {
		if err := db.DeleteNumber(n); err != nil {
			t.Fatal(err)
		}
	}
	// Deleting the credential leaves its number with the connection.
	if _, err := db.DeleteCredential(cred.ID); err != nil {
		t.Fatal(err)
	}
	if a, ok := db.AssignedNumber("+15550001"); !ok || a.CredentialID != "" || a.Username != "" {
		t.Fatalf("after credential delete: %+v, %v", a, ok)
	}
	if err := db.DeleteNumber("+15550001"); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.AssignedNumber("+15550001"); ok {
		t.Fatal("deleted number still assigned")
	}
	mustCheck(t, db)
}
