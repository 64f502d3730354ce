package stateless

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestDeferredAnswers: a handler that defers its answer (answer.Defer, a
// cluster node's REGISTER waiting for Redis) has it sent once the round's
// other answers are out: a deferred REGISTER queued before an answered
// one is answered after it; a deferred finish that answers nothing sends
// nothing; Handled counts the answers sent, deferred ones included.
func TestDeferredAnswers(t *testing.T) {
	started, gate := make(chan struct{}), make(chan struct{})
	ran := make(chan string, 8)
	h := func(req *sip.Request, tx sip.ServerTransaction) {
		branch, _ := req.Via().Params.Get("branch")
		ok := func(reason string) { _ = tx.Respond(sip.NewResponseFromRequest(req, 200, reason, nil)) }
		switch {
		case branch == "z9hG4bK-busy":
			close(started)
			<-gate
			ok("OK")
		case strings.HasPrefix(branch, "z9hG4bK-defer"):
			d, isDeferrer := tx.(interface{ Defer(func()) bool })
			if !isDeferrer || !d.Defer(func() {
				ran <- branch
				if branch != "z9hG4bK-defer-silent" {
					ok("Deferred")
				}
			}) {
				t.Errorf("%s: the front's answer does not defer", branch)
			}
		default:
			ok("OK")
		}
	}
	u := newUDPFront(t, h, Config{Workers: 1})
	u.send(t, udpRegister("z9hG4bK-busy", false))
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never started")
	}
	u.send(t, udpRegister("z9hG4bK-defer-1", false), udpRegister("z9hG4bK-defer-silent", false), udpRegister("z9hG4bK-now", false))
	deadline := time.Now().Add(5 * time.Second)
	for len(u.f.jobs) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	var order []string
	buf := make([]byte, 4096)
	_ = u.cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 3 {
		k, err := u.cli.Read(buf)
		if err != nil {
			t.Fatalf("after %v: %v", order, err)
		}
		_, rest, _ := strings.Cut(string(buf[:k]), "branch=")
		branch, _, _ := strings.Cut(rest, "\r\n")
		status, _, _ := strings.Cut(string(buf[:k]), "\r\n")
		order = append(order, branch+" "+status)
	}
	want := []string{"z9hG4bK-busy SIP/2.0 200 OK", "z9hG4bK-now SIP/2.0 200 OK", "z9hG4bK-defer-1 SIP/2.0 200 Deferred"}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Errorf("answers in the order\n%q\nwant\n%q", order, want)
	}
	for _, w := range []string{"z9hG4bK-defer-1", "z9hG4bK-defer-silent"} {
		select {
		case got := <-ran:
			if got != w {
				t.Errorf("deferred finish ran for %s, want %s (in order)", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the deferred finish of %s never ran", w)
		}
	}
	_ = u.cli.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if k, err := u.cli.Read(buf); err == nil {
		t.Errorf("a fourth answer: %.40q; the silent finish must send nothing", buf[:k])
	}
	if got := u.f.Handled(); got != 3 {
		t.Errorf("handled %d, want 3", got)
	}
}
