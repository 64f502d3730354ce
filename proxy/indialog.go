package proxy

import (
	"net/netip"
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
	if !p.fromDialogSide(req, d, toCallee) {
		// A request naming a dialog's Call-ID and tags from an address of
		// neither side: a BYE tearing down someone else's call, a
		// re-INVITE redirecting its media (RFC 3261 26.1, 26.3.2.2). Any
		// sender who learnt the three values could do it.
		p.log.Debug("in-dialog request from outside the dialog", "method", req.Method, "call_id", d.CallID, "source", req.Source())
		if req.Method != sip.ACK {
			ev.Status = p.reply(req, tx, 403, "Forbidden")
		}
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
		// Its call slots are given back before the answer is relayed: a
		// caller at its max_calls who hung up and called again at once
		// got 503 while the removal's goroutine had not run yet.
		cl.onFinal = func(*sip.Response, *branch) {
			d.hold.release()
			go p.dialogs.remove(d, CauseNormal)
		}
	}
	cl.startBranch(t, false)
	cl.wait()
}

// fromDialogSide reports whether req comes from the side of d it claims
// to: the caller's address for a request toward the callee, the callee's
// for one toward the caller (the hosts of the flows the dialog was set up
// on; the port may differ, as a phone's new TCP connection's does). A
// side reached by a name, a trusted peer, an ip connection's address and
// a cluster's relay are not checked.
func (p *Proxy) fromDialogSide(req *sip.Request, d *Dialog, toCallee bool) bool {
	side := d.calleeHop.Host
	if toCallee {
		side = d.callerHop.Host
	}
	want, err := netip.ParseAddr(strings.Trim(side, "[]"))
	if err != nil {
		return true
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return false
	}
	if src.Addr().Unmap() == want.Unmap() {
		return true
	}
	return p.ByAddress(req.Source()) || p.relayed(req)
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
