package proxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/store"
)

func response(t *testing.T, req *sip.Request, code int, toTag string) *sip.Response {
	t.Helper()
	res := sip.NewResponseFromRequest(req, code, "", nil)
	res.To().Params.Add("tag", toTag)
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "192.0.2.20", Port: 5062}})
	return res
}

func TestDialogLifecycle(t *testing.T) {
	p := testProxy(t)
	req := parseReq(t, strings.Replace(invite, "Content-Length: 0", "Contact: <sip:alice@192.0.2.1:5060>\nContent-Length: 0", 1))
	req.SetSource("192.0.2.1:5060")
	req.SetTransport("UDP")
	cl := &call{p: p, req: req, caller: caller{Username: "alice", Credential: store.Credential{ID: "cred-alice"}}}
	b := &branch{t: target{hop: Hop{Host: "192.0.2.20", Port: 40000, Transport: "tcp"}, binding: &store.Binding{CredentialID: "cred-bob"}}}

	p.dialogs.confirm(cl, b, response(t, req, 183, "bob-1"), true)
	if n := p.dialogs.Count(); n != 0 {
		t.Fatalf("an early dialog counts as a call: %d", n)
	}
	bye := parseReq(t, strings.NewReplacer("INVITE sip:", "PRACK sip:", "CSeq: 314159 INVITE", "CSeq: 314160 PRACK",
		"To: <sip:bob@sipwarden.test>", "To: <sip:bob@sipwarden.test>;tag=bob-1").Replace(invite))
	if d, toCallee := p.dialogs.match(bye); d == nil || !toCallee {
		t.Fatal("a PRACK in the early dialog did not match it")
	}
	p.dialogs.confirm(cl, b, response(t, req, 200, "bob-1"), false)
	calls := p.dialogs.Calls()
	if len(calls) != 1 || calls[0].CallerCredential != "cred-alice" || calls[0].CalleeCredential != "cred-bob" {
		t.Fatalf("calls %+v, want one with both credentials", calls)
	}
	// A re-INVITE from the callee's side must not add a reversed copy.
	re := parseReq(t, strings.NewReplacer("From: <sip:alice@sipwarden.test>;tag=1928301774", "From: <sip:bob@sipwarden.test>;tag=bob-1",
		"To: <sip:bob@sipwarden.test>", "To: <sip:alice@sipwarden.test>").Replace(invite))
	recl := &call{p: p, req: re}
	p.dialogs.confirm(recl, &branch{t: target{hop: Hop{Host: "192.0.2.1", Port: 5060, Transport: "udp"}}}, response(t, re, 200, "1928301774"), false)
	if n := p.dialogs.Count(); n != 1 {
		t.Fatalf("%d calls after a re-INVITE from the callee, want 1", n)
	}
	// The BYE the proxy sends the caller on revocation: to the caller's
	// Contact, over its flow, as if from the callee.
	d, _ := p.dialogs.match(bye)
	r := p.byeFor(d, false, reasonRevoked)
	if r.Recipient.Host != "192.0.2.1" || r.Destination() != "192.0.2.1:5060" || tagOf(r.From().Params) != "bob-1" || tagOf(r.To().Params) != "1928301774" {
		t.Fatalf("BYE to the caller: %s to %s, From %s, To %s", r.Recipient.String(), r.Destination(), r.From().Value(), r.To().Value())
	}
	r = p.byeFor(d, true, reasonRevoked)
	if r.Recipient.Port != 5062 || r.Destination() != "192.0.2.20:40000" || r.Transport() != "TCP" || r.CSeq().SeqNo != 314160 {
		t.Fatalf("BYE to the callee: %s to %s over %s, CSeq %d", r.Recipient.String(), r.Destination(), r.Transport(), r.CSeq().SeqNo)
	}
	p.dialogs.remove(d, CauseNormal)
	if n := p.dialogs.Count(); n != 0 {
		t.Fatalf("%d calls after remove", n)
	}
}

func TestEarlyDialogDroppedOnFailure(t *testing.T) {
	p := testProxy(t)
	req := parseReq(t, invite)
	req.SetSource("192.0.2.1:5060")
	cl := &call{p: p, req: req}
	b := &branch{t: target{hop: Hop{Host: "192.0.2.20", Port: 5060, Transport: "udp"}}}
	p.dialogs.confirm(cl, b, response(t, req, 180, "x"), true)
	p.dialogs.confirm(cl, b, response(t, req, 180, "y"), true)
	p.dialogs.dropEarly("a84b4c76e66710", "1928301774", "x")
	p.dialogs.mu.Lock()
	left := len(p.dialogs.by["a84b4c76e66710"])
	p.dialogs.mu.Unlock()
	if left != 1 {
		t.Fatalf("%d early dialogs left, want only the other branch's", left)
	}
}

// byeRecorder is a Sender that keeps the requests the proxy sends and
// sends nothing.
type byeRecorder struct {
	mu   sync.Mutex
	reqs []*sip.Request
}

func (b *byeRecorder) TransactionRequest(_ context.Context, req *sip.Request, _ ...sipgo.ClientRequestOption) (sip.ClientTransaction, error) {
	b.mu.Lock()
	b.reqs = append(b.reqs, req)
	b.mu.Unlock()
	return nil, errors.New("test: not sent")
}

func (b *byeRecorder) WriteRequest(*sip.Request, ...sipgo.ClientRequestOption) error { return nil }

func (b *byeRecorder) wait(t *testing.T, n int) []*sip.Request {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b.mu.Lock()
		if len(b.reqs) >= n {
			out := b.reqs
			b.reqs = nil
			b.mu.Unlock()
			return out
		}
		b.mu.Unlock()
	}
	t.Fatalf("fewer than %d requests sent", n)
	return nil
}

// TestHangupReason: a call hung up through the API (EndCall, DELETE
// /v1/calls/{id}) revoked nothing: its BYEs used to say
// Reason: SIP;cause=403;text="Credential revoked" to both phones, as for
// a deleted credential. Ending a credential's calls still says so.
func TestHangupReason(t *testing.T) {
	p := testProxy(t)
	rec := &byeRecorder{}
	p.send = rec
	confirm := func(callID string) {
		raw := strings.Replace(invite, "Content-Length: 0", "Contact: <sip:alice@192.0.2.1:5060>\nContent-Length: 0", 1)
		req := parseReq(t, strings.Replace(raw, "Call-ID: a84b4c76e66710", "Call-ID: "+callID, 1))
		req.SetSource("192.0.2.1:5060")
		req.SetTransport("UDP")
		cl := &call{p: p, req: req, caller: caller{Username: "alice", Credential: store.Credential{ID: "cred-alice"}}}
		b := &branch{t: target{hop: Hop{Host: "192.0.2.20", Port: 40000, Transport: "udp"}, binding: &store.Binding{CredentialID: "cred-bob"}}}
		p.dialogs.confirm(cl, b, response(t, req, 200, "bob-1"), false)
	}
	confirm("op-1")
	if !p.dialogs.EndCall("op-1", "1928301774", "bob-1") {
		t.Fatal("EndCall did not find the call")
	}
	for _, r := range rec.wait(t, 2) {
		reason := r.GetHeader("Reason")
		if r.Method != sip.BYE || reason == nil || strings.Contains(reason.Value(), "revoked") || !strings.Contains(reason.Value(), "operator") {
			t.Fatalf("BYE of a call hung up by the operator: %s with Reason %v", r.Method, reason)
		}
	}
	confirm("rev-1")
	if n := p.dialogs.EndCredential("cred-alice"); n != 1 {
		t.Fatalf("EndCredential ended %d calls, want 1", n)
	}
	for _, r := range rec.wait(t, 2) {
		if reason := r.GetHeader("Reason"); reason == nil || reason.Value() != `SIP;cause=403;text="Credential revoked"` {
			t.Fatalf("BYE of a revoked credential's call: Reason %v", reason)
		}
	}
}
