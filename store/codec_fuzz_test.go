package store

import (
	"reflect"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary values to the record decoders: they must not
// panic or allocate beyond what the value can hold, and what they accept
// must encode and decode back to the same record. Values come from the
// file, so a damaged file is their input. White-box: the decoders are not
// exported.
func FuzzDecode(f *testing.F) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Add(appendCredential(nil, &Credential{
		ID: "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", ConnectionID: DefaultConnectionID, Username: "alice", Enabled: true,
		Realm: "example.com", HA1: map[string]string{"MD5": "aa", "SHA-256": "bb"}, Algorithms: []string{"MD5"},
		CreatedAt: now, UpdatedAt: now,
	}))
	f.Add(appendBindings(nil, "alice", []Binding{{ID: "b1", Contact: "<sip:alice@192.0.2.1>", CSeq: 7, Expires: now}, {ID: "b2"}}))
	f.Add(appendConnection(nil, &Connection{ID: DefaultConnectionID, Name: "default", Active: true, CreatedAt: now}))
	f.Add(appendConnection(nil, &Connection{ID: "c", Name: "pbx", Active: true, AllowedCIDRs: []string{"192.0.2.0/24", "2001:db8::/32"}}))
	f.Add(appendAPIKey(nil, &APIKey{ID: "k", Name: "admin", Hash: []byte{1, 2, 3}, CreatedAt: now}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, v []byte) {
		var c Credential
		if decodeCredential(&c, v) == nil {
			var again Credential
			if err := decodeCredential(&again, appendCredential(nil, &c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("credential %+v re-decoded as %+v, %v", c, again, err)
			}
		}
		if bs, err := decodeBindings(nil, v, nil); err == nil {
			aor := ""
			if len(bs) > 0 {
				aor = bs[0].AOR
			}
			again, err := decodeBindings(nil, appendBindings(nil, aor, bs), newInterner(2))
			if err != nil || !reflect.DeepEqual(again, bs) {
				t.Fatalf("bindings %+v re-decoded as %+v, %v", bs, again, err)
			}
		}
		var conn Connection
		if decodeConnection(&conn, v) == nil {
			var again Connection
			if err := decodeConnection(&again, appendConnection(nil, &conn)); err != nil || !reflect.DeepEqual(again, conn) {
				t.Fatalf("connection %+v re-decoded as %+v, %v", conn, again, err)
			}
		}
		var k APIKey
		if decodeAPIKey(&k, v) == nil {
			var again APIKey
			if err := decodeAPIKey(&again, appendAPIKey(nil, &k)); err != nil || !reflect.DeepEqual(again, k) {
				t.Fatalf("api key %+v re-decoded as %+v, %v", k, again, err)
			}
		}
	})
}
