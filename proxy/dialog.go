package proxy

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Dialog is a dialog this proxy established (a call, or a subscription
// created by SUBSCRIBE or REFER) and routes the in-dialog requests of.
type Dialog struct {
	CallID    string
	CallerTag string
	CalleeTag string
	// Call is true for INVITE dialogs.
	Call bool
	// Caller and Callee are the From and To URIs.
	Caller, Callee string
	// CallerCredential and CalleeCredential are credential ids, empty for
	// a trusted peer or a gateway.
	CallerCredential, CalleeCredential string
	Started                            time.Time
	// The connections of each side, for call events ("" unknown).
	callerConn, calleeConn string

	// Where each side is reached: the caller over the flow its INVITE
	// came from, the callee over the flow it was sent to.
	callerHop, calleeHop         Hop
	callerContact, calleeContact sip.Uri
	// Route sets beyond us, toward each side, for requests we originate.
	callerRoutes, calleeRoutes []sip.Uri
	callerFrom                 *sip.FromHeader // From of the INVITE (caller's tag)
	calleeTo                   *sip.ToHeader   // To of the 2xx (callee's tag)
	callerCSeq, calleeCSeq     uint32          // last CSeq seen from each side
	ending                     bool
	// early is true until the 2xx: a 1xx with a To tag creates an early
	// dialog, in which PRACK and UPDATE travel (RFC 3262, RFC 3311).
	early bool
	// ack is signalled once the caller's ACK of the 2xx went through.
	ack *ackSignal
	// hold is the call's count against the call caps (caps.go), released
	// when the dialog is forgotten.
	hold *capHold
}

type ackSignal struct {
	once sync.Once
	ch   chan struct{}
}

// markAcked records that the ACK of the 2xx was forwarded.
func (d *Dialog) markAcked() { d.ack.once.Do(func() { close(d.ack.ch) }) }

// waitAcked waits at most d for the ACK of the 2xx to have been forwarded.
// sipgo hands every message to its own goroutine, so a BYE sent right
// behind its ACK can overtake it here; some UAs (sipp) then abort the
// call. Holding such a BYE a moment restores the sender's order.
func (dl *Dialog) waitAcked(d time.Duration) {
	select {
	case <-dl.ack.ch:
	case <-time.After(d):
	}
}

// Dialogs is the table of confirmed dialogs, by Call-ID and by credential.
type Dialogs struct {
	p  *Proxy
	mu sync.Mutex
	by map[string][]*Dialog // Call-ID -> dialogs (forks share a Call-ID)
	// subs holds the SUBSCRIBEs and REFERs being forwarded, by Call-ID and
	// subscriber's tag: each channel closes once the caller has the final
	// answer (the dialog of a 2xx is known by then).
	subs map[string]<-chan struct{}
}

func newDialogs(p *Proxy) *Dialogs {
	return &Dialogs{p: p, by: map[string][]*Dialog{}, subs: map[string]<-chan struct{}{}}
}

// maxNotifyWait bounds how long a NOTIFY of a subscription being set up
// waits for its dialog (the SUBSCRIBE's or REFER's 2xx).
const maxNotifyWait = 2 * time.Second

// subscriptionKey is the key of a SUBSCRIBE or REFER in Dialogs.subs: its
// Call-ID and the subscriber's tag (its From tag, a NOTIFY's To tag).
func subscriptionKey(cid *sip.CallIDHeader, subscriberTag string) (string, bool) {
	if cid == nil || subscriberTag == "" {
		return "", false
	}
	return string(*cid) + "\x00" + subscriberTag, true
}

// subscribing records a SUBSCRIBE or REFER being forwarded. Its notifier
// may send the first NOTIFY right behind the 2xx, or before it (RFC 6665
// 4.1.2.4, RFC 3515 2.4.4), and sipgo hands each message to a goroutine
// of its own: the NOTIFY's could look for the dialog before the 2xx's
// made it, and got 481 (14 of 20 NOTIFYs sent right after a 202 to a
// REFER, in a probe: blind transfers lost their sipfrag NOTIFY).
func (ds *Dialogs) subscribing(key string, done <-chan struct{}) {
	ds.mu.Lock()
	ds.subs[key] = done
	ds.mu.Unlock()
}

// subscribed forgets a subscription subscribing recorded.
func (ds *Dialogs) subscribed(key string, done <-chan struct{}) {
	ds.mu.Lock()
	if ds.subs[key] == done {
		delete(ds.subs, key)
	}
	ds.mu.Unlock()
}

// awaitSubscription waits, at most maxNotifyWait, for the final answer to
// the SUBSCRIBE or REFER a NOTIFY without a dialog belongs to, and
// reports whether there was one to wait for.
func (ds *Dialogs) awaitSubscription(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	key, ok := subscriptionKey(req.CallID(), tagOf(to.Params))
	if !ok {
		return false
	}
	ds.mu.Lock()
	done := ds.subs[key]
	ds.mu.Unlock()
	if done == nil {
		return false
	}
	t := time.NewTimer(maxNotifyWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	return true
}

func tagOf(params sip.HeaderParams) string {
	t, _ := params.Get("tag")
	return t
}

// confirm records the dialog a 2xx establishes (early: a 1xx with a To
// tag), once; a 2xx confirms an early dialog with the same tags.
func (ds *Dialogs) confirm(cl *call, b *branch, res *sip.Response, early bool) {
	to, from, cid := res.To(), cl.req.From(), cl.req.CallID()
	if to == nil || from == nil || cid == nil {
		return
	}
	calleeTag := tagOf(to.Params)
	if calleeTag == "" {
		return
	}
	callID, callerTag := string(*cid), tagOf(from.Params)
	if !early {
		// The first 2xx's dialog carries the call's count (caps.go). The
		// caller holds cl.mu.
		defer func() {
			if cl.hold != nil && ds.attach(callID, callerTag, calleeTag, cl.hold) {
				cl.hold = nil
			}
		}()
	}
	// Most calls have a dialog by their 2xx (from the 180): look first,
	// and build a new one only when there is none.
	if ds.update(callID, callerTag, calleeTag, res, early) {
		return
	}
	d := &Dialog{
		CallID: callID, CallerTag: callerTag, CalleeTag: calleeTag,
		Call:   cl.req.Method == sip.INVITE,
		Caller: from.Address.String(), Callee: to.Address.String(),
		CallerCredential: cl.caller.Credential.ID,
		Started:          ds.p.now(),
		early:            early,
		ack:              &ackSignal{ch: make(chan struct{})},
		calleeHop:        b.t.hop,
		callerFrom:       &sip.FromHeader{DisplayName: from.DisplayName, Address: *from.Address.Clone(), Params: from.Params.Clone()},
		calleeTo:         &sip.ToHeader{DisplayName: to.DisplayName, Address: *to.Address.Clone(), Params: to.Params.Clone()},
	}
	if b.t.binding != nil {
		d.CalleeCredential = b.t.binding.CredentialID
	}
	ce := cl.callEvent(CallAnswered)
	calleeOf(&ce, &b.t)
	d.callerConn, d.calleeConn = ce.CallerConnection, ce.CalleeConnection
	if cs := cl.req.CSeq(); cs != nil {
		d.callerCSeq = cs.SeqNo
	}
	if h, err := hopFromSource(cl.req.Source(), cl.req.Transport()); err == nil {
		d.callerHop = h
	}
	if c := cl.req.Contact(); c != nil {
		d.callerContact = *c.Address.Clone()
	}
	d.calleeContact, d.calleeRoutes = ds.calleeSide(res)
	// The caller's side beyond us: the Record-Routes the request carried
	// when it reached us, nearest first.
	for _, h := range cl.req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			d.callerRoutes = append(d.callerRoutes, *rr.Address.Clone())
		}
	}

	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.updateLocked(callID, callerTag, calleeTag, res, early) {
		return // another response of the same dialog came first
	}
	if early && ds.earlyLocked(callID) >= maxEarlyPerCall {
		return // a callee answering 180s with ever new To tags
	}
	ds.by[d.CallID] = append(ds.by[d.CallID], d)
}

// maxEarlyPerCall bounds the early dialogs of one call: one per device a
// call forks to is plenty (issue 15: 2,000 180s with distinct To tags
// made 2,000 early dialogs).
const maxEarlyPerCall = 16

func (ds *Dialogs) earlyLocked(callID string) int {
	n := 0
	for _, x := range ds.by[callID] {
		if x.early {
			n++
		}
	}
	return n
}

// attach gives the dialog its call's count, once; it reports whether the
// dialog was found.
func (ds *Dialogs) attach(callID, callerTag, calleeTag string, h *capHold) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, x := range ds.by[callID] {
		if x.CallerTag == callerTag && x.CalleeTag == calleeTag && !x.early {
			if x.hold == nil {
				x.hold = h
				return true
			}
			return false
		}
	}
	return false
}

// dropEarlyOf forgets the early dialogs of a call whose INVITE
// transaction ended.
func (ds *Dialogs) dropEarlyOf(callID, callerTag string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	list, ok := ds.by[callID]
	if !ok {
		return
	}
	list = slices.DeleteFunc(list, func(d *Dialog) bool { return d.early && d.CallerTag == callerTag })
	if len(list) == 0 {
		delete(ds.by, callID)
	} else {
		ds.by[callID] = list
	}
}

// update applies a response to the dialog it belongs to, if there is one
// (see updateLocked).
func (ds *Dialogs) update(callID, callerTag, calleeTag string, res *sip.Response, early bool) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.updateLocked(callID, callerTag, calleeTag, res, early)
}

// updateLocked reports whether the dialog of a response is known: the
// 2xx of an early dialog confirms it, with the callee's final Contact and
// route set; a retransmission, or a re-INVITE from either side, changes
// nothing.
func (ds *Dialogs) updateLocked(callID, callerTag, calleeTag string, res *sip.Response, early bool) bool {
	for _, x := range ds.by[callID] {
		sameWay := x.CallerTag == callerTag && x.CalleeTag == calleeTag
		if sameWay && x.early && !early {
			x.early, x.Started = false, ds.p.now()
			x.calleeContact, x.calleeRoutes = ds.calleeSide(res)
			return true
		}
		if sameWay || x.CallerTag == calleeTag && x.CalleeTag == callerTag {
			return true
		}
	}
	return false
}

// calleeSide reads the callee's Contact and its side of the route set
// from a response: the Record-Routes above ours, nearest (bottom-most)
// first.
func (ds *Dialogs) calleeSide(res *sip.Response) (contact sip.Uri, routes []sip.Uri) {
	if c := res.Contact(); c != nil {
		contact = *c.Address.Clone()
	}
	for _, h := range res.GetHeaders("Record-Route") {
		rr, ok := h.(*sip.RecordRouteHeader)
		if !ok {
			continue
		}
		if ds.p.isUs(&rr.Address) {
			break
		}
		routes = append(routes, *rr.Address.Clone())
	}
	slices.Reverse(routes)
	return contact, routes
}

// dropEarly forgets the early dialog a branch's failure ends.
func (ds *Dialogs) dropEarly(callID, callerTag, calleeTag string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	list, ok := ds.by[callID]
	if !ok {
		return
	}
	list = slices.DeleteFunc(list, func(d *Dialog) bool {
		return d.early && d.CallerTag == callerTag && d.CalleeTag == calleeTag
	})
	if len(list) == 0 {
		delete(ds.by, callID)
	} else {
		ds.by[callID] = list
	}
}

// match finds the dialog of an in-dialog request and tells which way it
// goes.
func (ds *Dialogs) match(req *sip.Request) (d *Dialog, toCallee bool) {
	cid, from, to := req.CallID(), req.From(), req.To()
	if cid == nil || from == nil || to == nil {
		return nil, false
	}
	ft, tt := tagOf(from.Params), tagOf(to.Params)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, x := range ds.by[string(*cid)] {
		switch {
		case x.CallerTag == ft && x.CalleeTag == tt:
			return x, true
		case x.CalleeTag == ft && x.CallerTag == tt:
			return x, false
		}
	}
	return nil, false
}

// noteCSeq records the CSeq of a request one side sent.
func (ds *Dialogs) noteCSeq(d *Dialog, toCallee bool, n uint32) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if toCallee {
		d.callerCSeq = max(d.callerCSeq, n)
	} else {
		d.calleeCSeq = max(d.calleeCSeq, n)
	}
}

// remove drops d from the table; an answered call's removal is its
// hang-up (cause).
func (ds *Dialogs) remove(d *Dialog, cause string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	list := ds.by[d.CallID]
	for i, x := range list {
		if x == d {
			list = slices.Delete(list, i, i+1)
			d.hold.release()
			if d.Call && !d.early {
				ds.p.emitCall(ds.dialogEvent(d, cause))
			}
			break
		}
	}
	if len(list) == 0 {
		delete(ds.by, d.CallID)
	} else {
		ds.by[d.CallID] = list
	}
}

// Calls returns the live calls (INVITE dialogs), oldest first.
func (ds *Dialogs) Calls() []Dialog {
	ds.mu.Lock()
	out := make([]Dialog, 0, len(ds.by))
	for _, list := range ds.by {
		for _, d := range list {
			if d.Call && !d.ending && !d.early {
				out = append(out, *d)
			}
		}
	}
	ds.mu.Unlock()
	slices.SortFunc(out, func(a, b Dialog) int { return a.Started.Compare(b.Started) })
	return out
}

// Count returns the number of live calls.
func (ds *Dialogs) Count() int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	n := 0
	for _, list := range ds.by {
		for _, d := range list {
			if d.Call && !d.ending && !d.early {
				n++
			}
		}
	}
	return n
}

// EndCredential ends every call of a credential, as caller or callee:
// the proxy sends BYE to both sides (seed 004: active sessions using a
// deleted credential are terminated). It returns how many it ended.
func (ds *Dialogs) EndCredential(credentialID string) int {
	if credentialID == "" {
		return 0
	}
	return ds.endWhere(func(d *Dialog) bool {
		return d.CallerCredential == credentialID || d.CalleeCredential == credentialID
	})
}

// endConnection ends the answered dialogs one of whose sides is the
// connection itself (EndConnection).
func (ds *Dialogs) endConnection(connectionID string) int {
	return ds.endWhere(func(d *Dialog) bool { return d.callerConn == connectionID || d.calleeConn == connectionID })
}

// endWhere ends the answered dialogs that match, each once however many
// times it is asked: BYE to both sides. It returns how many it ended.
func (ds *Dialogs) endWhere(match func(*Dialog) bool) int {
	var ended []*Dialog
	ds.mu.Lock()
	for _, list := range ds.by {
		for _, d := range list {
			if d.ending || d.early || !match(d) {
				continue
			}
			d.ending = true
			ended = append(ended, d)
		}
	}
	ds.mu.Unlock()
	for _, d := range ended {
		ds.end(d, reasonRevoked)
	}
	return len(ended)
}

// EndCall ends one established call, named by its Call-ID and the tags
// of its caller and callee: the proxy sends BYE to both sides. It reports
// whether there was such a call (not already ending).
func (ds *Dialogs) EndCall(callID, callerTag, calleeTag string) bool {
	var found *Dialog
	ds.mu.Lock()
	for _, d := range ds.by[callID] {
		if d.Call && !d.ending && !d.early && d.CallerTag == callerTag && d.CalleeTag == calleeTag {
			d.ending = true
			found = d
			break
		}
	}
	ds.mu.Unlock()
	if found == nil {
		return false
	}
	ds.end(found, reasonOperator)
	return true
}

// Reason headers (RFC 3326) of the BYEs the proxy sends: a credential
// deleted, disabled or expired (or its connection deactivated), and a
// call hung up through the API (DELETE /v1/calls/{id}), which revoked
// nothing and must not tell both phones it did.
const (
	reasonRevoked  = `SIP;cause=403;text="Credential revoked"`
	reasonOperator = `Q.850;cause=16;text="Call ended by the operator"`
)

// end sends BYE (or, for a subscription, nothing: it just forgets it) to
// both sides of d, with the Reason header reason, and removes it.
func (ds *Dialogs) end(d *Dialog, reason string) {
	defer ds.remove(d, CauseEndedByUs)
	if !d.Call {
		return
	}
	ds.mu.Lock()
	toCaller := ds.p.byeFor(d, false, reason)
	toCallee := ds.p.byeFor(d, true, reason)
	ds.mu.Unlock()
	for _, r := range []*sip.Request{toCaller, toCallee} {
		if r != nil {
			go ds.p.fireAndForget(r)
		}
	}
	ds.p.log.Info("call ended by the proxy", "call_id", d.CallID, "caller", d.Caller, "callee", d.Callee)
}

// sweep forgets dialogs started before t (a BYE that never came).
func (ds *Dialogs) sweep(t time.Time) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for cid, list := range ds.by {
		list = slices.DeleteFunc(list, func(d *Dialog) bool {
			if d.Started.Before(t) {
				d.hold.release()
				if d.Call && !d.early {
					ds.p.emitCall(ds.dialogEvent(d, CauseTimeout))
				}
				return true
			}
			return false
		})
		if len(list) == 0 {
			delete(ds.by, cid)
		} else {
			ds.by[cid] = list
		}
	}
}

// byeFor builds the BYE the proxy sends on behalf of the other side
// (RFC 3261 15.1.1 and 12.2.1.1): toward the callee as if from the
// caller, or toward the caller as if from the callee, with the Reason
// header reason. Called with ds.mu.
func (p *Proxy) byeFor(d *Dialog, toCallee bool, reason string) *sip.Request {
	var (
		ruri   sip.Uri
		hop    Hop
		routes []sip.Uri
		from   sip.Header
		to     sip.Header
		seq    uint32
	)
	if toCallee {
		ruri, hop, routes, seq = d.calleeContact, d.calleeHop, d.calleeRoutes, d.callerCSeq+1
		from = &sip.FromHeader{DisplayName: d.callerFrom.DisplayName, Address: *d.callerFrom.Address.Clone(), Params: d.callerFrom.Params.Clone()}
		to = &sip.ToHeader{DisplayName: d.calleeTo.DisplayName, Address: *d.calleeTo.Address.Clone(), Params: d.calleeTo.Params.Clone()}
	} else {
		ruri, hop, routes, seq = d.callerContact, d.callerHop, d.callerRoutes, d.calleeCSeq+1
		from = &sip.FromHeader{DisplayName: d.calleeTo.DisplayName, Address: *d.calleeTo.Address.Clone(), Params: d.calleeTo.Params.Clone()}
		to = &sip.ToHeader{DisplayName: d.callerFrom.DisplayName, Address: *d.callerFrom.Address.Clone(), Params: d.callerFrom.Params.Clone()}
	}
	if ruri.Host == "" || hop.Host == "" {
		return nil
	}
	via, ok := p.via(hop.Transport, newBranch(byeHash(d, toCallee)))
	if !ok {
		return nil
	}
	r := sip.NewRequest(sip.BYE, *ruri.Clone())
	r.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	for _, u := range routes {
		r.AppendHeader(&sip.RouteHeader{Address: *u.Clone()})
	}
	r.AppendHeader(from)
	r.AppendHeader(to)
	cid := sip.CallIDHeader(d.CallID)
	r.AppendHeader(&cid)
	r.AppendHeader(&sip.CSeqHeader{SeqNo: max(seq, 1), MethodName: sip.BYE})
	r.AppendHeader(sip.NewHeader("Reason", reason))
	if p.cfg.Server != "" {
		r.AppendHeader(sip.NewHeader("User-Agent", p.cfg.Server))
	}
	r.SetBody(nil)
	r.SetTransport(strings.ToUpper(hop.Transport))
	r.SetDestination(hop.addr())
	p.setLocalAddr(r, hop.Transport)
	return r
}

func byeHash(d *Dialog, toCallee bool) string {
	h := fnv.New64a()
	h.Write([]byte(d.CallID + "\x00" + d.CallerTag + "\x00" + d.CalleeTag + "\x00" + strconv.FormatBool(toCallee)))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.Sum64())
	return hex.EncodeToString(b[:])
}

// hopFromSource is the flow a request came over.
func hopFromSource(source, transport string) (Hop, error) {
	host, port, err := net.SplitHostPort(source)
	if err != nil {
		return Hop{}, err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return Hop{}, err
	}
	return Hop{Host: host, Port: n, Transport: strings.ToLower(transport)}, nil
}
