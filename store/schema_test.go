package store

import (
	"reflect"
	"testing"
	"time"
)

// decodeBindings reads the value in place (bbolt's memory): nothing it
// returns may point into it. Overwriting the value after decoding must not
// change a decoded binding.
func TestDecodeBindingsCopiesOut(t *testing.T) {
	now := time.Unix(1_800_000_000, 5).UTC()
	set := []Binding{
		{ID: "b1", CredentialID: "c1", Contact: "<sip:alice@192.0.2.1:5060>", Source: "192.0.2.1:5060", Transport: "udp",
			LocalAddr: "203.0.113.1:5060", CallID: "call-1", CSeq: 7, Expires: now, UserAgent: "Zoiper 5", InstanceID: "<urn:uuid:1>",
			RegID: "1", RegisteredAt: now, UpdatedAt: now},
		{ID: "b2", CredentialID: "c1", Contact: "<sip:alice@192.0.2.2:5070;transport=tcp>", Source: "192.0.2.2:40000", Transport: "tcp",
			LocalAddr: "203.0.113.1:5060", CallID: "call-2", CSeq: 1, Expires: now, UserAgent: "baresip", RegisteredAt: now, UpdatedAt: now},
	}
	for _, in := range []*interner{nil, newInterner(1)} {
		v := appendBindings(nil, "alice", set)
		got, err := decodeBindings(nil, v, in)
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			v[i] = 'x'
		}
		for i := range set {
			want := set[i]
			want.AOR = "alice"
			if !reflect.DeepEqual(got[i], want) {
				t.Fatalf("binding %d after the value was overwritten:\n got %+v\nwant %+v", i, got[i], want)
			}
		}
	}
}
