package stateless

import "github.com/emiago/sipgo/sip"

// answer is the sip.ServerTransaction a Handler answers through on the
// stateless path: Respond keeps the first final response (a provisional
// one is not sent: a REGISTER needs none), which the worker sends once
// the handler returned. There is no transaction behind it: no ACK, no
// CANCEL, nothing to terminate.
type answer struct {
	res  *sip.Response
	done <-chan struct{} // closed: the answer is over as soon as it is made
	// cur is the job being handled; later are the finishes deferred in
	// the worker's round (Defer), with their jobs, run by the worker
	// once the round's other answers are sent (Front.finishLater).
	cur   job
	later []deferred
}

// deferred is a finish put off by Defer, and the job it answers.
type deferred struct {
	finish func()
	j      job
}

// Defer puts finish off until the round's other requests are handled and
// answered (registrar.Deferrer): a cluster node's REGISTERs of one round
// then wait for Redis together. Whatever the admission chain counts
// while the request is handled (requests in flight) ends before the
// wait.
func (a *answer) Defer(finish func()) bool {
	j := a.cur
	j.buf = nil // back in the pool once the handler returned
	a.later = append(a.later, deferred{finish: finish, j: j})
	return true
}

var _ sip.ServerTransaction = (*answer)(nil)

func (a *answer) reset() { a.res = nil }

// Respond keeps res when it is the first final response.
func (a *answer) Respond(res *sip.Response) error {
	if a.res == nil && !res.IsProvisional() {
		a.res = res
	}
	return nil
}

func (a *answer) Acks() <-chan *sip.Request          { return nil }
func (a *answer) OnCancel(sip.FnTxCancel) bool       { return false }
func (a *answer) Terminate()                         {}
func (a *answer) OnTerminate(sip.FnTxTerminate) bool { return false }
func (a *answer) Done() <-chan struct{}              { return a.done }
func (a *answer) Err() error                         { return nil }
