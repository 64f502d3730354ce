package proxy

import (
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// recordingTx is a server transaction that keeps what it is asked to
// send.
type recordingTx struct {
	mu   sync.Mutex
	sent []*sip.Response
	done chan struct{}
}

func (r *recordingTx) Respond(res *sip.Response) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, res)
	return nil
}
func (r *recordingTx) Acks() <-chan *sip.Request          { return nil }
func (r *recordingTx) OnCancel(sip.FnTxCancel) bool       { return false }
func (r *recordingTx) Terminate()                         {}
func (r *recordingTx) OnTerminate(sip.FnTxTerminate) bool { return false }
func (r *recordingTx) Done() <-chan struct{}              { return r.done }
func (r *recordingTx) Err() error                         { return nil }

// TestNoTimeoutAnswerToNonInvite: a call whose branches timed out without
// any answer sends the caller 408 for an INVITE, and nothing at all for
// another method (RFC 4320 section 4.2: a transaction-stateful element
// MUST NOT send a 408 to a non-INVITE request).
func TestNoTimeoutAnswerToNonInvite(t *testing.T) {
	p := testProxy(t)
	for _, c := range []struct {
		method string
		sent   int
	}{{"INVITE", 1}, {"MESSAGE", 0}, {"SUBSCRIBE", 0}} {
		raw := "MESSAGE sip:bob@sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\nMax-Forwards: 70\n" +
			"From: <sip:alice@sipwarden.test>;tag=1\nTo: <sip:bob@sipwarden.test>\nCall-ID: c1\nCSeq: 1 MESSAGE\nContent-Length: 0\n\n"
		req := parseReq(t, raw)
		req.Method = sip.RequestMethod(c.method)
		req.CSeq().MethodName = req.Method
		req.SetSource("192.0.2.1:5060")
		req.SetTransport("UDP")
		tx := &recordingTx{done: make(chan struct{})}
		cl := &call{p: p, req: req, tx: tx, done: make(chan struct{}), ev: &Event{}}
		cl.mu.Lock()
		cl.sendBestLocked() // no branch answered: best is nil, a 408
		cl.mu.Unlock()
		if len(tx.sent) != c.sent {
			t.Errorf("%s: %d responses sent, want %d", c.method, len(tx.sent), c.sent)
		}
		if c.sent == 1 && tx.sent[0].StatusCode != 408 {
			t.Errorf("%s: sent %d, want 408", c.method, tx.sent[0].StatusCode)
		}
		if cl.ev.Status != 408 {
			t.Errorf("%s: the call's status %d, want 408 (for the log)", c.method, cl.ev.Status)
		}
	}
}

// TestViaBelowOurs: a response with only the proxy's Via was meant for it
// (RFC 3261 16.7 step 3) and is not relayed; one with the caller's is.
func TestViaBelowOurs(t *testing.T) {
	one := sip.NewResponse(200, "OK")
	one.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: 5060, Params: sip.NewParams()})
	if viaBelowOurs(one) {
		t.Error("a response with one Via: relayed")
	}
	two := one.Clone()
	two.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "192.0.2.1", Port: 5060, Params: sip.NewParams()})
	if !viaBelowOurs(two) {
		t.Error("a response with the caller's Via below ours: not relayed")
	}
}
