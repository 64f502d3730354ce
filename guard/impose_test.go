package guard

import (
	"net/netip"
	"testing"
	"time"
)

func TestImpose(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g := New(Config{Now: func() time.Time { return now }, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	src := netip.MustParsePrefix("192.0.2.7/32")
	if !g.Impose(Ban{Source: src, Reason: "cluster", Since: now, Until: now.Add(time.Minute)}) {
		t.Fatal("Impose refused a live ban")
	}
	if v := g.Check(src.Addr(), ""); v != Reject {
		t.Errorf("Check after Impose: got %v, want reject", v)
	}
	// A shorter ban does not shorten the one held.
	g.Impose(Ban{Source: src, Since: now, Until: now.Add(time.Second)})
	if until, ok := g.Banned(src.Addr()); !ok || !until.Equal(now.Add(time.Minute)) {
		t.Errorf("Banned: got %v %v, want %v true", until, ok, now.Add(time.Minute))
	}
	cases := []struct {
		name string
		b    Ban
	}{
		{"over", Ban{Source: netip.MustParsePrefix("192.0.2.8/32"), Until: now}},
		{"exempt", Ban{Source: netip.MustParsePrefix("10.1.2.3/32"), Until: now.Add(time.Minute)}},
		{"not a source", Ban{Source: netip.MustParsePrefix("192.0.2.0/24"), Until: now.Add(time.Minute)}},
	}
	for _, c := range cases {
		if g.Impose(c.b) {
			t.Errorf("%s: Impose accepted %+v", c.name, c.b)
		}
		if _, ok := g.Banned(c.b.Source.Addr()); ok {
			t.Errorf("%s: %v banned", c.name, c.b.Source)
		}
	}
	now = now.Add(2 * time.Minute)
	if v := g.Check(src.Addr(), ""); v != Allow {
		t.Errorf("Check after the ban: got %v, want allow", v)
	}
}
