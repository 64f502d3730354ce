package auth

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestURIMatches(t *testing.T) {
	server := func(h string) bool { return h == "127.0.0.1" || h == "sipwarden.test" }
	var ruri sip.Uri
	if err := sip.ParseUri("sip:bob@sipwarden.test;transport=tcp", &ruri); err != nil {
		t.Fatal(err)
	}
	for du, want := range map[string]bool{
		"sip:bob@sipwarden.test":               true,
		"sip:bob@sipwarden.test?x=y":           true,
		"sip:bob@sipwarden.testx":              false,
		"sip:bobby@sipwarden.test":             false,
		"sips:bob@sipwarden.test":              false,
		"sip:bob@SIPWARDEN.TEST:5060":          true,
		"sip:bob@sipwarden.test;transport=udp": true,
		"sip:carol@sipwarden.test":             false,
		"sip:bob@elsewhere.test":               false,
		"sip:bob@sipwarden.test:5070":          false,
		"sip:127.0.0.1:5060":                   true, // sipp: the server, no user
		"sip:198.51.100.7":                     false,
		"tel:+15551234567":                     false,
		"garbage":                              false,
		"":                                     false,
	} {
		if got := uriMatches(du, &ruri, server); got != want {
			t.Errorf("uriMatches(%q, %s) = %v, want %v", du, ruri.String(), got, want)
		}
	}
}

// BenchmarkURIMatches is the cost the digest uri check adds to every
// authenticated request (issue 15: a few hundred nanoseconds at most).
func BenchmarkURIMatches(b *testing.B) {
	var ruri sip.Uri
	if err := sip.ParseUri("sip:bob@sipwarden.test:5060", &ruri); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !uriMatches("sip:bob@sipwarden.test:5060", &ruri, nil) {
			b.Fatal("no match")
		}
	}
}
