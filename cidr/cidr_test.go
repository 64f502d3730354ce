package cidr

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7": "192.0.2.7/32", "192.0.2.7/24": "192.0.2.0/24", "::ffff:192.0.2.1": "192.0.2.1/32",
		"::ffff:192.0.2.0/120": "192.0.2.0/24", "2001:db8::1": "2001:db8::1/128", " 10.0.0.0/8 ": "10.0.0.0/8",
	} {
		p, err := Parse(in)
		if err != nil || p.String() != want {
			t.Errorf("Parse(%q): got %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/40", "fe80::1%eth0", "x", "10.0.0.1/-1"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
