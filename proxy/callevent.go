package proxy

import "time"

// Call event types, CallEvent.Type.
const (
	CallInitiated = "initiated"
	CallAnswered  = "answered"
	CallHangup    = "hangup"
)

// CallEvent is a step of a call's life, for webhooks: an INVITE
// forwarded (initiated), its 2xx (answered), its end (hangup: the
// dialog's BYE, or the INVITE's failure).
type CallEvent struct {
	Type   string
	CallID string
	// From and To are the caller's and the callee's URIs.
	From, To string
	// Credentials and connections of each side, "" when unknown (a
	// trusted peer, a gateway).
	CallerCredential, CalleeCredential string
	CallerConnection, CalleeConnection string
	// Status is the final SIP status (answered: 200; a failed call's).
	Status int
	// Cause is the hang-up cause, Telnyx's names where it has one (the
	// constants below); Status carries the SIP code it came from.
	Cause string
	// Duration is how long the call was up (hangup of an answered call).
	Duration time.Duration
}

// Hang-up causes.
const (
	CauseNormal   = "normal_clearing"
	CauseCancel   = "originator_cancel"
	CauseBusy     = "user_busy"
	CauseTimeout  = "timeout"
	CauseNotFound = "not_found"
	// CauseUnavailable is a 480: no device registered, or one that
	// declined for now (do-not-disturb); not a timeout.
	CauseUnavailable = "unavailable"
	CauseRejected    = "call_rejected"
	CauseEndedByUs   = "ended_by_server"
	CauseNotTracked  = "unspecified"
)

// failureCause names the hang-up cause of an INVITE that failed with
// status.
func failureCause(status int) string {
	switch status {
	case 487:
		return CauseCancel
	case 486, 600:
		return CauseBusy
	case 408:
		return CauseTimeout
	case 480:
		return CauseUnavailable
	case 404, 484, 604:
		return CauseNotFound
	}
	return CauseRejected
}

// emitCall calls Config.OnCall, if set.
func (p *Proxy) emitCall(ev CallEvent) {
	if p.cfg.OnCall != nil {
		p.cfg.OnCall(ev)
	}
}

// callEvent fills the parts of a call's event that come from its request.
func (cl *call) callEvent(typ string) CallEvent {
	ev := CallEvent{Type: typ, CallerCredential: cl.caller.Credential.ID, CallerConnection: cl.caller.Connection.ID}
	if ev.CallerConnection == "" {
		ev.CallerConnection = cl.caller.Credential.ConnectionID
	}
	if cid := cl.req.CallID(); cid != nil {
		ev.CallID = string(*cid)
	}
	if f := cl.req.From(); f != nil {
		ev.From = f.Address.String()
	}
	if t := cl.req.To(); t != nil {
		ev.To = t.Address.String()
	}
	return ev
}

// calleeOf fills the callee side of ev from a branch's target.
func calleeOf(ev *CallEvent, t *target) {
	if t.binding != nil {
		ev.CalleeCredential = t.binding.CredentialID
	}
	if t.connection != "" {
		ev.CalleeConnection = t.connection
	}
}

// dialogEvent is the hang-up event of a dialog.
func (ds *Dialogs) dialogEvent(d *Dialog, cause string) CallEvent {
	return CallEvent{Type: CallHangup, CallID: d.CallID, From: d.Caller, To: d.Callee,
		CallerCredential: d.CallerCredential, CalleeCredential: d.CalleeCredential,
		CallerConnection: d.callerConn, CalleeConnection: d.calleeConn,
		Status: 200, Cause: cause, Duration: ds.p.now().Sub(d.Started)}
}
