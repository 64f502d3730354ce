package stateless

import (
	"bufio"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/reply"
)

// A REGISTER datagram read as soon as it arrived is answered by the
// socket's reader itself (no worker takes it: OnQueueDelay is the
// workers'); one that waited in the socket over maxInlineLag finds the
// reader behind and goes to a worker. Both are answered, to their source.
func TestInlineAnswers(t *testing.T) {
	var queued atomic.Int32
	f := New(func(req *sip.Request, tx sip.ServerTransaction) { _ = tx.Respond(reply.FromRequest(req, 200, "OK")) },
		Config{Inline: true, OnQueueDelay: func(time.Duration) { queued.Add(1) }})
	defer f.Close()
	pc, c := udpPair(t)
	var lag atomic.Int64
	r := &pacedReader{msgs: make(chan pacedMsg, 16), lag: func() time.Duration { return time.Duration(lag.Load()) }}
	defer close(r.msgs)
	wrapped := &packetConn{PacketConn: pc, f: f, batch: r, crew: f.newCrew()}
	passed := readAll(wrapped)
	answered := func(branches ...string) {
		t.Helper()
		for _, b := range branches {
			r.msgs <- pacedMsg{[]byte(udpRegister(b, false)), c.LocalAddr()}
		}
		got := map[string]bool{}
		buf := make([]byte, 65536)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range branches {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				t.Fatalf("answers to %v: %v after %v", branches, err, got)
			}
			msg := string(buf[:k])
			if !strings.HasPrefix(msg, "SIP/2.0 200 OK\r\n") {
				t.Fatalf("answer %q", msg)
			}
			_, rest, _ := strings.Cut(msg, "branch=")
			b, _, _ := strings.Cut(rest, "\r\n")
			got[b] = true
		}
		for _, b := range branches {
			if !got[b] {
				t.Fatalf("no answer to %s: got %v", b, got)
			}
		}
	}
	answered("z9hG4bK-i1", "z9hG4bK-i2", "z9hG4bK-i3")
	if n := queued.Load(); n != 0 {
		t.Fatalf("%d of the REGISTERs read at once went to a worker, want none", n)
	}
	lag.Store(int64(10 * maxInlineLag))
	answered("z9hG4bK-w1", "z9hG4bK-w2")
	if n := queued.Load(); n != 2 {
		t.Fatalf("%d of the 2 REGISTERs that waited in the socket went to a worker, want 2", n)
	}
	// Without arrival times (a kernel without SO_TIMESTAMPNS), the reader
	// answers while its batches do not fill its slots, and hands a full
	// batch's REGISTERs to the workers.
	lag.Store(-1)
	answered("z9hG4bK-n1", "z9hG4bK-n2")
	if n := queued.Load(); n != 2 {
		t.Fatalf("%d REGISTERs went to a worker, want still 2: a reader whose batches are not full keeps up", n)
	}
	r.isFull.Store(true)
	answered("z9hG4bK-f1", "z9hG4bK-f2")
	if n := queued.Load(); n != 4 {
		t.Fatalf("%d REGISTERs went to a worker, want 4: the 2 of full batches too", n)
	}
	select {
	case m := <-passed:
		t.Fatalf("a REGISTER reached sipgo: %.60q", m)
	default:
	}
}

// A stream connection's reader answers the REGISTERs it frames itself,
// a burst of them too: every one is answered, in full, on the connection,
// none by a worker and none handed to sipgo.
func TestInlineStreamAnswers(t *testing.T) {
	var queued atomic.Int32
	f := New(func(req *sip.Request, tx sip.ServerTransaction) { _ = tx.Respond(reply.FromRequest(req, 200, "OK")) },
		Config{Inline: true, OnQueueDelay: func(time.Duration) { queued.Add(1) }})
	t.Cleanup(f.Close)
	c, passed := tcpFront(t, f)
	rd := bufio.NewReader(c)
	answered := func(n int, prefix string) {
		t.Helper()
		var b strings.Builder
		for i := range n {
			b.WriteString(udpRegister(fmt.Sprintf("z9hG4bK-%s%d", prefix, i), false))
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := map[string]bool{}
		for len(got) < n {
			var head strings.Builder
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					t.Fatalf("after %d answers: %v", len(got), err)
				}
				head.WriteString(line)
				if line == "\r\n" {
					break // the answers have no body
				}
			}
			m, err := sip.ParseMessage([]byte(head.String()))
			if err != nil {
				t.Fatalf("answer %q: %v", head.String(), err)
			}
			res, ok := m.(*sip.Response)
			if !ok || res.StatusCode != 200 {
				t.Fatalf("answer %v", m)
			}
			branch, _ := res.Via().Params.Get("branch")
			got[branch] = true
		}
	}
	answered(3, "i")
	answered(40, "b") // 40 x 230 bytes: more than the reader's 4 KB buffer
	if n := queued.Load(); n != 0 {
		t.Fatalf("%d of 43 REGISTERs went to a worker, want none", n)
	}
	select {
	case m := <-passed:
		t.Fatalf("a REGISTER reached sipgo: %.60q", m)
	default:
	}
}
