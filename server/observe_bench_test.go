package server

import (
	"io"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/registrar"
)

func testObserver(t testing.TB) *observer {
	t.Helper()
	ctl, logger := logControlOf(NewLogger(config.Log{Level: "info", Format: "text"}, io.Discard), config.Log{})
	o, err := newObserver(ctl, logger, "test")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// BenchmarkRegisterEventMetrics is the metrics cost of one handled
// REGISTER as the registrar reports it (a refresh).
func BenchmarkRegisterEventMetrics(b *testing.B) {
	o := testObserver(b)
	ev := registrar.Event{AOR: "alice", Source: "192.0.2.1:5060", Transport: "udp", Status: 200,
		Outcome: auth.OK, Authenticated: true, Refreshed: 1, Duration: 150 * time.Microsecond}
	b.ReportAllocs()
	for b.Loop() {
		o.registerEvent(ev)
	}
}

type nopTx struct{ sip.ServerTransaction }

func (nopTx) Respond(*sip.Response) error { return nil }

// BenchmarkSIPHandlerMetrics is what the observing middleware adds to one
// request answered with one response (counting both, the in-flight gauge
// and the transaction wrapper), trace off.
func BenchmarkSIPHandlerMetrics(b *testing.B) {
	o := testObserver(b)
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "sipwarden.test"})
	req.SetTransport("UDP")
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	h := o.middleware(func(_ *sip.Request, tx sip.ServerTransaction) { _ = tx.Respond(res) })
	var tx sip.ServerTransaction = nopTx{}
	b.ReportAllocs()
	for b.Loop() {
		h(req, tx)
	}
}

type failingTx struct{ sip.ServerTransaction }

func (failingTx) Respond(*sip.Response) error { return io.ErrClosedPipe }

// TestHandlerWrapperCounts checks the middleware alone: a response is
// counted before it is sent (also when sending fails: a peer acting on a
// response must find it counted), the in-flight gauge returns to 0, an
// ACK keeps its transaction untouched.
func TestHandlerWrapperCounts(t *testing.T) {
	o := testObserver(t)
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "sipwarden.test"})
	req.SetTransport("TCP")
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	respond := o.middleware(func(_ *sip.Request, tx sip.ServerTransaction) { _ = tx.Respond(res) })
	respond(req, nopTx{})
	respond(req, failingTx{})
	var gotTx sip.ServerTransaction
	ack := sip.NewRequest(sip.ACK, sip.Uri{Scheme: "sip", Host: "sipwarden.test"})
	ack.SetTransport("TCP")
	o.middleware(func(_ *sip.Request, tx sip.ServerTransaction) { gotTx = tx })(ack, nil)
	if gotTx != nil {
		t.Errorf("ACK handler got %T, want the nil transaction", gotTx)
	}
	mfs, err := o.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					k += ","
				}
				k += l.GetName() + `="` + l.GetValue() + `"`
			}
			k += "}"
			if c := m.GetCounter(); c != nil {
				got[k] = c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				got[k] = g.GetValue()
			}
		}
	}
	for k, want := range map[string]float64{
		`sipwarden_sip_requests_total{method="OPTIONS",transport="tcp"}`:         2,
		`sipwarden_sip_requests_total{method="ACK",transport="tcp"}`:             1,
		`sipwarden_sip_responses_total{class="2xx",code="200",method="OPTIONS"}`: 2,
		`sipwarden_sip_transactions_inflight{}`:                                  0,
	} {
		if got[k] != want {
			t.Errorf("%s: got %v, want %v", k, got[k], want)
		}
	}
}
