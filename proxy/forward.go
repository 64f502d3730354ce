package proxy

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// noBuild is passed to sipgo's client so that it sends the request as we
// built it (without options it would add headers of its own).
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

// dialTimeout bounds connecting to a next hop.
const dialTimeout = 5 * time.Second

// call is one request forwarded statefully to one or more branches
// (RFC 3261 16.6 and 16.7).
type call struct {
	p      *Proxy
	req    *sip.Request // the server transaction's request: never sent
	tx     sip.ServerTransaction
	ev     *Event
	caller caller
	start  time.Time
	lh     string
	// recordRoute: the forwarded requests carry our Record-Route.
	recordRoute bool
	// hold is the call's count against the per-credential and per-source
	// caps: handed to the dialog of its 2xx, released otherwise.
	hold *capHold

	mu       sync.Mutex
	branches []*branch
	pending  int
	best     *sip.Response
	// challenges are the 401 and 407 final responses of the branches, for
	// the one relayed to carry the others' challenges (16.7 step 7).
	challenges []*sip.Response
	finalSent  bool
	cancelled  bool
	gotFirst   bool
	done       chan struct{} // closed once the caller has its final response
	onFinal    func(res *sip.Response, b *branch)
}

// branch is one client transaction of a call.
type branch struct {
	fwd         *sip.Request
	t           target
	tx          sip.ClientTransaction
	provisional bool
	cancelSent  bool
	final       bool
	timedOut    bool // Timer C fired: its 487 is answered as 408
}

// forward sends an out-of-dialog request to its targets, relays the
// responses and returns once the caller has its final response.
func (p *Proxy) forward(req *sip.Request, tx sip.ServerTransaction, c caller, targets []target, lh string, ev *Event, hold *capHold) {
	cl := p.newCall(req, tx, c, lh, ev)
	cl.hold = hold
	if req.Method == sip.INVITE {
		// Its 100 Trying left when the request arrived (Proxy.serve).
		p.ringingMu.Lock()
		p.ringing[cl] = struct{}{}
		p.ringingMu.Unlock()
		if !cl.inDialog() {
			ev := cl.callEvent(CallInitiated)
			if len(targets) > 0 {
				calleeOf(&ev, &targets[0])
			}
			p.emitCall(ev)
		}
		defer func() {
			if !cl.inDialog() {
				if st := cl.finalStatus(); st >= 300 {
					ev := cl.callEvent(CallHangup)
					ev.Status, ev.Cause = st, failureCause(st)
					if len(targets) > 0 {
						calleeOf(&ev, &targets[0])
					}
					p.emitCall(ev)
				}
			}
			p.ringingMu.Lock()
			delete(p.ringing, cl)
			p.ringingMu.Unlock()
			cl.mu.Lock()
			h := cl.hold
			cl.hold = nil
			cl.mu.Unlock()
			h.release() // no 2xx took it
			// RFC 3261 12.3: the early dialogs of a call end with its
			// INVITE transaction; only the 2xx's dialogs live on.
			if cid, from := req.CallID(), req.From(); cid != nil && from != nil {
				p.dialogs.dropEarlyOf(string(*cid), tagOf(from.Params))
			}
		}()
	}
	cl.recordRoute = req.Method == sip.INVITE || req.Method == sip.SUBSCRIBE || req.Method == sip.REFER
	if (req.Method == sip.SUBSCRIBE || req.Method == sip.REFER) && !cl.inDialog() {
		// Its first NOTIFY may come before its 2xx reached us (Dialogs.
		// subscribing).
		if from := req.From(); from != nil {
			if key, ok := subscriptionKey(req.CallID(), tagOf(from.Params)); ok {
				p.dialogs.subscribing(key, cl.done)
				defer p.dialogs.subscribed(key, cl.done)
			}
		}
	}
	if len(targets) > 1 {
		// A fork: every branch counts as pending before any starts. One
		// that failed at once (a device's connection refused) left none
		// pending, and its 480 went to the caller while the other device
		// rang and then answered 200 (RFC 3261 16.7 waits for every
		// branch). Each starts on a goroutine of its own, so that a slow
		// connect does not hold back the others' ringing.
		cl.mu.Lock()
		cl.pending += len(targets)
		cl.mu.Unlock()
		for _, t := range targets {
			go cl.startBranchWith(t, cl.recordRoute, nil, true)
		}
	} else {
		for _, t := range targets {
			cl.startBranch(t, cl.recordRoute)
		}
	}
	cl.wait()
}

// involves reports whether the call's caller, or the binding of one of
// its branches, is the credential.
func (cl *call) involves(credentialID string) bool {
	if cl.caller.Credential.ID == credentialID {
		return true
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, b := range cl.branches {
		if b.t.binding != nil && b.t.binding.CredentialID == credentialID {
			return true
		}
	}
	return false
}

func (p *Proxy) newCall(req *sip.Request, tx sip.ServerTransaction, c caller, lh string, ev *Event) *call {
	cl := &call{p: p, req: req, tx: tx, ev: ev, caller: c, start: p.now(), lh: lh, done: make(chan struct{})}
	if req.Method == sip.INVITE {
		// sipgo answers the CANCEL and our INVITE (487) itself; we cancel
		// the branches (RFC 3261 16.10). sipgo v1.7.4 calls OnCancel with
		// the server transaction's lock held (ServerTx.actCancel), and
		// relayLocked holds cl.mu while it calls tx.Respond, which takes
		// that lock: cancelling inline would take the two locks in the
		// opposite order and deadlock a CANCEL that crosses a 180.
		tx.OnCancel(func(*sip.Request) { go cl.cancelAll(true) })
	}
	return cl
}

// wait blocks until the caller has its final response, or the server
// transaction ends (CANCEL answered by sipgo, transport error).
func (cl *call) wait() {
	cl.mu.Lock()
	if cl.pending == 0 && !cl.finalSent {
		cl.sendBestLocked()
	}
	cl.mu.Unlock()
	select {
	case <-cl.done:
	case <-cl.tx.Done():
		cl.mu.Lock()
		if !cl.finalSent {
			cl.finalSent = true
			cl.ev.Status = 487
			close(cl.done)
		}
		cl.mu.Unlock()
	}
}

// startBranch forwards a copy of the request to t (RFC 3261 16.6).
func (cl *call) startBranch(t target, recordRoute bool) {
	cl.startBranchWith(t, recordRoute, nil, false)
}

// startBranchWith is startBranch adding extra (a gateway's credentials)
// to the forwarded request; reserved: the call's pending count was taken
// for it already (a retry replacing a branch that ended).
func (cl *call) startBranchWith(t target, recordRoute bool, extra sip.Header, reserved bool) {
	p := cl.p
	u := t.uri
	fwd := forwardCopy(cl.req, *u.Clone()) // steps 1 to 3
	if extra != nil {
		fwd.AppendHeader(extra)
	}
	// Step 4: Record-Route, so that the dialog's requests come through us.
	if recordRoute {
		p.addRecordRoute(fwd, cl.req.Transport(), t.hop.Transport)
	}
	// Step 8: our Via, its branch carrying the loop hash.
	via, ok := p.via(t.hop.Transport, newBranch(cl.lh))
	if !ok {
		if reserved {
			cl.mu.Lock()
			cl.pending--
			cl.mu.Unlock()
		}
		cl.addFailed(t, 502, "No Listener For Transport "+strings.ToUpper(t.hop.Transport))
		return
	}
	fwd.PrependHeader(via)
	fwd.SetTransport(strings.ToUpper(t.hop.Transport))
	fwd.SetDestination(t.hop.addr())
	p.setLocalAddr(fwd, t.hop.Transport)

	b := &branch{fwd: fwd, t: t}
	cl.mu.Lock()
	cl.branches = append(cl.branches, b)
	if !reserved {
		cl.pending++
	}
	cancelled := cl.cancelled
	cl.mu.Unlock()
	if cancelled {
		// The call was cancelled, or answered elsewhere, before this
		// branch of a fork started (each starts on a goroutine of its
		// own): it is not sent, and ends as a cancelled branch does.
		cl.onResponse(b, cl.synth(487, "Request Terminated"))
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	ctx2, err := p.send.TransactionRequest(ctx, fwd, noBuild)
	cancel()
	if err != nil {
		p.log.Debug("forward failed", "method", fwd.Method, "destination", t.hop.addr(), "transport", t.hop.Transport, "error", err)
		code, reason := 480, "Temporarily Unavailable"
		if t.binding == nil {
			code, reason = 502, "Bad Gateway"
		}
		cl.onResponse(b, cl.synth(code, reason))
		return
	}
	b.tx = ctx2
	if cl.req.Method == sip.INVITE {
		// RFC 3261 17.1.1.2: 2xx retransmissions reach the transaction's
		// hook, not Responses(); relay them upstream.
		b.tx.OnRetransmission(func(res *sip.Response) {
			if res.IsSuccess() && viaBelowOurs(res) { // 16.7 step 3, as runBranch
				cl.relay(res)
			}
		})
	}
	go cl.runBranch(b)
}

// forwardCopy returns the copy of req to forward to recipient (RFC 3261
// 16.6 steps 1 to 3): the same headers in the same order and the body,
// without Proxy-Authorization (credentials for us go no further, 22.3;
// baresip also resends them on ACK and BYE), with Max-Forwards one less
// (70 when missing; the caller refused 0 already), and never above 70:
// RFC 3261 20.22 bounds it to 255, and 70 is the value 8.1.1.6 asks
// for, the limit Kamailio's maxfwd module applies too. The header values are
// shared with req, not cloned (a clone of every header was 3% of the CPU
// of a proxied call): the proxy only adds and removes headers on the copy,
// its Max-Forwards is a new value, and the server transaction's request
// is never sent.
func forwardCopy(req *sip.Request, recipient sip.Uri) *sip.Request {
	fwd := sip.NewRequest(req.Method, recipient)
	fwd.SipVersion = "SIP/2.0" // the caller's spelling, whatever its case, was checked (sipcheck.Version)
	mf := sip.MaxForwardsHeader(70)
	if old := req.MaxForwards(); old != nil {
		mf = sip.MaxForwardsHeader(min(max(old.Val(), 1)-1, 70))
	}
	added := false
	for _, h := range req.Headers() {
		switch h.(type) {
		case *sip.MaxForwardsHeader:
			if !added {
				fwd.AppendHeader(&mf)
				added = true
			}
			continue
		}
		if strings.EqualFold(h.Name(), "Proxy-Authorization") {
			continue
		}
		if strings.EqualFold(h.Name(), "Authorization") && isBearer(h.Value()) {
			// A token for this server (JsSIP's authorization_jwt puts it
			// on every request, in-dialog ones too): never handed on to
			// the callee or a gateway.
			continue
		}
		fwd.AppendHeader(h)
	}
	if !added {
		fwd.AppendHeader(&mf)
	}
	fwd.SetBody(req.Body())
	// The fields as they are (the callers set transport and destination):
	// Request.Source and Destination would derive missing ones from the
	// headers, allocating.
	fwd.SetTransport(req.MessageData.Transport())
	fwd.SetSource(req.MessageData.Source())
	fwd.Laddr = req.Laddr
	return fwd
}

// isBearer reports whether an Authorization value is a Bearer token
// (RFC 6750 section 2.1: the scheme is case-insensitive).
func isBearer(v string) bool {
	return len(v) >= 7 && strings.EqualFold(v[:7], "Bearer ")
}

// addFailed records a branch that could not be started.
func (cl *call) addFailed(t target, code int, reason string) {
	b := &branch{t: t}
	cl.mu.Lock()
	cl.branches = append(cl.branches, b)
	cl.pending++
	cl.mu.Unlock()
	cl.onResponse(b, cl.synth(code, reason))
}

// synth builds a response the proxy itself sends in a branch's name.
func (cl *call) synth(code int, reason string) *sip.Response {
	return cl.p.newResponse(cl.req, code, reason)
}

// runBranch reads one client transaction until its final response,
// applying Timer C (RFC 3261 16.6 step 11 and 16.8) to INVITEs.
func (cl *call) runBranch(b *branch) {
	growStack()
	// After a 2xx to an INVITE the client transaction is left to end by
	// itself: it stays Accepted for Timer M (RFC 6026 section 7.2), and
	// the callee's 2xx retransmissions, until the caller's ACK stops
	// them, reach OnRetransmission and are relayed (RFC 3261 16.7 step 5:
	// the caller whose first 200 was lost gets the next). Terminated at
	// once, as every other ending is, sipgo drops them as unknown
	// responses and the call fails when a 200 to a UDP caller is lost.
	accepted := false
	defer func() {
		if !accepted {
			b.tx.Terminate()
		}
	}()
	p := cl.p
	var timerC <-chan time.Time
	var tc *time.Timer
	if cl.req.Method == sip.INVITE {
		tc = time.NewTimer(p.cfg.TimerC)
		defer tc.Stop()
		timerC = tc.C
	}
	var giveUp <-chan time.Time // after a CANCEL: the callee gets 32 s to answer
	for {
		select {
		case res, ok := <-b.tx.Responses():
			if !ok {
				cl.onResponse(b, cl.synth(408, "Request Timeout"))
				return
			}
			if !viaBelowOurs(res) {
				// RFC 3261 16.7 step 3: with no Via left once ours is
				// removed, the response was meant for this proxy and is
				// not forwarded (a broken callee's; it was relayed
				// without any Via).
				cl.p.log.Debug("response without the caller's Via dropped", "status", res.StatusCode)
				continue
			}
			if res.IsProvisional() {
				if tc != nil && res.StatusCode > 100 {
					// RFC 3261 16.7 step 2: a provisional response
					// from 101 to 199 resets Timer C; a 100 does not.
					tc.Reset(p.cfg.TimerC)
				}
				cl.mu.Lock()
				b.provisional = true
				needCancel := cl.cancelled && !b.cancelSent
				cl.mu.Unlock()
				if needCancel {
					cl.sendCancel(b)
				}
			}
			cl.onResponse(b, res)
			if !res.IsProvisional() {
				accepted = cl.req.Method == sip.INVITE && res.IsSuccess()
				return
			}
		case <-b.tx.Done():
			code, reason := 408, "Request Timeout"
			if err := b.tx.Err(); err != nil && !errors.Is(err, sip.ErrTransactionTimeout) && !strings.Contains(err.Error(), "timed out") {
				code, reason = 480, "Temporarily Unavailable"
				if b.t.binding == nil {
					code, reason = 502, "Bad Gateway"
				}
			}
			cl.onResponse(b, cl.synth(code, reason))
			return
		case <-timerC:
			// Timer C: the branch rang too long. A branch that answered
			// provisionally is cancelled; one that never answered is
			// treated as a 408 (16.8).
			timerC = nil
			cl.mu.Lock()
			prov := b.provisional
			b.timedOut = true
			cl.mu.Unlock()
			if !prov {
				cl.onResponse(b, cl.synth(408, "Request Timeout"))
				return
			}
			cl.sendCancel(b)
			giveUp = time.After(64 * sip.T1)
		case <-giveUp:
			cl.onResponse(b, cl.synth(408, "Request Timeout"))
			return
		}
	}
}

// onResponse applies RFC 3261 16.7 to a response from branch b.
func (cl *call) onResponse(b *branch, res *sip.Response) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !cl.gotFirst && !cl.finalSent {
		// Not after the final answer: ServeSIP reads ev once wait returned
		// (a CANCEL ends the wait before a slow branch answers anything).
		cl.gotFirst = true
		cl.ev.FirstResponse = cl.p.now().Sub(cl.start)
	}
	code := res.StatusCode
	switch {
	case code < 200:
		// Step 5: 100 is not forwarded; other provisionals are, until a
		// final response went out.
		if code > 100 && cl.req.Method == sip.INVITE && !cl.inDialog() && !cl.finalSent {
			if to := res.To(); to != nil && to.Params.Has("tag") {
				cl.p.dialogs.confirm(cl, b, res, true)
			}
		}
		if code > 100 && !cl.finalSent {
			cl.relayLocked(res)
		}
		return
	case b.final:
		return
	}
	if code == 487 && b.timedOut {
		// The callee's answer to our Timer C CANCEL: for the caller the
		// call timed out (as Kamailio's fr_inv_timer answers).
		res = cl.synth(408, "Request Timeout")
		code = 408
	}
	b.final = true
	if code >= 300 && !cl.finalSent && !cl.cancelled {
		// A gateway's challenge or failure: the call goes on with the same
		// gateway and credentials or the next gateway (gateway.go). Its
		// pending count passes to the new branch, started off this lock.
		if t, extra, ok := cl.p.retryTarget(b, res); ok {
			cl.p.log.Debug("gateway retry", "from", b.t.hop.addr(), "to", t.hop.addr(), "status", code)
			if cl.req.Method == sip.INVITE && !cl.inDialog() {
				if cid, from, to := cl.req.CallID(), cl.req.From(), res.To(); cid != nil && from != nil && to != nil {
					cl.p.dialogs.dropEarly(string(*cid), tagOf(from.Params), tagOf(to.Params))
				}
			}
			go cl.startBranchWith(t, cl.recordRoute, extra, true)
			return
		}
		if (code == 401 || code == 407) && b.t.gwAuth != nil {
			// The gateway refused the connection's own credentials: its
			// challenge is not the caller's to answer.
			res = cl.synth(403, "Gateway Refused Credentials")
			code = 403
		}
	}
	cl.pending--
	if code < 300 {
		// Step 9: every 2xx is forwarded at once, even after another final
		// response; the dialog is tracked before the caller can ACK it.
		if cl.onFinal != nil {
			cl.onFinal(res, b)
		}
		if cl.req.Method == sip.INVITE || cl.req.Method == sip.SUBSCRIBE || cl.req.Method == sip.REFER {
			cl.p.dialogs.confirm(cl, b, res, false)
		}
		if cl.req.Method == sip.INVITE && !cl.finalSent && !cl.inDialog() {
			ev := cl.callEvent(CallAnswered)
			calleeOf(&ev, &b.t)
			ev.Status = code
			cl.p.emitCall(ev)
		}
		cl.relayLocked(res)
		if !cl.finalSent {
			cl.finalSent = true
			cl.ev.Status = code
			close(cl.done)
		}
		cl.cancelOthersLocked(b) // step 10
		return
	}
	if cl.onFinal != nil {
		cl.onFinal(res, b)
	}
	if cl.req.Method == sip.INVITE && !cl.inDialog() {
		if cid, from, to := cl.req.CallID(), cl.req.From(), res.To(); cid != nil && from != nil && to != nil {
			cl.p.dialogs.dropEarly(string(*cid), tagOf(from.Params), tagOf(to.Params))
		}
	}
	if code >= 600 {
		cl.cancelOthersLocked(b) // step 5: a 6xx ends the search
	}
	if code == 401 || code == 407 {
		cl.challenges = append(cl.challenges, res)
	}
	if cl.best == nil || better(res, cl.best) {
		cl.best = res
	}
	if cl.pending == 0 && !cl.finalSent {
		cl.sendBestLocked()
	}
}

// finalStatus is the status the caller got (0: none yet).
func (cl *call) finalStatus() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !cl.finalSent {
		return 0
	}
	return cl.ev.Status
}

// inDialog reports whether the forwarded request is inside a dialog.
func (cl *call) inDialog() bool {
	to := cl.req.To()
	return to != nil && to.Params.Has("tag")
}

// better reports whether a is a better final response than b (RFC 3261
// 16.7 step 6: a 6xx wins, else the lowest class; among 4xx, 401, 407,
// 415, 420 and 484, which the caller can act on, win over the others:
// a 486 from one device hid another's challenge).
func better(a, b *sip.Response) bool {
	ac, bc := a.StatusCode/100, b.StatusCode/100
	if ac == 6 || bc == 6 {
		return ac == 6 && bc != 6
	}
	if ac == 4 && bc == 4 {
		return actionable4xx(a.StatusCode) && !actionable4xx(b.StatusCode)
	}
	return ac < bc
}

// actionable4xx reports whether a 4xx is one RFC 3261 16.7 step 6 asks a
// proxy to prefer: the caller can retry with what it asks for.
func actionable4xx(code int) bool {
	switch code {
	case 401, 407, 415, 420, 484:
		return true
	}
	return false
}

// sendBestLocked sends the best final response once every branch ended.
func (cl *call) sendBestLocked() {
	res := cl.best
	if res == nil {
		res = cl.synth(408, "Request Timeout")
	}
	if res.StatusCode == 503 {
		// Step 6: a 503 means this hop is overloaded to the caller; the
		// callee's 503 becomes 500.
		r := cl.synth(500, "Server Internal Error")
		res = r
	}
	if (res.StatusCode == 401 || res.StatusCode == 407) && len(cl.challenges) > 1 {
		res = withChallenges(res, cl.challenges)
	}
	if cl.req.Method == sip.INVITE && !cl.inDialog() {
		// The call failed: its early dialogs end before the caller hears
		// of it, so that nothing it sends next finds them (RFC 3261 12.3).
		if cid, from := cl.req.CallID(), cl.req.From(); cid != nil && from != nil {
			cl.p.dialogs.dropEarlyOf(string(*cid), tagOf(from.Params))
		}
	}
	if res.StatusCode == 408 && cl.req.Method != sip.INVITE {
		// RFC 4320 section 4.2: a transaction-stateful element never sends
		// a 408 to a non-INVITE request, whether the 408 is ours (the
		// branches timed out) or a downstream element's; the client's own
		// Timer F has fired by now, and a late 408 only feeds a 408 storm.
		cl.p.log.Debug("no answer in time: nothing relayed", "method", string(cl.req.Method))
	} else {
		cl.relayLocked(res)
	}
	cl.finalSent = true
	cl.ev.Status = res.StatusCode
	close(cl.done)
}

// withChallenges returns a copy of res, a 401 or 407 of one branch, that
// also carries the WWW-Authenticate and Proxy-Authenticate values of the
// other branches' 401s and 407s, unchanged (RFC 3261 16.7 step 7): the
// caller answers each device's or gateway's challenge in its retry. Only
// the chosen branch's came through.
func withChallenges(res *sip.Response, all []*sip.Response) *sip.Response {
	out := res.Clone()
	for _, r := range all {
		if r == res {
			continue
		}
		for _, h := range r.Headers() {
			if strings.EqualFold(h.Name(), "WWW-Authenticate") || strings.EqualFold(h.Name(), "Proxy-Authenticate") {
				out.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
			}
		}
	}
	return out
}

func (cl *call) relay(res *sip.Response) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.relayLocked(res)
}

// relayLocked sends a response upstream (16.7 step 7: without our Via).
// A response we synthesized already has the caller's Via on top.
func (cl *call) relayLocked(res *sip.Response) {
	out := upstreamCopy(res, cl.p.isOurVia(res.Via()))
	setReplyDestination(cl.req, out)
	if err := cl.tx.Respond(out); err != nil {
		if out.IsSuccess() && cl.p.resp != nil {
			// The server transaction is gone (a 2xx after a CANCEL, or
			// a retransmission): send it on the transport directly.
			if err := cl.p.resp.WriteResponse(out); err != nil {
				cl.p.log.Debug("relay 2xx", "error", err)
			}
			return
		}
		cl.p.log.Debug("relay response", "status", out.StatusCode, "error", err)
	}
}

// viaBelowOurs reports whether res carries a Via besides the top one
// (ours, on a response to a request this proxy forwarded).
func viaBelowOurs(res *sip.Response) bool {
	n := 0
	for _, h := range res.Headers() {
		if _, ok := h.(*sip.ViaHeader); ok {
			if n++; n == 2 {
				return true
			}
		}
	}
	return false
}

// isOurVia reports whether via is one this proxy put on a forwarded
// request.
func (p *Proxy) isOurVia(via *sip.ViaHeader) bool {
	if via == nil {
		return false
	}
	br, _ := via.Params.Get("branch")
	return strings.HasPrefix(br, branchPrefix) && p.ours[strings.ToLower(via.Host)+":"+strconv.Itoa(via.Port)]
}

// upstreamCopy returns the response to relay for res: the same start
// line, headers in the same order and body, without the top Via when
// dropTopVia. The header values are shared with res, not cloned (cloning
// every header of every relayed response was 5% of the CPU of a proxied
// call): a received response's headers are only read after parsing, by us
// and by sipgo, and res itself is never sent.
func upstreamCopy(res *sip.Response, dropTopVia bool) *sip.Response {
	out := sip.NewResponse(res.StatusCode, res.Reason)
	out.SipVersion = res.SipVersion
	for _, h := range res.Headers() {
		if dropTopVia {
			if _, ok := h.(*sip.ViaHeader); ok {
				dropTopVia = false
				continue
			}
		}
		out.AppendHeader(h)
	}
	out.SetBody(res.Body())
	// The fields as they are, as in forwardCopy (relayLocked sets the
	// destination): Response.Destination would derive a missing one from
	// our own Via, allocating.
	out.SetTransport(res.MessageData.Transport())
	out.SetSource(res.MessageData.Source())
	return out
}

// cancelAll cancels every pending branch (the caller sent CANCEL, or a
// credential was removed).
func (cl *call) cancelAll(byCaller bool) {
	cl.mu.Lock()
	cl.cancelled = true
	if byCaller && !cl.finalSent {
		// sipgo has answered 487 to the caller.
		cl.finalSent = true
		cl.ev.Status = 487
		close(cl.done)
	}
	var todo []*branch
	for _, b := range cl.branches {
		if !b.final && b.provisional && !b.cancelSent && b.tx != nil {
			todo = append(todo, b)
		}
	}
	cl.mu.Unlock()
	for _, b := range todo {
		cl.sendCancel(b)
	}
}

// cancelOthersLocked cancels the pending branches other than keep.
func (cl *call) cancelOthersLocked(keep *branch) {
	cl.cancelled = true
	for _, b := range cl.branches {
		if b != keep && !b.final && b.provisional && !b.cancelSent && b.tx != nil {
			b.cancelSent = true
			go cl.p.sendCancelReq(b.fwd)
		}
	}
}

// sendCancel cancels branch b once (RFC 3261 9.1: only after a
// provisional response; runBranch sends it later otherwise).
func (cl *call) sendCancel(b *branch) {
	cl.mu.Lock()
	if b.cancelSent || b.final || b.tx == nil {
		cl.mu.Unlock()
		return
	}
	b.cancelSent = true
	cl.mu.Unlock()
	go cl.p.sendCancelReq(b.fwd)
}

// sendCancelReq builds the CANCEL of a forwarded INVITE (RFC 3261 9.1:
// same Request-URI, Call-ID, To, From, CSeq number and top Via) and sends
// it as its own transaction.
func (p *Proxy) sendCancelReq(fwd *sip.Request) {
	r := sip.NewRequest(sip.CANCEL, *fwd.Recipient.Clone())
	r.AppendHeader(sip.HeaderClone(fwd.Via()))
	mf := sip.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	r.AppendHeader(sip.HeaderClone(fwd.From()))
	r.AppendHeader(sip.HeaderClone(fwd.To()))
	r.AppendHeader(sip.HeaderClone(fwd.CallID()))
	cseq := &sip.CSeqHeader{SeqNo: fwd.CSeq().SeqNo, MethodName: sip.CANCEL}
	r.AppendHeader(cseq)
	for _, h := range fwd.GetHeaders("Route") {
		r.AppendHeader(sip.HeaderClone(h))
	}
	r.SetBody(nil)
	r.SetTransport(fwd.Transport())
	r.SetDestination(fwd.Destination())
	r.Laddr = fwd.Laddr
	p.fireAndForget(r)
}

// fireAndForget sends a request as a client transaction and drains it in
// the background until its final response or timeout.
func (p *Proxy) fireAndForget(r *sip.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	ctx2, err := p.send.TransactionRequest(ctx, r, noBuild)
	cancel()
	if err != nil {
		p.log.Debug("send request", "method", r.Method, "destination", r.Destination(), "error", err)
		return
	}
	defer ctx2.Terminate()
	timeout := time.After(64 * sip.T1)
	for {
		select {
		case res, ok := <-ctx2.Responses():
			if !ok || !res.IsProvisional() {
				return
			}
		case <-ctx2.Done():
			return
		case <-timeout:
			return
		}
	}
}
