package stateless

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpFront serves a Front over a loopback UDP socket, read as sipgo would
// (what the front does not take is collected), and returns a client
// socket and what the front shed.
type udpFront struct {
	f      *Front
	cli    net.Conn
	mu     sync.Mutex
	shed   []string
	passed []string
	waits  []time.Duration // Config.OnQueueDelay's
}

func newUDPFront(t *testing.T, h Handler, cfg Config) *udpFront {
	t.Helper()
	u := &udpFront{}
	cfg.OnShed = func(reason string) {
		u.mu.Lock()
		u.shed = append(u.shed, reason)
		u.mu.Unlock()
	}
	cfg.OnQueueDelay = func(d time.Duration) {
		u.mu.Lock()
		u.waits = append(u.waits, d)
		u.mu.Unlock()
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.f = New(h, cfg)
	wpc := u.f.PacketConn(pc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, _, err := wpc.ReadFrom(buf)
			if err != nil {
				return
			}
			u.mu.Lock()
			u.passed = append(u.passed, string(buf[:n]))
			u.mu.Unlock()
		}
	}()
	if u.cli, err = net.Dial("udp", pc.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		wpc.Close()
		<-done
		u.f.Close()
		u.cli.Close()
	})
	return u
}

func (u *udpFront) send(t *testing.T, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if _, err := u.cli.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// answers reads n answers (5 s at most) and returns them by Via branch.
func (u *udpFront) answers(t *testing.T, n int) map[string]string {
	t.Helper()
	got := map[string]string{}
	buf := make([]byte, 4096)
	_ = u.cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range n {
		k, err := u.cli.Read(buf)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		msg := string(buf[:k])
		_, rest, _ := strings.Cut(msg, "branch=")
		branch, _, _ := strings.Cut(rest, "\r\n")
		branch, _, _ = strings.Cut(branch, ";")
		got[branch] = msg
	}
	return got
}

func (u *udpFront) shedReasons() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := slices.Clone(u.shed)
	slices.Sort(s)
	return s
}

func udpRegister(branch string, auth bool) string {
	a := ""
	if auth {
		a = "Authorization: Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:b\", response=\"0\"\n"
	}
	return crlf(fmt.Sprintf("REGISTER sip:b SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=%s\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: %s\nCSeq: 1 REGISTER\n%sContent-Length: 0\n\n", branch, branch, a))
}

// Past MaxQueueDelay a REGISTER without credentials is answered 503 with a
// spread Retry-After, one with credentials is served; a retransmission of
// a queued datagram is dropped.
func TestOverloadShedsLateFirstLegs(t *testing.T) {
	h := &gatedHandler{started: make(chan struct{}), gate: make(chan struct{})}
	u := newUDPFront(t, h.handle, Config{Workers: 1, MaxQueueDelay: 20 * time.Millisecond})
	u.send(t, udpRegister("z9hG4bK-busy", false))
	select {
	case <-h.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never started")
	}
	late := udpRegister("z9hG4bK-late", false)
	u.send(t, late, udpRegister("z9hG4bK-second-leg", true), late) // the last one: a retransmission
	// Once the reader queued the two and dropped the retransmission (on
	// a loaded machine that is not at once), they wait 60 ms: past
	// MaxQueueDelay, so they are late.
	deadline := time.Now().Add(5 * time.Second)
	for (len(u.f.jobs) < 2 || !slices.Contains(u.shedReasons(), ShedDuplicate)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(60 * time.Millisecond)
	close(h.gate)
	got := u.answers(t, 3)
	if !strings.HasPrefix(got["z9hG4bK-busy"], "SIP/2.0 200 ") {
		t.Errorf("the request served before the queue formed: %q, want 200", got["z9hG4bK-busy"])
	}
	if !strings.HasPrefix(got["z9hG4bK-second-leg"], "SIP/2.0 200 ") {
		t.Errorf("a late request with credentials: %q, want 200 (always served)", got["z9hG4bK-second-leg"])
	}
	res := got["z9hG4bK-late"]
	if !strings.HasPrefix(res, "SIP/2.0 503 Service Unavailable\r\n") {
		t.Fatalf("a late first leg: %q, want 503", res)
	}
	_, after, _ := strings.Cut(res, "Retry-After: ")
	v, _, _ := strings.Cut(after, "\r\n")
	if secs, err := strconv.Atoi(v); err != nil || secs < 5 || secs >= 10 {
		t.Errorf("Retry-After %q, want 5 to 9 s", v)
	}
	if got, want := u.shedReasons(), []string{ShedDuplicate, ShedOverload}; !slices.Equal(got, want) {
		t.Errorf("shed %q, want %q", got, want)
	}
	if f := u.f.Handled(); f != 2 {
		t.Errorf("handled %d, want 2", f)
	}
	// The queue delay reported: one per request a worker took (the
	// retransmission never was queued), the two that waited behind the
	// busy worker at least the 60 ms they were held.
	u.mu.Lock()
	waits := slices.Clone(u.waits)
	u.mu.Unlock()
	slices.Sort(waits)
	if len(waits) != 3 || waits[1] < 60*time.Millisecond {
		t.Errorf("queue delays %v, want 3, the longest two at least 60ms", waits)
	}
}

// A UDP REGISTER that finds the queue full is dropped, not handed to
// sipgo; other requests still are.
func TestOverloadQueueFullDropsDatagrams(t *testing.T) {
	h := &gatedHandler{started: make(chan struct{}), gate: make(chan struct{})}
	u := newUDPFront(t, h.handle, Config{Workers: 1, Queue: 1})
	u.send(t, udpRegister("z9hG4bK-busy", false))
	select {
	case <-h.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never started")
	}
	u.send(t, udpRegister("z9hG4bK-queued", false), udpRegister("z9hG4bK-dropped", false), options)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		n := len(u.passed)
		u.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(h.gate)
	got := u.answers(t, 2)
	if len(got) != 2 || got["z9hG4bK-busy"] == "" || got["z9hG4bK-queued"] == "" {
		t.Errorf("answers for %v, want busy and queued", slices.Sorted(maps.Keys(got)))
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.passed) != 1 || u.passed[0] != options {
		t.Errorf("passed to sipgo: %q, want only the OPTIONS", u.passed)
	}
	if !slices.Equal(u.shed, []string{ShedQueueFull}) {
		t.Errorf("shed %q, want [queue_full]", u.shed)
	}
}
