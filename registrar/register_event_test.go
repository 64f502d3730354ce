package registrar

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
)

// TestOnEventFansOut checks that every function added with OnEvent sees
// every event, in order: metrics and the guard both listen.
func TestOnEventFansOut(t *testing.T) {
	r, _ := newTestRegistrar(t)
	var got []string
	r.OnEvent(func(ev Event) { got = append(got, "first:"+ev.Outcome.String()) })
	r.OnEvent(func(ev Event) { got = append(got, "second:"+ev.Outcome.String()) })
	raw := "REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n" +
		"To: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nCall-ID: a@b\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:alice@127.0.0.1:5070>;expires=60\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	req.SetSource("127.0.0.1:5070")
	req.SetTransport("UDP")
	if res := r.Handle(req); res == nil || res.StatusCode != 401 {
		t.Fatalf("got %v, want a 401 challenge", res)
	}
	ch := auth.NoCredentials.String()
	want := []string{"first:" + ch, "second:" + ch}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestEventGone: the event of a REGISTER that replaces a device (last
// device wins) or unregisters one carries the binding that went, with its
// own contact and source, not the registering device's (the
// registration.removed webhook reports them).
func TestEventGone(t *testing.T) {
	r, _ := newTestRegistrar(t)
	var last Event
	r.OnEvent(func(ev Event) { last = ev })
	nonce := between(r.Handle(durableRegister(t, "", 0, "")).GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	device := func(nc uint32, callID, host, expires string) {
		t.Helper()
		req := durableRegister(t, nonce, nc, "Contact: <sip:alice@"+host+":5070>\r\nExpires: "+expires+"\r\n")
		cid := sip.CallIDHeader(callID)
		req.ReplaceHeader(&cid)
		req.SetSource(host + ":5070")
		if res := r.Handle(req); res.StatusCode != 200 {
			t.Fatalf("REGISTER from %s: %d %s", host, res.StatusCode, res.Reason)
		}
	}
	device(1, "first-device", "127.0.0.2", "600")
	if len(last.Gone) != 0 || last.Added != 1 {
		t.Fatalf("first device: added %d, gone %v", last.Added, last.Gone)
	}
	device(2, "second-device", "127.0.0.3", "600") // replaces the first (max_contacts 1)
	if last.Replaced != 1 || len(last.Gone) != 1 || last.Gone[0].Source != "127.0.0.2:5070" || last.Gone[0].Contact != "sip:alice@127.0.0.2:5070" {
		t.Fatalf("second device: replaced %d, gone %+v; want the first device's binding", last.Replaced, last.Gone)
	}
	device(3, "second-device", "127.0.0.3", "0") // unregisters itself
	if last.Removed != 1 || len(last.Gone) != 1 || last.Gone[0].Source != "127.0.0.3:5070" {
		t.Fatalf("unregister: removed %d, gone %+v", last.Removed, last.Gone)
	}
}

// TestServesIPv6: sipgo keeps an IPv6 host in its brackets; the domains
// (the listen addresses) are bare. A REGISTER to sip:[2001:db8::1] is
// ours when the server listens there.
func TestServesIPv6(t *testing.T) {
	r := New(Config{Domains: []string{"2001:db8::1", "Example.COM"}}, NewLocation(nil, nil, nil), nil, nil, nil)
	for host, want := range map[string]bool{"[2001:db8::1]": true, "2001:db8::1": true, "example.com": true, "EXAMPLE.com": true, "[2001:db8::2]": false, "example.org": false} {
		if got := r.serves(host); got != want {
			t.Errorf("serves(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestDuplicateExpiresRefused: Expires is not a list (RFC 3261 sections
// 7.3.1, 20.19), so a REGISTER with two is malformed: 400, and nothing
// changes. Before, the first one counted, so "Expires: 0" then "Expires:
// 3600" with "Contact: *" removed every binding, while an element reading
// the last copy would have seen a refresh.
func TestDuplicateExpiresRefused(t *testing.T) {
	r, loc := newTestRegistrar(t)
	nonce := between(r.Handle(durableRegister(t, "", 0, "")).GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	if res := r.Handle(durableRegister(t, nonce, 1, "Contact: <sip:alice@127.0.0.1:5070>\r\nExpires: 600\r\n")); res.StatusCode != 200 {
		t.Fatalf("register: %d %s", res.StatusCode, res.Reason)
	}
	for i, hs := range []string{
		"Contact: *\r\nExpires: 0\r\nExpires: 3600\r\n",
		"Contact: <sip:alice@127.0.0.1:5070>\r\nExpires: 0\r\nExpires: 600\r\n",
	} {
		res := r.Handle(durableRegister(t, nonce, uint32(i+2), hs))
		if res.StatusCode != 400 || res.Reason != "Duplicate Expires Header" {
			t.Errorf("%q: got %d %s, want 400 Duplicate Expires Header", hs, res.StatusCode, res.Reason)
		}
	}
	if n := len(loc.Lookup("alice")); n != 1 {
		t.Fatalf("alice has %d bindings after the refused REGISTERs, want 1", n)
	}
}

// TestContactChecks: a q outside 0 to 1 is malformed (RFC 3261 section
// 25.1), and the same Contact
// twice in one REGISTER gets 400 Duplicate Contact; it used to get "CSeq
// Not Higher Than Binding's", the second copy failing step 7 against the
// first. Neither changes the bindings.
func TestContactChecks(t *testing.T) {
	r, loc := newTestRegistrar(t)
	nonce := between(r.Handle(durableRegister(t, "", 0, "")).GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	seq := uint32(1)
	register := func(hs string) *sip.Response {
		t.Helper()
		res := r.Handle(durableRegister(t, nonce, seq, hs))
		seq++
		return res
	}
	if res := register("Contact: <sip:alice@127.0.0.1:5070>;q=0.5\r\nExpires: 600\r\n"); res.StatusCode != 200 {
		t.Fatalf("register: %d %s", res.StatusCode, res.Reason)
	}
	for _, c := range []struct{ contacts, reason string }{
		{"<sip:alice@127.0.0.1:5070>;q=2", "Invalid Contact q Parameter"},
		{"<sip:alice@127.0.0.1:5070>;q=0.5x", "Invalid Contact q Parameter"},
		{"<sip:alice@127.0.0.1:5070>;q=1.5", "Invalid Contact q Parameter"},
		{"<sip:alice@127.0.0.1:5070>;q=-0", "Invalid Contact q Parameter"},
		{"<sip:alice@127.0.0.1:5070>;expires=100, <sip:alice@127.0.0.1:5070>;expires=0", "Duplicate Contact"},
		{"<sip:alice@127.0.0.1:5070;transport=tcp>, <sip:alice@127.0.0.1:5070;TRANSPORT=TCP>", "Duplicate Contact"},
		// One device's flow twice: it got "CSeq Not Higher Than Binding's".
		{`<sip:alice@127.0.0.1:1>;+sip.instance="<urn:uuid:1>", <sip:alice@127.0.0.1:2>;+sip.instance="<urn:uuid:1>"`, "Duplicate Contact"},
		{`<sip:alice@127.0.0.1:1>;+sip.instance="<urn:uuid:1>";reg-id=1, <sip:alice@127.0.0.1:2>;+sip.instance="<urn:uuid:1>";reg-id=1`, "Duplicate Contact"},
	} {
		res := register("Contact: " + c.contacts + "\r\n")
		if res.StatusCode != 400 || res.Reason != c.reason {
			t.Errorf("%s: got %d %s, want 400 %s", c.contacts, res.StatusCode, res.Reason, c.reason)
		}
	}
	for _, q := range []string{"0", "0.", "1", "1.000", "0.001", "0.1234"} {
		if res := register("Contact: <sip:alice@127.0.0.1:5070>;q=" + q + "\r\n"); res.StatusCode != 200 {
			t.Errorf("q=%s: got %d %s, want 200", q, res.StatusCode, res.Reason)
		}
	}
	if n := len(loc.Lookup("alice")); n != 1 {
		t.Fatalf("alice has %d bindings, want 1", n)
	}
}

// Parameter names are case-insensitive (RFC 3261 7.3.1): a Contact's
// ";EXPIRES=120" is its expires, which wins over the Expires header; it
// was ignored, and the header's 3600 granted.
func TestContactParamNamesIgnoreCase(t *testing.T) {
	r, _ := newTestRegistrar(t)
	nonce := between(r.Handle(durableRegister(t, "", 0, "")).GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	res := r.Handle(durableRegister(t, nonce, 1, "Contact: <sip:alice@127.0.0.1:5070>;EXPIRES=120\r\nExpires: 3600\r\n"))
	if res.StatusCode != 200 {
		t.Fatalf("register: %d %s", res.StatusCode, res.Reason)
	}
	c := res.GetHeader("Contact")
	if c == nil || !strings.HasSuffix(c.Value(), ";expires=120") {
		t.Fatalf("Contact of the 200: %v, want expires=120", c)
	}
	res = r.Handle(durableRegister(t, nonce, 2, "Contact: <sip:alice@127.0.0.1:5070>;Q=7\r\n"))
	if res.StatusCode != 400 || res.Reason != "Invalid Contact q Parameter" {
		t.Fatalf("Q=7: got %d %s, want 400 Invalid Contact q Parameter", res.StatusCode, res.Reason)
	}
}

// An escaped To user is the user it decodes to (RFC 3261 19.1.4):
// sip:%61lice@ registers alice, where it got 403 Not Allowed To Register
// This AOR; an escape that would decode to what a user part may not hold
// unescaped stays as sent (and is not alice).
func TestEscapedAOR(t *testing.T) {
	r, loc := newTestRegistrar(t)
	nonce := between(r.Handle(durableRegister(t, "", 0, "")).GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	to := func(user string, nc uint32) *sip.Request {
		req := durableRegister(t, nonce, nc, "Contact: <sip:alice@127.0.0.1:5070>\r\n")
		req.To().Address.User = user
		return req
	}
	if res := r.Handle(to("%61lice", 1)); res.StatusCode != 200 {
		t.Fatalf("To sip:%%61lice@: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if n := len(loc.Lookup("alice")); n != 1 {
		t.Fatalf("alice has %d bindings, want 1", n)
	}
	if res := r.Handle(to("alice%0a", 2)); res.StatusCode != 403 {
		t.Fatalf("To sip:alice%%0a@: %d %s, want 403", res.StatusCode, res.Reason)
	}
}

// TestSameURI: two Contacts name one binding only when RFC 3261 19.1.4
// says their URIs are equivalent. The scheme and every parameter but
// transport were ignored: a sips: Contact, or one differing in a ;line=
// parameter, replaced another device's binding, and its expires=0
// removed it.
func TestSameURI(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.1:5060", true},
		{"sip:alice@192.0.2.1:5060", "sips:alice@192.0.2.1:5060", false},
		{"sip:alice@192.0.2.1:5060;line=1", "sip:alice@192.0.2.1:5060;line=2", false},
		{"sip:alice@192.0.2.1:5060;line=1", "sip:alice@192.0.2.1:5060;LINE=1", true},
		{"sip:alice@192.0.2.1:5060;line=1", "sip:alice@192.0.2.1:5060", true}, // only in one: not compared
		{"sip:alice@192.0.2.1:5060;transport=tcp", "sip:alice@192.0.2.1:5060", false},
		{"sip:alice@192.0.2.1:5060;transport=TCP", "sip:alice@192.0.2.1:5060;transport=tcp", true},
		{"sip:alice@192.0.2.1:5060;maddr=192.0.2.9", "sip:alice@192.0.2.1:5060", false},
		{"sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.1:5060;user=phone", false},
		{"sip:alice@192.0.2.1:5060;lr", "sip:alice@192.0.2.1:5060", true},
		{"sip:alice@Phone.Example", "sip:alice@phone.example", true},
		{"sip:Alice@phone.example", "sip:alice@phone.example", false},
		{"sip:%61lice@phone.example", "sip:alice@phone.example", true},
		{"sip:alice@phone.example", "sip:alice@phone.example:5060", false},
		{"sip:alice:a@phone.example", "sip:alice:b@phone.example", false},
		{"sip:alice@phone.example?Subject=x", "sip:alice@phone.example", false},
		{"sip:alice@phone.example?Subject=x", "sip:alice@phone.example?subject=X", true},
		{"sip:alice@phone.example?Subject=x", "sip:alice@phone.example?Subject=y", false},
	} {
		a, okA := parseKey(c.a)
		b, okB := parseKey(c.b)
		if !okA || !okB {
			t.Fatalf("parse %q %q: %v %v", c.a, c.b, okA, okB)
		}
		if got := sameURI(a, b); got != c.same {
			t.Errorf("sameURI(%s, %s) = %v, want %v", c.a, c.b, got, c.same)
		}
		if got := sameURI(b, a); got != c.same {
			t.Errorf("sameURI(%s, %s) = %v, want %v", c.b, c.a, got, c.same)
		}
	}
}

// TestRemovalMatchesByContactOnly: a phone whose address changed
// registers its new Contact (the same Call-ID: it replaces the old one in
// place) and then removes the old Contact: the removal matches by URI
// only, so it is a no-op and the new binding stays. Matched by Call-ID,
// it removed the new binding, and the phone was unreachable until its
// next refresh (RFC 3261 10.3 step 7 matches Contacts by URI).
func TestRemovalMatchesByContactOnly(t *testing.T) {
	r, loc := newTestRegistrar(t)
	nonce := between(r.Handle(durableRegister(t, "", 0, "")).GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	for i, hs := range []string{
		"Contact: <sip:alice@127.0.0.1:4001>\r\nExpires: 600\r\n",
		"Contact: <sip:alice@127.0.0.1:4002>\r\nExpires: 600\r\n",
		"Contact: <sip:alice@127.0.0.1:4001>\r\nExpires: 0\r\n",
		"Contact: <sip:alice@127.0.0.1:4009>;expires=0\r\n", // never bound
	} {
		if res := r.Handle(durableRegister(t, nonce, uint32(i+1), hs)); res.StatusCode != 200 {
			t.Fatalf("REGISTER %d: %d %s", i+1, res.StatusCode, res.Reason)
		}
	}
	bs := loc.Lookup("alice")
	if len(bs) != 1 || bs[0].Contact != "<sip:alice@127.0.0.1:4002>" && bs[0].Contact != "sip:alice@127.0.0.1:4002" {
		t.Fatalf("alice's bindings: %+v, want the one at 127.0.0.1:4002", bs)
	}
}

// TestLoggedOutcome: a REGISTER refused before authentication (404 for a
// domain not served) is logged with outcome none, a challenge as one;
// the 404 was logged outcome=challenge.
func TestLoggedOutcome(t *testing.T) {
	r, _ := newTestRegistrar(t)
	var buf strings.Builder
	r.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.Handle(durableRegister(t, "", 0, ""))
	challenge := buf.String()
	buf.Reset()
	other := durableRegister(t, "", 0, "")
	other.Recipient.Host = "elsewhere.example"
	if res := r.Handle(other); res.StatusCode != 404 {
		t.Fatalf("REGISTER for another domain: %d %s", res.StatusCode, res.Reason)
	}
	if !strings.Contains(challenge, "status=401 outcome=challenge") || !strings.Contains(buf.String(), "status=404 outcome=none") {
		t.Errorf("logged:\n%s%s", challenge, buf.String())
	}
}
