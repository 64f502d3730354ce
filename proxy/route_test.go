package proxy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/store"
)

func testProxy(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(Config{
		Domains: []string{"sipwarden.test", "127.0.0.1"},
		Listeners: []Listener{
			{Transport: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Host: "127.0.0.1"},
			{Transport: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:5060"), Host: "127.0.0.1"},
			{Transport: "tls", Addr: netip.MustParseAddrPort("127.0.0.1:5061"), Host: "127.0.0.1"},
		},
	}, nil, nil, nil, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func parseReq(t *testing.T, raw string) *sip.Request {
	t.Helper()
	m, err := sip.NewParser().ParseSIP([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m.(*sip.Request)
}

const invite = `INVITE sip:bob@sipwarden.test SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:bob@sipwarden.test>
From: <sip:alice@sipwarden.test>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Content-Length: 0

`

// TestLoopDetection follows RFC 3261 16.3 step 4: a request carrying our
// own Via with the hash of this very request has looped (482); one whose
// Request-URI changed since (a spiral) has not.
func TestLoopDetection(t *testing.T) {
	p := testProxy(t)
	req := parseReq(t, invite)
	if p.looped(req) {
		t.Fatal("a fresh request looped")
	}
	lh := loopHash(req)
	via, _ := p.via("udp", newBranch(lh))
	back := parseReq(t, invite)
	back.PrependHeader(via)
	if !p.looped(back) {
		t.Fatal("the same request with our Via was not detected as a loop")
	}
	spiral := parseReq(t, strings.Replace(invite, "INVITE sip:bob@sipwarden.test", "INVITE sip:+15551234@sipwarden.test", 1))
	spiral.PrependHeader(via)
	if p.looped(spiral) {
		t.Fatal("a spiral (new Request-URI) was taken for a loop")
	}
	// A Via with our branch format but another host is someone else's.
	foreign, _ := p.via("udp", newBranch(lh))
	foreign.Host = "198.51.100.7"
	other := parseReq(t, invite)
	other.PrependHeader(foreign)
	if p.looped(other) {
		t.Fatal("another host's Via was taken for ours")
	}
}

func TestPreprocessRoute(t *testing.T) {
	p := testProxy(t)
	// Loose routing: our Route entries (both of a double Record-Route) go,
	// the next hop's stays.
	req := parseReq(t, strings.Replace(invite, "Max-Forwards: 70",
		"Route: <sip:127.0.0.1:5060;transport=tcp;lr>, <sip:127.0.0.1;lr>\nRoute: <sip:198.51.100.7;lr>\nMax-Forwards: 70", 1))
	if !p.preprocessRoute(req) {
		t.Fatal("our Route was not recognised")
	}
	rs := req.GetHeaders("Route")
	if len(rs) != 1 || !strings.Contains(rs[0].Value(), "198.51.100.7") {
		t.Fatalf("routes left: %v, want only the next hop's", rs)
	}
	// A strict router put our Record-Route into the Request-URI: the last
	// Route is the real Request-URI.
	strict := parseReq(t, strings.Replace(strings.Replace(invite, "INVITE sip:bob@sipwarden.test", "INVITE sip:127.0.0.1;lr", 1),
		"Max-Forwards: 70", "Route: <sip:bob@192.0.2.9:5070>\nMax-Forwards: 70", 1))
	if !p.preprocessRoute(strict) {
		t.Fatal("strict-router rewrite not undone")
	}
	if strict.Recipient.Host != "192.0.2.9" || strict.Recipient.User != "bob" || len(strict.GetHeaders("Route")) != 0 {
		t.Fatalf("Request-URI %s, routes %v", strict.Recipient.String(), strict.GetHeaders("Route"))
	}
	// No Route: nothing changes.
	plain := parseReq(t, invite)
	if p.preprocessRoute(plain) {
		t.Fatal("a request without Route was said to be routed to us")
	}
}

func TestRecordRouteDoubledOnTransportChange(t *testing.T) {
	p := testProxy(t)
	req := parseReq(t, invite)
	p.addRecordRoute(req, "UDP", "tcp")
	rrs := req.GetHeaders("Record-Route")
	if len(rrs) != 2 {
		t.Fatalf("%d Record-Route headers, want 2 (RFC 5658)", len(rrs))
	}
	if !strings.Contains(rrs[0].Value(), "transport=tcp") || strings.Contains(rrs[1].Value(), "transport") {
		t.Fatalf("Record-Route order %v: want the outbound (tcp) one on top", rrs)
	}
	for _, rr := range rrs {
		if !strings.Contains(rr.Value(), ";lr") {
			t.Errorf("Record-Route %q without lr", rr.Value())
		}
	}
	same := parseReq(t, invite)
	p.addRecordRoute(same, "udp", "udp")
	if n := len(same.GetHeaders("Record-Route")); n != 1 {
		t.Fatalf("%d Record-Route headers on the same transport, want 1", n)
	}
}

func TestBestResponse(t *testing.T) {
	res := func(code int) *sip.Response { return sip.NewResponse(code, "") }
	cases := []struct {
		a, b int
		want bool
	}{
		{486, 503, true},  // lower class wins
		{503, 486, false}, //
		{603, 486, true},  // a 6xx wins over everything
		{486, 603, false},
		{404, 408, false}, // same class: the first stays
		{302, 404, true},
	}
	for _, c := range cases {
		if got := better(res(c.a), res(c.b)); got != c.want {
			t.Errorf("better(%d, %d) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestHopFromURI(t *testing.T) {
	cases := map[string]Hop{
		"sip:192.0.2.1":                        {Host: "192.0.2.1", Port: 5060, Transport: "udp"},
		"sip:192.0.2.1:5080;transport=TCP":     {Host: "192.0.2.1", Port: 5080, Transport: "tcp"},
		"sips:gw.example.net":                  {Host: "gw.example.net", Port: 5061, Transport: "tls"},
		"sip:bob@192.0.2.1;maddr=198.51.100.1": {Host: "198.51.100.1", Port: 5060, Transport: "udp"},
	}
	for in, want := range cases {
		var u sip.Uri
		if err := sip.ParseUri(in, &u); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := hopFromURI(&u); got != want {
			t.Errorf("hopFromURI(%s) = %+v, want %+v", in, got, want)
		}
	}
}

func TestRouteAllowed(t *testing.T) {
	r := Route{Connections: []string{"conn-a"}}
	if !routeAllowed(r, caller{Credential: credentialIn("conn-a")}) {
		t.Error("a listed connection was refused")
	}
	if routeAllowed(r, caller{Credential: credentialIn("conn-b")}) {
		t.Error("an unlisted connection was allowed")
	}
	if routeAllowed(r, caller{Trusted: true}) {
		t.Error("a trusted peer used a route restricted to connections")
	}
	if !routeAllowed(Route{}, caller{Trusted: true}) {
		t.Error("an open route refused a trusted peer")
	}
}

func credentialIn(conn string) store.Credential { return store.Credential{ConnectionID: conn} }

// TestBindingTargetRequestURI: a registered Contact's header components
// and method parameter do not reach the Request-URI (RFC 3261 19.1.1
// Table 1, 19.1.5); they were copied into every INVITE to the device.
func TestBindingTargetRequestURI(t *testing.T) {
	for contact, want := range map[string]string{
		"<sip:bob@127.0.0.1:5070;transport=udp>":                                         "sip:bob@127.0.0.1:5070;transport=udp",
		"<sip:bob@127.0.0.1:5070;method=BYE;transport=udp?Route=%3Csip:evil%3E&X-Inj=1>": "sip:bob@127.0.0.1:5070;transport=udp",
		"sip:bob@127.0.0.1:5070?X-Inj=1":                                                 "sip:bob@127.0.0.1:5070",
	} {
		b := store.Binding{Contact: contact, Source: "127.0.0.1:5070", Transport: "udp"}
		tg, err := bindingTarget(&b)
		if err != nil {
			t.Fatalf("%s: %v", contact, err)
		}
		if got := tg.uri.String(); got != want {
			t.Errorf("Contact %s: Request-URI %s, want %s", contact, got, want)
		}
	}
}
