package proxy

import (
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// inDialog routes a request inside a dialog this proxy record-routed
// (RFC 3261 16.12 loose routing): to the other side over the flow the
// dialog was set up on, without a challenge. A request for a dialog we
// do not know gets 481, so that a forged Route cannot use us as a relay.
func (p *Proxy) inDialog(req *sip.Request, tx sip.ServerTransaction, ourRoute bool, lh string, ev *Event) {
	d, toCallee := p.dialogs.match(req)
	if d == nil && req.Method == sip.NOTIFY && p.dialogs.awaitSubscription(req) {
		d, toCallee = p.dialogs.match(req)
	}
	if d == nil {
		if req.Method == sip.ACK {
			return // the ACK of a non-2xx final response we sent: absorbed
		}
		ev.Status = p.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if !ourRoute {
		p.log.Debug("in-dialog request without our Route", "method", req.Method, "call_id", d.CallID)
	}
	hop := d.callerHop
	if toCallee {
		hop = d.calleeHop
	}
	if cs := req.CSeq(); cs != nil && req.Method != sip.ACK && req.Method != sip.CANCEL {
		p.dialogs.noteCSeq(d, toCallee, cs.SeqNo)
	}
	t := target{uri: *req.Recipient.Clone(), hop: hop}
	if req.Method == sip.ACK {
		p.forwardACK(req, t, lh)
		if toCallee {
			d.markAcked()
		}
		return
	}
	if req.Method == sip.BYE && toCallee && d.Call {
		d.waitAcked(250 * time.Millisecond)
	}
	if req.Method == sip.BYE {
		p.dialogs.mu.Lock()
		d.ending = true
		p.dialogs.mu.Unlock()
	}
	if !p.acquire(req, tx, ev, req.Method == sip.BYE) {
		return
	}
	defer p.inFlight.Add(-1)
	ev.Forwarded = true
	cl := p.newCall(req, tx, caller{}, lh, ev)
	if req.Method == sip.BYE {
		// Any final answer to a BYE ends the dialog (RFC 3261 15.1.2).
		cl.onFinal = func(*sip.Response, *branch) { go p.dialogs.remove(d, CauseNormal) }
	}
	cl.startBranch(t, false)
	cl.wait()
}

// forwardACK relays the ACK of a 2xx statelessly (RFC 3261 16.11): it is
// a transaction of its own, end to end. The branch is derived from the
// incoming one, so that retransmissions carry the same branch.
func (p *Proxy) forwardACK(req *sip.Request, t target, lh string) {
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return
	}
	fwd := forwardCopy(req, *req.Recipient.Clone())
	branch := branchPrefix + lh + ".a"
	if v := req.Via(); v != nil {
		b, _ := v.Params.Get("branch")
		branch = branchPrefix + lh + ".a" + loopHashString(b)
	}
	via, ok := p.via(t.hop.Transport, branch)
	if !ok {
		return
	}
	fwd.PrependHeader(via)
	fwd.SetTransport(strings.ToUpper(t.hop.Transport))
	fwd.SetDestination(t.hop.addr())
	p.setLocalAddr(fwd, t.hop.Transport)
	if err := p.send.WriteRequest(fwd, noBuild); err != nil {
		p.log.Debug("forward ACK", "destination", t.hop.addr(), "error", err)
	}
}
