package proxy

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// The relayed copy drops only the top Via, keeps every other header in
// order with the body, and leaves the received response as it was.
func TestUpstreamCopy(t *testing.T) {
	raw := "SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsw.1, SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKa\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.3:5064;branch=z9hG4bKb\r\n" +
		"Record-Route: <sip:127.0.0.1:5060;lr>\r\n" +
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:b@10.0.0.9>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
	res := parse[*sip.Response](t, raw)
	before := res.String()

	out := upstreamCopy(res, true)
	want := strings.Replace(raw, "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsw.1, ", "", 1)
	if got, want := out.String(), parse[*sip.Response](t, want).String(); got != want {
		t.Errorf("relayed\n%s\nwant\n%s", got, want)
	}
	if res.String() != before {
		t.Errorf("the received response changed:\n%s", res.String())
	}
	if v := out.Via(); v == nil || v.Host != "10.0.0.2" {
		t.Errorf("top Via of the copy %v, want 10.0.0.2", v)
	}
	if got := upstreamCopy(res, false).String(); got != before {
		t.Errorf("copy without dropping\n%s\nwant\n%s", got, before)
	}
}

// parse parses raw as the message type M (CRLF line ends, as written).
func parse[M *sip.Request | *sip.Response](t testing.TB, raw string) M {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := msg.(M)
	if !ok {
		t.Fatalf("parsed %T, want %T", msg, m)
	}
	return m
}

// The forwarded copy: new Request-URI, Max-Forwards one less in its place
// (70 when missing), no Proxy-Authorization, everything else in order;
// the received request unchanged.
func TestForwardCopy(t *testing.T) {
	const rest = "Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKa;rport=5062;received=10.0.0.2\r\n" +
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 2 INVITE\r\n"
	cases := []struct{ name, in, want string }{
		{"decremented",
			"INVITE sip:b@x SIP/2.0\r\n" + rest + "Max-Forwards: 7\r\nproxy-authorization: Digest username=\"a\"\r\nContact: <sip:a@10.0.0.2>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
			"INVITE sip:b@10.0.0.9:5070;transport=tcp SIP/2.0\r\n" + rest + "Max-Forwards: 6\r\nContact: <sip:a@10.0.0.2>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"},
		{"added when missing",
			"BYE sip:b@x SIP/2.0\r\n" + rest + "Proxy-Authorization: Digest username=\"a\"\r\nContent-Length: 0\r\n\r\n",
			"BYE sip:b@10.0.0.9:5070;transport=tcp SIP/2.0\r\n" + rest + "Content-Length: 0\r\nMax-Forwards: 70\r\n\r\n"},
		{"bounded to 70",
			"OPTIONS sip:b@x SIP/2.0\r\n" + rest + "Max-Forwards: 4000000\r\nContent-Length: 0\r\n\r\n",
			"OPTIONS sip:b@10.0.0.9:5070;transport=tcp SIP/2.0\r\n" + rest + "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"},
		{"zero stays zero",
			"ACK sip:b@x SIP/2.0\r\n" + rest + "Max-Forwards: 0\r\nContent-Length: 0\r\n\r\n",
			"ACK sip:b@10.0.0.9:5070;transport=tcp SIP/2.0\r\n" + rest + "Max-Forwards: 0\r\nContent-Length: 0\r\n\r\n"},
	}
	var target sip.Uri
	if err := sip.ParseUri("sip:b@10.0.0.9:5070;transport=tcp", &target); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := parse[*sip.Request](t, c.in)
			before := req.String()
			fwd := forwardCopy(req, *target.Clone())
			if got, want := fwd.String(), parse[*sip.Request](t, c.want).String(); got != want {
				t.Errorf("forwarded\n%s\nwant\n%s", got, want)
			}
			if req.String() != before {
				t.Errorf("the received request changed:\n%s", req.String())
			}
		})
	}
}

// A typical INVITE from a softphone, with SDP.
const benchInvite = "INVITE sip:1002@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-524287-1---abcdef;rport=5070;received=127.0.0.1\r\n" +
	"Max-Forwards: 70\r\n" +
	"Contact: <sip:1001@127.0.0.1:5070;transport=udp>\r\n" +
	"To: <sip:1002@127.0.0.1>\r\n" +
	"From: \"1001\" <sip:1001@127.0.0.1>;tag=4f2d7a1b\r\n" +
	"Call-ID: 8cbdc2a4-0c3b-4d4a-9e0e-1b2c3d4e5f60\r\n" +
	"CSeq: 2 INVITE\r\n" +
	"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Proxy-Authorization: Digest username=\"1001\",realm=\"sipwarden\",nonce=\"abc\",uri=\"sip:1002@127.0.0.1\",response=\"0123456789abcdef0123456789abcdef\",algorithm=MD5\r\n" +
	"User-Agent: Zoiper rv2.10.20.4\r\n" +
	"Content-Length: 128\r\n\r\n" +
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"

// benchRequest is the INVITE as sipgo hands it to the proxy: source and
// transport set by the transport layer.
func benchRequest(b *testing.B) *sip.Request {
	req := parse[*sip.Request](b, benchInvite)
	req.SetSource("127.0.0.1:5070")
	req.SetTransport("UDP")
	return req
}

// BenchmarkCopies measures the copies the proxy forwards and relays (a
// softphone's INVITE with SDP, the callee's 200), each beside sipgo's deep
// clone it replaced, as the baseline in the same run.
func BenchmarkCopies(b *testing.B) {
	req, res := benchRequest(b), benchResponse(b)
	for _, c := range []struct {
		name string
		copy func()
	}{
		{"forwardCopy", func() { _ = forwardCopy(req, req.Recipient) }},
		{"Request.Clone", func() { _ = req.Clone() }},
		{"upstreamCopy", func() { _ = upstreamCopy(res, true) }},
		{"Response.Clone", func() { _ = res.Clone() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.copy()
			}
		})
	}
}

func benchResponse(b *testing.B) *sip.Response {
	req := benchRequest(b)
	res := sip.NewResponseFromRequest(req, 200, "OK", req.Body())
	res.PrependHeader(sip.HeaderClone(req.Via()))
	res.SetSource("127.0.0.1:5090")
	res.SetTransport("UDP")
	return res
}

// TestBetter: RFC 3261 16.7 step 6, with the 4xx a caller can act on
// (401, 407, 415, 420, 484) preferred over the other 4xx: a 486 from one
// device hid another's challenge.
func TestBetter(t *testing.T) {
	res := func(code int) *sip.Response { return sip.NewResponse(code, "") }
	for _, c := range []struct {
		a, b int
		want bool
	}{
		{401, 486, true}, {486, 401, false}, {407, 404, true}, {484, 480, true},
		{486, 404, false}, {404, 486, false}, {401, 407, false},
		{302, 401, true}, {401, 302, false}, {603, 200, true}, {500, 486, false}, {486, 500, true},
	} {
		if got := better(res(c.a), res(c.b)); got != c.want {
			t.Errorf("better(%d, %d) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestContactHop: a restored stream binding is dialled at its Contact
// only when that is the address its REGISTER came from (a NATed device's
// private address, or one a registrant chose, is not dialled), with the
// transport's default port.
func TestContactHop(t *testing.T) {
	for _, c := range []struct {
		contact, tp, source, want string
	}{
		{"sip:bob@192.0.2.7:5074;transport=tcp", "tcp", "192.0.2.7:40000", "192.0.2.7:5074"},
		{"sips:bob@192.0.2.7", "tls", "192.0.2.7:40000", "192.0.2.7:5061"},
		{"sip:bob@192.0.2.7;transport=tcp", "tcp", "192.0.2.7:40000", "192.0.2.7:5060"},
		{"sip:bob@[2001:db8::7]:5074", "tcp", "[2001:db8::7]:40000", "[2001:db8::7]:5074"},
		{"sip:bob@10.0.0.7:5074;transport=tcp", "tcp", "192.0.2.7:40000", ""},   // behind NAT
		{"sip:bob@198.51.100.1:22;transport=tcp", "tcp", "192.0.2.7:40000", ""}, // elsewhere
		{"sip:bob@phone.example:5074;transport=tcp", "tcp", "192.0.2.7:40000", ""},
	} {
		var u sip.Uri
		if err := sip.ParseUri(c.contact, &u); err != nil {
			t.Fatal(err)
		}
		h, ok := contactHop(&u, c.tp, c.source)
		got := ""
		if ok {
			got = h.addr()
		}
		if got != c.want {
			t.Errorf("contactHop(%s, %s, %s) = %q, want %q", c.contact, c.tp, c.source, got, c.want)
		}
	}
}
