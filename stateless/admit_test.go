package stateless

import (
	"hash/maphash"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The 503 built from raw bytes is the answer sipgo's parser reads back:
// the request's Via (the top one with received and the rport value when
// asked), From, To (with a tag, the same for the same request), Call-ID
// and CSeq, and a Retry-After.
func TestRawRefusal(t *testing.T) {
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5099}
	seed := maphash.MakeSeed()
	for _, c := range []struct {
		name, req, wantTopVia string
		wantToTag           string // "" : a tag made up
	}{
		{"sipp", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-1;rport\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c1\nCSeq: 1 REGISTER\nContact: <sip:a@10.0.0.1:5070>\nContent-Length: 0\n\n",
			"SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-1;rport=5099;received=127.0.0.9", ""},
		{"compact, two Vias, rport in the middle", "REGISTER sip:b SIP/2.0\nv: SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bK-2\nv: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-0\nf: <sip:a@b>;tag=1\nt: \"A\" <sip:a@b>\ni: c2\nCSeq: 7 REGISTER\nl: 0\n\n",
			"SIP/2.0/UDP 10.0.0.1:5070;rport=5099;received=127.0.0.9;branch=z9hG4bK-2", ""},
		{"no rport, To tagged", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-3;rportx=1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b;transport=udp>;tag=abc\nCall-ID: c3\nCSeq: 2 REGISTER\n\n",
			"SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-3;rportx=1", "abc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := []byte(crlf(c.req))
			out, ok := rawRefusal(nil, raw, src, 7, seed)
			if !ok {
				t.Fatal("not built")
			}
			again, _ := rawRefusal(nil, raw, src, 7, seed)
			if string(again) != string(out) {
				t.Errorf("two answers to the same request differ:\n%s\n%s", out, again)
			}
			m, err := sip.NewParser().ParseSIP(out)
			if err != nil {
				t.Fatalf("the answer does not parse: %v\n%s", err, out)
			}
			res := m.(*sip.Response)
			rm, _ := sip.NewParser().ParseSIP(raw)
			req := rm.(*sip.Request)
			if res.StatusCode != 503 || res.Reason != "Service Unavailable" {
				t.Errorf("status %d %s", res.StatusCode, res.Reason)
			}
			vias := res.GetHeaders("Via")
			if len(vias) != len(req.GetHeaders("Via")) || vias[0].Value() != c.wantTopVia {
				t.Errorf("Via %v, want %d, the top one %q", vias, len(req.GetHeaders("Via")), c.wantTopVia)
			}
			if res.From().Value() != req.From().Value() || res.CallID().Value() != req.CallID().Value() || res.CSeq().Value() != req.CSeq().Value() {
				t.Errorf("From/Call-ID/CSeq %q %q %q, want the request's", res.From().Value(), res.CallID().Value(), res.CSeq().Value())
			}
			tag, _ := res.To().Params.Get("tag")
			if res.To().Address.String() != req.To().Address.String() || tag == "" || (c.wantToTag != "" && tag != c.wantToTag) {
				t.Errorf("To %q (tag %q), want the request's with a tag %q", res.To().Value(), tag, c.wantToTag)
			}
			if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "7" {
				t.Errorf("Retry-After %v, want 7", h)
			}
		})
	}
	for _, c := range []struct{ name, req string }{
		{"folded line", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-4\nFrom: <sip:a@b>\n ;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 REGISTER\n\n"},
		{"two Vias on one line", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-5, SIP/2.0/UDP g;branch=z9hG4bK-6\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 REGISTER\n\n"},
		{"no Call-ID", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-7\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCSeq: 1 REGISTER\n\n"},
		{"two To", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-8\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nt: <sip:x@b>\nCall-ID: c\nCSeq: 1 REGISTER\n\n"},
		{"a tag written oddly", "REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-9\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>;tag =2\nCall-ID: c\nCSeq: 1 REGISTER\n\n"},
		{"no Via", "REGISTER sip:b SIP/2.0\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 REGISTER\n\n"},
	} {
		if out, ok := rawRefusal(nil, []byte(crlf(c.req)), src, 5, seed); ok {
			t.Errorf("%s: built %q, want it left to the queued path", c.name, out)
		}
	}
	bareCR := "REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-10\r\nFrom: <sip:a@b>;tag=1\rX: y\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n"
	if out, ok := rawRefusal(nil, []byte(bareCR), src, 5, seed); ok {
		t.Errorf("a bare CR: built %q, want it left to the queued path", out)
	}
}

// blockingHandler answers 200 once per token, so that a test holds the
// worker on one request while others arrive.
type blockingHandler struct {
	mu      sync.Mutex
	calls   []string // Call-IDs handled
	started chan string
	tokens  chan struct{}
}

func (h *blockingHandler) handle(req *sip.Request, tx sip.ServerTransaction) {
	h.mu.Lock()
	h.calls = append(h.calls, req.CallID().Value())
	h.mu.Unlock()
	h.started <- req.CallID().Value()
	<-h.tokens
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// While the last request a worker took had waited past MaxQueueDelay, a
// REGISTER without credentials is answered 503 by the reader at once
// (the worker is still busy: it never saw it), one with credentials is
// queued and served; once the measurement is older than MaxQueueDelay the
// front admits again.
func TestOverloadShedsAtAdmission(t *testing.T) {
	h := &blockingHandler{started: make(chan string, 16), tokens: make(chan struct{}, 16)}
	const maxDelay = time.Second
	u := newUDPFront(t, h.handle, Config{Workers: 1, MaxQueueDelay: maxDelay})
	wait := func(what string) string {
		select {
		case id := <-h.started:
			return id
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the worker never started", what)
			return ""
		}
	}
	u.send(t, udpRegister("z9hG4bK-a", true))
	wait("a")
	u.send(t, udpRegister("z9hG4bK-b", true)) // queued behind a
	time.Sleep(maxDelay + 200*time.Millisecond)
	h.tokens <- struct{}{} // a answered; the worker takes b: it waited past maxDelay
	if id := wait("b"); id != "z9hG4bK-b" {
		t.Fatalf("the worker took %q, want z9hG4bK-b", id)
	}
	// The worker holds b. c, without credentials, gets its 503 now.
	u.send(t, udpRegister("z9hG4bK-c", false))
	got := u.answers(t, 2) // a's 200 and c's 503
	res := got["z9hG4bK-c"]
	if !strings.HasPrefix(res, "SIP/2.0 503 Service Unavailable\r\n") || !strings.Contains(res, "\r\nRetry-After: ") {
		t.Fatalf("c, without credentials, while overloaded: %q, want 503 with Retry-After at once", res)
	}
	// d, with credentials, is queued and served.
	u.send(t, udpRegister("z9hG4bK-d", true))
	h.tokens <- struct{}{} // b
	if id := wait("d"); id != "z9hG4bK-d" {
		t.Fatalf("the worker took %q, want z9hG4bK-d", id)
	}
	h.tokens <- struct{}{} // d
	if got := u.answers(t, 2); !strings.HasPrefix(got["z9hG4bK-d"], "SIP/2.0 200 ") {
		t.Errorf("d, with credentials: %q, want 200", got["z9hG4bK-d"])
	}
	// Idle past maxDelay: the last measurement lapsed, e is admitted.
	time.Sleep(maxDelay + 100*time.Millisecond)
	u.send(t, udpRegister("z9hG4bK-e", false))
	if id := wait("e"); id != "z9hG4bK-e" {
		t.Fatalf("the worker took %q, want z9hG4bK-e", id)
	}
	h.tokens <- struct{}{}
	if got := u.answers(t, 1); !strings.HasPrefix(got["z9hG4bK-e"], "SIP/2.0 200 ") {
		t.Errorf("e, after the overload: %q, want 200", got["z9hG4bK-e"])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.Join(h.calls, " ") != "z9hG4bK-a z9hG4bK-b z9hG4bK-d z9hG4bK-e" {
		t.Errorf("handled %v, want a b d e (c refused at admission)", h.calls)
	}
	if got := u.shedReasons(); len(got) != 1 || got[0] != ShedOverload {
		t.Errorf("shed %v, want one overload", got)
	}
}
