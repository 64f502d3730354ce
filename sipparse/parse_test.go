package sipparse

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// crlf turns a message written with "\n" line ends into one with CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// clients are REGISTERs as real clients send them (INTEROP_NOTES.md and
// the sipp scenarios in testdata/sipp): the shapes the lean path exists
// for, so each must be parsed here, not handed to sipgo.
var clients = map[string]string{
	// Captured from Debian's baresip with an outbound proxy set (as the
	// interop tests run it: a Route header) and from sipp running
	// testdata/sipp/register_digest.xml.
	"baresip with outbound= (captured)": crlf(`REGISTER sip:sipwarden.test;transport=udp SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:25997;branch=z9hG4bK58808a9689dc047e;rport
Contact: <sip:alice-0x55a32ece1af0@127.0.0.1:25997>;expires=600;+sip.instance="<urn:uuid:1e8fd378-c480-2ccb-6dba-013a5ebfed3b>"
Max-Forwards: 70
Route: <sip:127.0.0.1:25999;transport=udp;lr>
To: <sip:alice@sipwarden.test>
From: <sip:alice@sipwarden.test>;tag=4b05900fb2b2be1d
Call-ID: 34fa061f4910f047
CSeq: 46006 REGISTER
User-Agent: baresip v1.0.0 (x86_64/linux)
Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER
Content-Length: 0

`),
	"sipp (captured)": crlf(`REGISTER sip:127.0.0.1:25999 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-10105-1-0;rport
Max-Forwards: 70
From: <sip:user1@127.0.0.1>;tag=10105SIPpTag1
To: <sip:user1@127.0.0.1>
Call-ID: 1-10105@127.0.0.1
CSeq: 1 REGISTER
Contact: <sip:user1@127.0.0.1:5060;transport=UDP>
Expires: 3600
User-Agent: sipp
Content-Length: 0

`),
	"sipp first leg": crlf(`REGISTER sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-4242-1-0;rport
Max-Forwards: 70
From: <sip:user1@127.0.0.1>;tag=4242SIPpTag001
To: <sip:user1@127.0.0.1>
Call-ID: 1-4242@127.0.0.1
CSeq: 1 REGISTER
Contact: <sip:user1@127.0.0.1:5070;transport=UDP>
Expires: 3600
User-Agent: sipp
Content-Length: 0

`),
	"sipp second leg": crlf(`REGISTER sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-4242-1-2;rport
Max-Forwards: 70
From: <sip:user1@127.0.0.1>;tag=4242SIPpTag001
To: <sip:user1@127.0.0.1>
Call-ID: 1-4242@127.0.0.1
CSeq: 2 REGISTER
Contact: <sip:user1@127.0.0.1:5070;transport=TCP>
Authorization: Digest username="user1",realm="sipwarden.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="AAAAAGdSE8k0wE6RgEqEiQ",response="9b1c2e0e5e7b9c0f3c7f6a4f3f1b2f5e",algorithm=MD5
Expires: 3600
User-Agent: sipp
Content-Length: 0

`),
	"baresip": crlf(`REGISTER sip:127.0.0.1;transport=udp SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:41234;branch=z9hG4bK8c2a5f3d1e;rport
Contact: <sip:alice-0x55d0c0a8@127.0.0.1:41234;transport=udp>;expires=3600;+sip.instance="<urn:uuid:8a3c1f4e-3b7d-4f5e-9c2a-1d2e3f4a5b6c>"
Max-Forwards: 70
To: <sip:alice@127.0.0.1>
From: <sip:alice@127.0.0.1>;tag=5a7f1c9e2b
Call-ID: 3f2a1b4c5d6e7f80
CSeq: 23178 REGISTER
User-Agent: baresip v2.9.0 (x86_64/linux)
Authorization: Digest username="alice",realm="sipwarden.test",nonce="AAAAAGdSE8k0wE6RgEqEiQ",uri="sip:127.0.0.1;transport=udp",response="0f3c7f6a4f3f1b2f5e9b1c2e0e5e7b9c",algorithm=MD5,cnonce="2a9c1f4e3b7d4f5e",qop=auth,nc=00000001
Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER
Supported: replaces,norefersub
Content-Length: 0

`),
	"linphone": crlf(`REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK.Fz1k2m3n4;rport
From: <sip:bob@127.0.0.1>;tag=abc123def
To: sip:bob@127.0.0.1
CSeq: 21 REGISTER
Call-ID: kLm4n5o6p7
Max-Forwards: 70
Supported: replaces, outbound, gruu, path
Accept: application/sdp
Accept: text/plain
Accept: application/vnd.gsma.rcs-ft-http+xml
Contact: "Bob" <sip:bob@127.0.0.1:5062;transport=udp>;+sip.instance="<urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0>"
Expires: 3600
User-Agent: Linphone/4.4.10 (belle-sip/4.4.8)

`),
	"JsSIP over WebSocket": crlf(`REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS k1l2m3n4o5p6.invalid;branch=z9hG4bK1234567
Max-Forwards: 69
To: <sip:carol@127.0.0.1>
From: <sip:carol@127.0.0.1>;tag=q8r9s0t1u2
Call-ID: v3w4x5y6z7a8b9c0d1e2f3
CSeq: 2 REGISTER
Authorization: Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjYXJvbCJ9.c2ln
Contact: <sip:h1i2j3k4@k1l2m3n4o5p6.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d>";expires=600
Expires: 600
Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY
Supported: path,gruu,outbound
User-Agent: JsSIP 3.10.1
Content-Length: 0

`),
	"compact and lower case": crlf(`register sip:example.com SIP/2.0
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc
f: "A, B" <sip:a@example.com>;tag=1
t: sip:a@example.com
i: x@y
cseq: 7 REGISTER
m: <sip:a@10.0.0.1>;expires=0
max-forwards: 10
l: 0

`),
	"two Contact headers": crlf(`REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc
From: <sip:a@example.com>;tag=1
To: <sip:a@example.com>
Call-ID: x@y
CSeq: 7 REGISTER
Contact: <sip:a@10.0.0.1>
Contact: <sip:a@10.0.0.2>;q=0.5
Contact: <sip:a@10.0.0.3>;q=0.1;expires=60;a=1;b=2;c=3;d=4
Content-Length: 0

`),
}

// handedOn are shapes left to sipgo's parser.
var handedOn = map[string]string{
	"a response":           crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nCSeq: 1 REGISTER\n\n"),
	"folded line":          crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\nSubject: a\n b\nCSeq: 1 REGISTER\n\n"),
	"two Vias":             crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\nCSeq: 1 REGISTER\n\n"),
	"a Via list":           crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b\nCSeq: 1 REGISTER\n\n"),
	"a Contact list":       crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nContact: <sip:a@b>, <sip:a@c>\nCSeq: 1 REGISTER\n\n"),
	"a body":               crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nCSeq: 1 REGISTER\nContent-Length: 3\n\nabc"),
	"a Route list":         crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nRoute: <sip:p;lr>, <sip:q;lr>\nCSeq: 1 REGISTER\n\n"),
	"two Routes":           crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nRoute: <sip:p;lr>\nRoute: <sip:q;lr>\nCSeq: 1 REGISTER\n\n"),
	"a Record-Route":       crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nRecord-Route: <sip:p;lr>\nCSeq: 1 REGISTER\n\n"),
	"IPv6 Via":             crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1\nCSeq: 1 REGISTER\n\n"),
	"no empty line":        "REGISTER sip:h SIP/2.0\r\nCSeq: 1 REGISTER\r\n",
	"CR without LF":        "REGISTER sip:h SIP/2.0\r\nCSeq: 1 REGISTER\rX: y\r\n\r\n",
	"header without colon": crlf("REGISTER sip:h SIP/2.0\nVia SIP/2.0/UDP a\n\n"),
	"two CSeqs":            crlf("REGISTER sip:h SIP/2.0\nCSeq: 1 REGISTER\nCSeq: 2 REGISTER\n\n"),
	"bad port in Via":      crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a:99999999999999999999;branch=x\n\n"),
}

// same fails t unless got, parsed here, is the request sipgo's parser
// makes of data.
func same(t testing.TB, data []byte, got *sip.Request) {
	t.Helper()
	m, err := SipgoParser().ParseSIP(data)
	if err != nil {
		t.Fatalf("parsed here, refused by sipgo (%v): %q", err, data)
	}
	want, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("parsed here as a request, by sipgo as %T: %q", m, data)
	}
	if g, w := got.String(), want.String(); g != w {
		t.Fatalf("serialized differently:\n got %q\nwant %q", g, w)
	}
	if got.Method != want.Method || got.SipVersion != want.SipVersion || !reflect.DeepEqual(got.Recipient, want.Recipient) {
		t.Fatalf("request line: got %q %#v %q, want %q %#v %q", got.Method, got.Recipient, got.SipVersion, want.Method, want.Recipient, want.SipVersion)
	}
	if !reflect.DeepEqual(got.Body(), want.Body()) {
		t.Fatalf("body: got %q, want %q", got.Body(), want.Body())
	}
	gh, wh := got.Headers(), want.Headers()
	if len(gh) != len(wh) {
		t.Fatalf("%d headers, sipgo %d", len(gh), len(wh))
	}
	for i := range gh {
		if !reflect.DeepEqual(gh[i], wh[i]) {
			t.Fatalf("header %d: got %#v, want %#v", i, gh[i], wh[i])
		}
	}
	// The typed references the request's accessors give.
	pairs := []struct {
		name      string
		got, want any
	}{
		{"Via", got.Via(), want.Via()},
		{"From", got.From(), want.From()},
		{"To", got.To(), want.To()},
		{"Contact", got.Contact(), want.Contact()},
		{"Call-ID", got.CallID(), want.CallID()},
		{"CSeq", got.CSeq(), want.CSeq()},
		{"Max-Forwards", got.MaxForwards(), want.MaxForwards()},
		{"Content-Length", got.ContentLength(), want.ContentLength()},
	}
	for _, p := range pairs {
		if !reflect.DeepEqual(p.got, p.want) {
			t.Fatalf("%s: got %#v, want %#v", p.name, p.got, p.want)
		}
	}
}

func TestClientsParsedHere(t *testing.T) {
	for name, msg := range clients {
		t.Run(name, func(t *testing.T) {
			got, ok := Request([]byte(msg))
			if !ok {
				t.Fatal("handed on to sipgo: the lean path would not serve this client")
			}
			same(t, []byte(msg), got)
		})
	}
}

func TestHandedOn(t *testing.T) {
	for name, msg := range handedOn {
		t.Run(name, func(t *testing.T) {
			if req, ok := Request([]byte(msg)); ok {
				t.Fatalf("parsed here: %q", req.String())
			}
		})
	}
}

// TestTorture runs RFC 4475's messages: whatever is parsed here must be
// what sipgo makes of it.
func TestTorture(t *testing.T) {
	parsed := 0
	for _, data := range torture(t) {
		if got, ok := Request(data); ok {
			same(t, data, got)
			parsed++
		}
	}
	if parsed < 10 { // 17 of the 50 when written
		t.Errorf("only %d torture messages parsed here: the comparison no longer reaches the lean path", parsed)
	}
}

func torture(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../testdata/torture/*/*.dat")
	if err != nil || len(files) == 0 {
		tb.Fatalf("torture messages: %v (%d files)", err, len(files))
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// routeEdges are Route values where sipgo's parseRouteAddress does
// something odd (an empty address without an error, header parameters
// dropped): parsed here, they must come out as sipgo's.
var routeEdges = []string{
	"<sip:p;lr>;x=1",
	"<sip:p;lr",         // never closed: sipgo leaves the address empty
	"<sip:p;lr>\u00e9",  // a last character of two bytes: the same
	`"a, b" <sip:p;lr>`, // a comma inside quotes
	"sip:p;lr",          // no brackets
}

func TestRouteEdges(t *testing.T) {
	for _, v := range routeEdges {
		data := []byte(crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nRoute: " + v + "\nCSeq: 1 REGISTER\n\n"))
		if got, ok := Request(data); ok {
			same(t, data, got)
		}
	}
}

// FuzzRequest: a request parsed here is the request sipgo's parser makes
// of the same bytes.
func FuzzRequest(f *testing.F) {
	for _, m := range clients {
		f.Add([]byte(m))
	}
	for _, m := range handedOn {
		f.Add([]byte(m))
	}
	for _, b := range torture(f) {
		f.Add(b)
	}
	for _, v := range routeEdges {
		f.Add([]byte(crlf("REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\nRoute: " + v + "\nCSeq: 1 REGISTER\n\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, ok := Request(data); ok {
			same(t, data, got)
		}
		// The same through a Parser whose memory held another request.
		var p Parser
		if _, ok := p.Request([]byte(clients["baresip with outbound= (captured)"])); !ok {
			t.Fatal("baresip's REGISTER handed on")
		}
		p.Recycle()
		if got, ok := p.Request(data); ok {
			same(t, data, got)
		}
	})
}

// A Parser reuses a request's memory once it is recycled, and only then;
// the recycled request is cleared at once; what it parses into reused
// memory is what Request parses.
func TestParserRecycles(t *testing.T) {
	var p Parser
	first, ok := p.Request([]byte(clients["sipp (captured)"]))
	if !ok {
		t.Fatal("sipp's REGISTER handed on")
	}
	second, ok := p.Request([]byte(clients["sipp (captured)"]))
	if !ok || second == first {
		t.Fatalf("a second request without Recycle: got the first's memory (%v), want its own", ok)
	}
	if first.CallID() == nil {
		t.Fatal("the first request was cleared without Recycle")
	}
	p.Recycle()
	if second.CallID() != nil || second.Via() != nil || len(second.Headers()) != 0 {
		t.Errorf("after Recycle: the request still has its headers, want it cleared")
	}
	for name, m := range clients {
		got, ok := p.Request([]byte(m))
		if !ok {
			t.Fatalf("%s: handed on", name)
		}
		if got != second {
			t.Errorf("%s: got new memory, want the recycled request's", name)
		}
		same(t, []byte(m), got)
		p.Recycle()
	}
	// A message handed on leaves the memory for the next one.
	if _, ok := p.Request([]byte("REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n folded\r\n\r\n")); ok {
		t.Fatal("a folded line: parsed here, want it handed on")
	}
	if got, ok := p.Request([]byte(clients["sipp (captured)"])); !ok || got != second {
		t.Errorf("after a message handed on: got new memory (%v), want the recycled request's", ok)
	}
	p.Recycle()
	p.Recycle() // nothing to recycle: no effect
	if got := testing.AllocsPerRun(100, func() {
		if _, ok := p.Request([]byte(clients["sipp (captured)"])); !ok {
			t.Fatal("handed on")
		}
		p.Recycle()
	}); got > 11 {
		t.Errorf("with Recycle: got %v allocations, want at most 11 (Request makes 12)", got)
	}
}

// BenchmarkParse compares sipgo's parser with this one on a second-leg
// REGISTER (go test -bench Parse -benchmem ./sipparse/).
func BenchmarkParse(b *testing.B) {
	data := []byte(clients["baresip"])
	b.Run("sipgo", func(b *testing.B) {
		p := sip.NewParser()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.ParseSIP(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sipparse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Request(data); !ok {
				b.Fatal("handed on")
			}
		}
	})
	b.Run("sipparse-recycled", func(b *testing.B) {
		var p Parser
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := p.Request(data); !ok {
				b.Fatal("handed on")
			}
			p.Recycle()
		}
	})
}

// Blanks after the first in CSeq are LWS (RFC 3261 section 25.1): the
// method is REGISTER, here and through SipgoParser alike, where sipgo's
// own parser keeps the blanks in it.
func TestCSeqBlanks(t *testing.T) {
	msg := []byte(strings.Replace(clients["sipp (captured)"], "CSeq: 1 REGISTER", "CSeq: 1 \t  REGISTER", 1))
	if string(msg) == clients["sipp (captured)"] {
		t.Fatal("the test's request has no CSeq to change")
	}
	got, ok := Request(msg)
	if !ok {
		t.Fatal("handed on")
	}
	if m := got.CSeq().MethodName; m != sip.REGISTER {
		t.Errorf("method %q, want REGISTER", m)
	}
	same(t, msg, got)
}

// SipgoParser reads RFC 4475's wsinv (blanks around every ";", "=" and
// "/", folded lines) as the RFC means it, where sipgo's own parser keeps
// the blanks in parameter names ("; tag = 1" a parameter " tag "), in a
// To host, and takes "/ TCP host" for a Via without transport.
func TestSipgoParserLWS(t *testing.T) {
	data, err := os.ReadFile("../testdata/torture/valid/wsinv.dat")
	if err != nil {
		t.Fatal(err)
	}
	m, err := SipgoParser().ParseSIP(data)
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	if tag, _ := req.From().Params.Get("tag"); tag != "98asjd8" {
		t.Errorf("From tag %q (params %#v)", tag, req.From().Params)
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "1918181833n" || req.To().Address.Host != "chair-dnrc.example.com" {
		t.Errorf("To %#v", req.To())
	}
	var vias []string
	for _, h := range req.GetHeaders("Via") {
		v := h.(*sip.ViaHeader)
		branch, _ := v.Params.Get("branch")
		vias = append(vias, v.Transport+" "+v.Host+" "+branch)
	}
	if want := []string{"UDP 192.0.2.2 390skdjuw", "TCP spindle.example.com z9hG4bK9ikj8", "UDP 192.168.255.111 z9hG4bK30239"}; !reflect.DeepEqual(vias, want) {
		t.Errorf("Vias %q, want %q", vias, want)
	}
	if got := req.Contact().Params; !reflect.DeepEqual(got, sip.HeaderParams{{K: "newparam", V: "newvalue"}, {K: "secondparam"}, {K: "q", V: "0.33"}}) {
		t.Errorf("Contact params %#v", got)
	}
	// sipgo's own parser, for the record: the test checks a correction.
	raw, err := sip.NewParser().ParseSIP(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.(*sip.Request).From().Params.Get("tag"); ok {
		t.Error("sipgo's own parser finds the From tag: SipgoParser's correction may be dropped")
	}
}
