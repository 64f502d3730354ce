package stateless

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A queue stands once every datagram of standingIntervals whole intervals
// waited longer than the target; a burst, or a stall of one interval,
// does not; one datagram under the target ends it.
func TestSojourn(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Unix(1000, 0)
	type obs struct {
		at   time.Duration // after t0
		d    time.Duration
		want bool
	}
	tests := []struct {
		name  string
		steps []obs
	}{
		{"under the target", []obs{{0, 1 * ms, false}, {150 * ms, 19 * ms, false}, {300 * ms, 5 * ms, false}}},
		{"a burst", []obs{{0, 30 * ms, false}, {10 * ms, 40 * ms, false}, {20 * ms, 2 * ms, false}, {250 * ms, 2 * ms, false}}},
		{"one interval stalled", []obs{{0, 170 * ms, false}, {50 * ms, 120 * ms, false}, {110 * ms, 60 * ms, false}, {120 * ms, 3 * ms, false}}},
		{"standing", []obs{{0, 50 * ms, false}, {100 * ms, 50 * ms, false}, {200 * ms, 45 * ms, true}, {250 * ms, 60 * ms, true}, {300 * ms, 30 * ms, true}}},
		{"standing, then emptied", []obs{{0, 50 * ms, false}, {100 * ms, 50 * ms, false}, {200 * ms, 45 * ms, true}, {210 * ms, 1 * ms, false}, {320 * ms, 40 * ms, false}}},
		{"an interval with a short wait in it", []obs{{0, 50 * ms, false}, {50 * ms, 10 * ms, false}, {100 * ms, 50 * ms, false}, {200 * ms, 50 * ms, false}, {300 * ms, 50 * ms, false}, {400 * ms, 50 * ms, true}}},
	}
	for _, tt := range tests {
		var s sojourn
		for i, o := range tt.steps {
			if got := s.observe(o.d, t0.Add(o.at)); got != o.want {
				t.Errorf("%s, step %d (sojourn %v at %v): got standing %t, want %t", tt.name, i, o.d, o.at, got, o.want)
			}
		}
	}
}

// pacedReader is a batch reader that falls behind: it returns its
// datagrams one per pace, each stamped as having arrived lag before it is
// read, from the socket of the test's client.
type pacedReader struct {
	msgs chan []byte
	from net.Addr
	pace time.Duration
	lag  func() time.Duration
}

func (r *pacedReader) read() ([]byte, net.Addr, time.Time, error) {
	msg, ok := <-r.msgs
	if !ok {
		return nil, nil, time.Time{}, net.ErrClosed
	}
	time.Sleep(r.pace)
	return msg, r.from, time.Now().Add(-r.lag()), nil
}

// TestStandingQueueRefusesNewCalls drives a wrapped UDP socket whose
// reader falls behind (every datagram read 60 ms after it arrived): once
// the queue has stood for two intervals, an INVITE that starts a call is
// answered 503 with a Retry-After and the front's To tag, on the reader's
// goroutine, and never reaches sipgo, with credentials or without; an
// INVITE inside a dialog (a To tag) and other requests still do. Once a
// datagram is read without waiting, new INVITEs go their usual way again.
func TestStandingQueueRefusesNewCalls(t *testing.T) {
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{MaxQueueDelay: time.Hour})
	defer f.Close()
	f.ChallengeInvites(challenge407, fakeChallenger{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	var lag atomic.Int64
	lag.Store(int64(60 * time.Millisecond))
	r := &pacedReader{msgs: make(chan []byte, 128), from: c.LocalAddr(), pace: 5 * time.Millisecond,
		lag: func() time.Duration { return time.Duration(lag.Load()) }}
	wrapped := &packetConn{PacketConn: pc, f: f, batch: r}
	passed := make(chan string, 128)
	go func() {
		buf := make([]byte, 65536)
		for {
			k, _, err := wrapped.ReadFrom(buf)
			if err != nil {
				return
			}
			passed <- string(buf[:k])
		}
	}()
	defer close(r.msgs)
	// OPTIONS keep the queue standing (they pass to sipgo) until the
	// front stands: then the INVITEs.
	for i := 0; !f.overloaded(); i++ {
		if i == 100 {
			t.Fatal("the queue did not stand after 100 datagrams of 60 ms each")
		}
		r.msgs <- []byte(testOptions(local))
		<-passed
	}
	r.msgs <- []byte(testInvite(local, "first", ""))
	r.msgs <- []byte(testInvite(local, "second", "Proxy-Authorization: Digest username=\"alice\"\r\n"))
	r.msgs <- []byte(strings.Replace(testInvite(local, "dialog", ""), "To: <sip:bob@t>", "To: <sip:bob@t>;tag=t1", 1))
	select {
	case m := <-passed:
		if !strings.Contains(m, "branch=z9hG4bK-dialog") {
			t.Fatalf("passed to sipgo: %.60q, want the in-dialog INVITE only", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-dialog INVITE did not reach sipgo")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	answers := map[string]*sip.Response{}
	for len(answers) < 2 {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("got answers %v, want 503s to both new INVITEs: %v", answers, err)
		}
		m, err := sip.ParseMessage(buf[:k])
		if err != nil {
			t.Fatal(err)
		}
		res := m.(*sip.Response)
		answers[res.CallID().Value()] = res
	}
	for id, res := range answers {
		if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
			t.Errorf("%s: got %d (Retry-After %v), want 503 with a Retry-After", id, res.StatusCode, res.GetHeader("Retry-After"))
		}
		if tag, _ := res.To().Params.Get("tag"); !strings.HasPrefix(tag, tagPrefix) {
			t.Errorf("%s: the 503's To tag %q is not the front's (its ACK would not be absorbed)", id, tag)
		}
	}
	if got := f.shedTotal.Load(); got != 2 {
		t.Errorf("shed: got %d, want 2", got)
	}
	// A datagram read at once: the queue emptied, and a new INVITE goes
	// to the workers' 407.
	lag.Store(0)
	r.msgs <- []byte(testOptions(local))
	<-passed
	r.msgs <- []byte(testInvite(local, "after", ""))
	for {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to the INVITE after the queue emptied: %v", err)
		}
		m, err := sip.ParseMessage(buf[:k])
		if err != nil {
			t.Fatal(err)
		}
		if res := m.(*sip.Response); strings.Contains(res.CallID().Value(), "after") {
			if res.StatusCode != 407 {
				t.Errorf("an INVITE once the queue emptied: got %d, want the usual 407", res.StatusCode)
			}
			break
		}
	}
}

// The batch reader returns each datagram's arrival as the kernel stamped
// it: before it was read, by at least the time it waited. The kernel
// turns its receive stamps on a moment after the first socket asks
// (net_enable_timestamp defers it to a work queue), and a datagram
// received before that is stamped when it is read, a sojourn of zero
// (which errs on the side of not refusing): so the test tries a few
// datagrams.
func TestBatchReaderArrival(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	br := newBatchReader(pc)
	if br == nil {
		t.Skip("no batch reader on this platform")
	}
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var waits []time.Duration
	for range 20 {
		sent := time.Now()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		_, _, arrived, err := br.read()
		if err != nil {
			t.Fatal(err)
		}
		read := time.Now()
		if arrived.IsZero() {
			t.Fatal("no arrival stamp (SO_TIMESTAMPNS)")
		}
		if arrived.Before(sent.Add(-time.Second)) || arrived.After(read) {
			t.Fatalf("arrival %v: not between the send (%v) and the read (%v)", arrived, sent, read)
		}
		waited := read.Sub(arrived)
		if waited >= 30*time.Millisecond {
			return
		}
		waits = append(waits, waited)
	}
	t.Errorf("waits measured: %v; want one of at least 30 ms", waits)
}
