package registrar

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/store"
)

// stillBound: a retransmitted REGISTER is answered 200 only when what it
// binds is still bound from its source, and what it removes is gone.
func TestStillBound(t *testing.T) {
	con := func(uri string, expires time.Duration) contact {
		var u sip.Uri
		if err := sip.ParseUri(uri, &u); err != nil {
			t.Fatal(err)
		}
		return contact{uri: u.String(), key: keyOf(&u), expires: expires}
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "example.com"})
	req.SetSource("192.0.2.7:5060")
	req.SetTransport("UDP")
	phone := con("sip:bob@192.0.2.7:5060", time.Hour)
	made := store.Binding{Contact: phone.uri, CallID: "c1", CSeq: 2, Source: "192.0.2.7:5060", Transport: "udp"}
	other := store.Binding{Contact: "sip:bob@198.51.100.1:5060", CallID: "c9", CSeq: 7, Source: "198.51.100.1:5060", Transport: "udp"}
	with := func(mod func(*store.Binding)) []store.Binding {
		b := made
		mod(&b)
		return []store.Binding{b}
	}
	cases := []struct {
		name string
		cur  []store.Binding
		cs   []contact
		want bool
	}{
		{"the binding it made", []store.Binding{made}, []contact{phone}, true},
		{"the binding it made, among others", []store.Binding{other, made}, []contact{phone}, true},
		{"a query", []store.Binding{other}, nil, true},
		{"gone since", nil, []contact{phone}, false},
		{"refreshed since", with(func(b *store.Binding) { b.CSeq = 3 }), []contact{phone}, true},
		{"refreshed since with another Call-ID", with(func(b *store.Binding) { b.CallID = "c2" }), []contact{phone}, true},
		{"another contact since", with(func(b *store.Binding) { b.Contact = "sip:bob@192.0.2.7:5062" }), []contact{phone}, false},
		{"from another source", with(func(b *store.Binding) { b.Source = "203.0.113.5:5060" }), []contact{phone}, false},
		{"over another transport", with(func(b *store.Binding) { b.Transport = "tcp" }), []contact{phone}, false},
		{"a removal of what is gone", []store.Binding{other}, []contact{con("sip:bob@192.0.2.7:5060", 0)}, true},
		{"a removal of what is there", []store.Binding{made}, []contact{con("sip:bob@192.0.2.7:5060", 0)}, false},
		{"a wildcard, nothing left", nil, []contact{{uri: "*"}}, true},
		{"a wildcard, a binding since", []store.Binding{other}, []contact{{uri: "*"}}, false},
	}
	for _, c := range cases {
		if got := stillBound(c.cur, c.cs, req, "c1"); got != c.want {
			t.Errorf("%s: stillBound = %t, want %t", c.name, got, c.want)
		}
	}
}
