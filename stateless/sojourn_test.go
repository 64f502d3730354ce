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
// read.
type pacedReader struct {
	msgs   chan pacedMsg
	pace   time.Duration
	lag    func() time.Duration // negative: no arrival time, as a socket without SO_TIMESTAMPNS
	isFull atomic.Bool          // what full reports: the last batch filled the reader's slots
}

type pacedMsg struct {
	b    []byte
	from net.Addr
}

func (r *pacedReader) read() ([]byte, net.Addr, time.Time, error) {
	m, ok := <-r.msgs
	if !ok {
		return nil, nil, time.Time{}, net.ErrClosed
	}
	time.Sleep(r.pace)
	if lag := r.lag(); lag >= 0 {
		return m.b, m.from, time.Now().Add(-lag), nil
	}
	return m.b, m.from, time.Time{}, nil
}

// udpPair returns two loopback UDP sockets, the server's and a client's,
// closed when the test ends.
func udpPair(t *testing.T) (server, client net.PacketConn) {
	t.Helper()
	for _, pc := range []*net.PacketConn{&server, &client} {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		*pc = c
	}
	return server, client
}

// readAll reads wrapped as sipgo would, into the channel it returns,
// until the socket is closed.
func readAll(wrapped net.PacketConn) chan string {
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
	return passed
}

func (r *pacedReader) drained() bool { return len(r.msgs) == 0 }
func (r *pacedReader) full() bool    { return r.isFull.Load() }

// TestStandingQueueRefusesNewCalls drives a wrapped UDP socket whose
// reader falls behind (every datagram read 60 ms after it arrived): once
// the queue has stood for two intervals, an INVITE that starts a call is
// answered 503 with a Retry-After and the front's To tag, on the reader's
// goroutine, and never reaches sipgo, with credentials or without, and
// its ACK is absorbed; an INVITE inside a dialog, one from a trusted peer
// (authenticated by address) and other requests still reach sipgo; a
// source the admission chain refuses gets nothing. Once a datagram is read
// without waiting, new INVITEs go their usual way again.
func TestStandingQueueRefusesNewCalls(t *testing.T) {
	var deny atomic.Bool
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{MaxQueueDelay: time.Hour,
		Admit: func(*sip.Request) bool { return !deny.Load() }})
	defer f.Close()
	f.ChallengeInvites(challenge407, refuse483, fakeChallenger{})
	pc, c := udpPair(t)
	local := c.LocalAddr().String()
	trusted := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5060} // fakeChallenger.ByAddress
	var lag atomic.Int64
	lag.Store(int64(60 * time.Millisecond))
	r := &pacedReader{msgs: make(chan pacedMsg, 128), pace: 5 * time.Millisecond,
		lag: func() time.Duration { return time.Duration(lag.Load()) }}
	send := func(msg string) { r.msgs <- pacedMsg{[]byte(msg), c.LocalAddr()} }
	wrapped := &packetConn{PacketConn: pc, f: f, batch: r}
	passed := readAll(wrapped)
	defer close(r.msgs)
	// OPTIONS keep the queue standing (they pass to sipgo) until the
	// front stands: then the INVITEs.
	for i := 0; !f.overloaded(); i++ {
		if i == 100 {
			t.Fatal("the queue did not stand after 100 datagrams of 60 ms each")
		}
		send(testOptions(local))
		<-passed
	}
	wantPassed := func(what, branch string) {
		t.Helper()
		select {
		case m := <-passed:
			if !strings.Contains(m, "branch=z9hG4bK-"+branch) {
				t.Fatalf("passed to sipgo: %.60q, want the %s only", m, what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s did not reach sipgo", what)
		}
	}
	send(testInvite(local, "first", ""))
	send(testInvite(local, "second", "Proxy-Authorization: Digest username=\"alice\"\r\n"))
	send(strings.Replace(testInvite(local, "dialog", ""), "To: <sip:bob@t>", "To: <sip:bob@t>;tag=t1", 1))
	wantPassed("in-dialog INVITE", "dialog")
	r.msgs <- pacedMsg{[]byte(testInvite(trusted.String(), "trusted", "")), trusted}
	wantPassed("trusted peer's INVITE", "trusted")
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
	for _, branch := range []string{"first", "second"} {
		res := answers["c-"+branch]
		if res == nil {
			t.Fatalf("no answer to the INVITE %s (got %v)", branch, answers)
		}
		if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
			t.Errorf("%s: got %d (Retry-After %v), want 503 with a Retry-After", branch, res.StatusCode, res.GetHeader("Retry-After"))
		}
		b, _ := res.Via().Params.Get("branch")
		tag, _ := res.To().Params.Get("tag")
		ftag, _ := res.From().Params.Get("tag")
		if b != "z9hG4bK-"+branch || res.CSeq().SeqNo != 1 || res.CSeq().MethodName != sip.INVITE || ftag != "f1" {
			t.Errorf("%s: Via branch %q, CSeq %v, From tag %q: want the INVITE's", branch, b, res.CSeq(), ftag)
		}
		if !strings.HasPrefix(tag, tagPrefix) {
			t.Errorf("%s: the 503's To tag %q is not the front's", branch, tag)
		}
		send(testACK(local, branch, tag))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.ACKsAbsorbed() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.ACKsAbsorbed(); got != 2 {
		t.Errorf("ACKs of the 503s absorbed: got %d, want 2", got)
	}
	if got := f.shedTotal.Load(); got != 2 {
		t.Errorf("shed: got %d, want 2", got)
	}
	// A source the admission chain refuses: no 503, nothing to sipgo.
	deny.Store(true)
	send(testInvite(local, "denied", ""))
	send(testOptions(local)) // after the denied INVITE in the queue
	select {
	case m := <-passed:
		if !strings.HasPrefix(m, "OPTIONS ") {
			t.Fatalf("passed to sipgo: %.60q, want the OPTIONS only", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the OPTIONS after the denied INVITE did not reach sipgo")
	}
	if got := f.shedTotal.Load(); got != 2 {
		t.Errorf("a denied source's INVITE: shed %d, want still 2 (nothing sent)", got)
	}
	deny.Store(false)
	// A datagram read at once: the queue emptied, and a new INVITE goes
	// to the workers' 407.
	lag.Store(0)
	send(testOptions(local))
	<-passed
	send(testInvite(local, "after", ""))
	for {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to the INVITE after the queue emptied: %v", err)
		}
		m, err := sip.ParseMessage(buf[:k])
		if err != nil {
			t.Fatal(err)
		}
		res := m.(*sip.Response)
		if strings.Contains(res.CallID().Value(), "denied") {
			t.Fatalf("the denied source got a %d", res.StatusCode)
		}
		if strings.Contains(res.CallID().Value(), "after") {
			if res.StatusCode != 407 {
				t.Errorf("an INVITE once the queue emptied: got %d, want the usual 407", res.StatusCode)
			}
			break
		}
	}
}

// An overload that UDP stops reporting (no more datagrams: a flood that
// ended, on a node whose calls come over TLS) lapses within an interval;
// a queue that empties ends it at once.
func TestStandingLapses(t *testing.T) {
	f := New(func(*sip.Request, sip.ServerTransaction) {}, Config{MaxQueueDelay: time.Hour})
	defer f.Close()
	stand := func(q *sojourn) {
		t.Helper()
		base := time.Now().Add(-3 * standingInterval) // the last observation now
		for i := range 4 {
			f.observeQueue(q, 50*time.Millisecond, base.Add(time.Duration(i)*standingInterval))
		}
		if !f.overloaded() {
			t.Fatal("not overloaded after a queue stood for three intervals")
		}
	}
	var q sojourn
	stand(&q)
	f.observeQueue(&q, time.Millisecond, time.Now())
	if f.overloaded() {
		t.Error("overloaded after the queue emptied")
	}
	q = sojourn{}
	stand(&q)
	time.Sleep(standingInterval + 20*time.Millisecond)
	if f.overloaded() {
		t.Error("overloaded an interval after the last standing datagram")
	}
	// Off when the front's overload control is off.
	g := New(func(*sip.Request, sip.ServerTransaction) {}, Config{})
	defer g.Close()
	q = sojourn{}
	base := time.Now().Add(-3 * standingInterval)
	for i := range 4 {
		g.observeQueue(&q, 50*time.Millisecond, base.Add(time.Duration(i)*standingInterval))
	}
	if g.overloaded() {
		t.Error("overloaded with MaxQueueDelay 0")
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

// toHasTag tells a request inside a dialog by its To tag, in either
// spelling of the header, and not by a URI parameter named tag.
func TestToHasTag(t *testing.T) {
	tests := []struct {
		to   string
		want bool
	}{
		{"To: <sip:b@t>;tag=x", true},
		{"t: <sip:b@t>;tag=x", true},
		{"TO : sip:b@t;TAG=x", true},
		{"To: <sip:b@t;tag=x>", false},
		{"To: <sip:b@t>", false},
		{"", false},
	}
	for _, tt := range tests {
		msg := "INVITE sip:b@t SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n" + tt.to + "\r\nCall-ID: c\r\n\r\n"
		if got := toHasTag([]byte(msg)); got != tt.want {
			t.Errorf("%q: got %t, want %t", tt.to, got, tt.want)
		}
	}
}

// inviteHints reads, in one pass and without allocating, whether an
// INVITE carries credentials and whether the proxy may refuse it before
// authentication.
func TestInviteHints(t *testing.T) {
	tests := []struct {
		headers        string
		creds, refusal bool
	}{
		{"To: <sip:b@t>\r\nMax-Forwards: 70\r\n", false, false},
		{"To: <sip:b@t>\r\nProxy-Authorization: Digest x\r\n", true, false},
		{"To: <sip:b@t>\r\nauthorization: Digest x\r\n", true, false},
		{"To: <sip:b@t>;TAG=x\r\n", false, true},
		{"t: <sip:b@t>;tag=x\r\nAuthorization: Digest x\r\n", true, true},
		{"To: <sip:b@t;tag=x>\r\n", false, false},
		{"To: <sip:b@t>\r\nRoute: <sip:p;lr>\r\n", false, true},
		{"To: <sip:b@t>\r\nproxy-require: x\r\n", false, true},
		{"To: <sip:b@t>\r\nMax-Forwards:  0 \r\n", false, true},
		{"To: <sip:b@t>\r\nMax-Forwards: 10\r\n", false, false},
	}
	for _, tt := range tests {
		msg := []byte("INVITE sip:b@t SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n" + tt.headers + "Call-ID: c\r\n\r\n")
		creds, refusal := inviteHints(msg)
		if creds != tt.creds || refusal != tt.refusal {
			t.Errorf("%q: credentials %t, refusal %t; want %t, %t", tt.headers, creds, refusal, tt.creds, tt.refusal)
		}
		if n := testing.AllocsPerRun(10, func() { inviteHints(msg) }); n != 0 {
			t.Errorf("%q: %v allocations, want none", tt.headers, n)
		}
	}
}
