package sipuri_test

import (
	"testing"

	"github.com/sipwarden/sipwarden/sipuri"
)

func TestParseHop(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sipuri.NextHop
		name bool
	}{
		{"sip:192.0.2.1", sipuri.NextHop{Host: "192.0.2.1", Port: 5060, Transport: "udp"}, false},
		{"sip:192.0.2.1:5080;transport=tcp", sipuri.NextHop{Host: "192.0.2.1", Port: 5080, Transport: "tcp", ExplicitPort: true}, false},
		{"sips:gw.example.net", sipuri.NextHop{Host: "gw.example.net", Port: 5061, Transport: "tls"}, true},
		{"sip:gw.example.net:5062", sipuri.NextHop{Host: "gw.example.net", Port: 5062, Transport: "udp", ExplicitPort: true}, true},
		{"sip:[2001:db8::1]:5060", sipuri.NextHop{Host: "2001:db8::1", Port: 5060, Transport: "udp", ExplicitPort: true}, false},
		{"sip:[2001:db8::1]", sipuri.NextHop{Host: "2001:db8::1", Port: 5060, Transport: "udp"}, false},
		{"sip:2001:db8::1", sipuri.NextHop{Host: "2001:db8::1", Port: 5060, Transport: "udp"}, false},
		{"sip:192.0.2.1:65535", sipuri.NextHop{Host: "192.0.2.1", Port: 65535, Transport: "udp", ExplicitPort: true}, false},
	} {
		got, err := sipuri.ParseHop(tc.in)
		if err != nil || got != tc.want || got.IsName() != tc.name {
			t.Errorf("ParseHop(%q) = %+v, %v (name %v); want %+v (name %v)", tc.in, got, err, got.IsName(), tc.want, tc.name)
		}
	}
	// A port is 1 to 65535 in digits, and an IPv6 address's bracket
	// closes on it: "sip:[::1]:99999" was host "::1]:99999".
	for _, bad := range []string{"http://x", "sip:u@h", "sip:h;transport=sctp", "sip:h:99999", "sip:",
		"sip:192.0.2.1:0", "sip:h:5060abc", "sip:h:+5060", "sip:h:", "sip:[::1]:99999", "sip:[::1", "sip:[::1]x",
		"sip:[192.0.2.1]", "sip:h:50:60"} {
		if _, err := sipuri.ParseHop(bad); err == nil {
			t.Errorf("ParseHop(%q) accepted", bad)
		}
	}
}

// An escaped Request-URI user is decoded for the lookups (RFC 3261
// 19.1.4) only when every decoded character may stand unescaped in a
// user part: a decoded CR, LF, space, '@' or '%' would go on into the
// Request-URI a gateway or PBX receives (header lines written by the
// caller, another host), so such a user stays as sent.
func TestUnescapeUser(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"bob", "bob"},
		{"%62ob", "bob"},
		{"%2B15551110001", "+15551110001"},
		{"a%3Bb", "a;b"},
		{"+1555%20SIP/2.0%0D%0AP-Asserted-Identity:%20x", "+1555%20SIP/2.0%0D%0AP-Asserted-Identity:%20x"},
		{"bob%40evil.example", "bob%40evil.example"},
		{"%0a", "%0a"},
		{"%2525", "%2525"},
		{"%zz", "%zz"},
		{"%C3%A9", "%C3%A9"},
	} {
		if got := sipuri.UnescapeUser(c.in); got != c.want {
			t.Errorf("UnescapeUser(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
