package reply_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
	"github.com/sipwarden/sipwarden/sipparse"
)

func parseRequest(t testing.TB, raw string) *sip.Request {
	t.Helper()
	data := []byte(strings.ReplaceAll(raw, "\n", "\r\n"))
	// The stateless front's parser where it takes the request (its
	// parameter lists share one allocation), else sipgo's.
	req, ok := sipparse.Request(data)
	if !ok {
		msg, err := sip.NewParser().ParseSIP(data)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		req = msg.(*sip.Request)
	}
	req.SetSource("192.0.2.7:5062")
	req.SetTransport("UDP")
	return req
}

const register = `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport
v: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK0;received=10.0.0.9
Max-Forwards: 70
From: "Alice" <sip:alice@example.com>;tag=a1
To: <sip:alice@example.com>
Call-ID: reg-1@10.0.0.2
CSeq: 2 REGISTER
Contact: <sip:alice@10.0.0.2:5060>
Record-Route: <sip:proxy.example.com;lr>
Content-Length: 0

`

// registerOneVia is a REGISTER sipparse parses (one Via).
const registerOneVia = `REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport
From: "Alice" <sip:alice@example.com>;tag=a1
To: <sip:alice@example.com>;x=1;y=2;z=3;w=4;v=5
Call-ID: reg-1@10.0.0.2
CSeq: 2 REGISTER
Contact: <sip:alice@10.0.0.2:5060>
Content-Length: 0

`

const invite = `INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK2
From: <sip:alice@example.com>;tag=a2
To: <sip:bob@example.com>;tag=already
i: call-2@10.0.0.2
CSeq: 7 INVITE
Record-Route: <sip:proxy.example.com;lr>
Content-Length: 0

`

var toTag = regexp.MustCompile(`(To: [^\r]*;tag=)[^;\r]+`)

// TestFromRequestAsSipgo compares FromRequest's responses, serialized,
// with sip.NewResponseFromRequest's: the same header fields in the same
// order, but for the value of a To tag either side made up.
func TestFromRequestAsSipgo(t *testing.T) {
	cases := []struct {
		name   string
		raw    string
		code   int
		reason string
	}{
		{"REGISTER 200", register, 200, "OK"},
		{"REGISTER 401", register, 401, "Unauthorized"},
		{"REGISTER 503", register, 503, "Service Unavailable"},
		{"REGISTER with one Via 200", registerOneVia, 200, "OK"},
		{"REGISTER with one Via 401", registerOneVia, 401, "Unauthorized"},
		{"INVITE 407 with To tag", invite, 407, "Proxy Authentication Required"},
		{"INVITE 404", invite, 404, "Not Found"},
		{"INVITE 200 (Record-Route: sipgo's)", invite, 200, "OK"},
		{"INVITE 180 (sipgo's)", invite, 180, "Ringing"},
		{"REGISTER 100 (sipgo's)", register, 100, "Trying"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// sipgo's, from a request whose top Via got what RFC 3261
			// 18.2.1 asks of the transport (sipgo leaves it as a TODO).
			sent := parseRequest(t, c.raw)
			reply.Received(sent.Via(), sent.Source())
			want := sip.NewResponseFromRequest(sent, c.code, c.reason, nil).String()
			req := parseRequest(t, c.raw)
			got := reply.FromRequest(req, c.code, c.reason)
			gotS := got.String()
			if toTag.ReplaceAllString(gotS, "${1}X") != toTag.ReplaceAllString(want, "${1}X") {
				t.Errorf("FromRequest:\n%s\nsipgo:\n%s", gotS, want)
			}
			if got.Destination() != "192.0.2.7:5062" || got.Transport() != "UDP" {
				t.Errorf("destination %q transport %q, want the source 192.0.2.7:5062 over UDP", got.Destination(), got.Transport())
			}
			if c.code == 100 {
				return
			}
			tag, ok := got.To().Params.Get("tag")
			if !ok || tag == "" {
				t.Errorf("To has no tag: %s", got.To())
			}
			if strings.Contains(c.raw, "tag=already") && tag != "already" {
				t.Errorf("To tag %q, want the request's", tag)
			}
			// The request is left as it was: no tag added to its To, no
			// received on its Via.
			if again := parseRequest(t, c.raw); req.To().String() != again.To().String() || req.Via().String() != again.Via().String() {
				t.Errorf("request changed: To %s Via %s", req.To(), req.Via())
			}
		})
	}
}

// TestFromRequestTagsDiffer: two responses to requests without a To tag
// get different tags.
// TestReceived: RFC 3261 18.2.1 adds received when the top Via's sent-by
// is a name or another address than the packet's source; RFC 3581 fills
// an empty rport and adds received whatever the sent-by.
func TestReceived(t *testing.T) {
	for _, c := range []struct{ via, source, want string }{
		{"SIP/2.0/WSS abc.invalid;branch=z9hG4bK1", "192.0.2.7:5062", "SIP/2.0/WSS abc.invalid;branch=z9hG4bK1;received=192.0.2.7"},
		{"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1", "192.0.2.7:5062", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;received=192.0.2.7"},
		{"SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1", "192.0.2.7:5062", "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1"},
		{"SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1", "[2001:db8::1]:5062", "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1"},
		{"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport", "192.0.2.7:5062", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport=5062;received=192.0.2.7"},
		{"SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;received=192.0.2.9", "192.0.2.7:5062", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;received=192.0.2.9"},
	} {
		req := parseRequest(t, "OPTIONS sip:x SIP/2.0\nVia: "+c.via+"\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
		reply.Received(req.Via(), c.source)
		if got := req.Via().Value(); got != c.want {
			t.Errorf("Via %s from %s:\n got %s\nwant %s", c.via, c.source, got, c.want)
		}
	}
}

func TestFromRequestTagsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tag, _ := reply.FromRequest(parseRequest(t, register), 401, "Unauthorized").To().Params.Get("tag")
		if len(tag) < 6 || seen[tag] {
			t.Fatalf("tag %q: short or seen before", tag)
		}
		seen[tag] = true
	}
}

func BenchmarkFromRequest(b *testing.B) {
	req := parseRequest(b, register)
	b.Run("reply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			reply.FromRequest(req, 401, "Unauthorized")
		}
	})
	b.Run("sipgo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		}
	})
}
