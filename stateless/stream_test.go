package stateless

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// scriptConn is a net.Conn whose reads return the given chunks, then EOF;
// writes are collected.
type scriptConn struct {
	net.Conn
	chunks [][]byte
	mu     sync.Mutex
	out    bytes.Buffer
	writes int
}

func (c *scriptConn) Read(b []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *scriptConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.out.Write(b)
}

func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5070}
}

// queueOnly is a Front without workers: what frame dispatches stays in
// f.jobs for the test to look at.
func queueOnly(queue, maxMsg int) *Front {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{cfg: Config{Queue: queue, MaxMessageBytes: maxMsg}, jobs: make(chan job, queue), ctx: ctx, stop: cancel,
		log: slog.New(slog.DiscardHandler)}
	f.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	return f
}

// drain reads c as sipgo does (small reads, to exercise partial copies)
// until EOF, and returns what it got and the REGISTERs dispatched.
func drain(t *testing.T, f *Front, c net.Conn) (passed string, registers []string) {
	t.Helper()
	var got bytes.Buffer
	buf := make([]byte, 7)
	for range 1_000_000 {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	for {
		j, ok := f.queuedJob()
		if !ok {
			return got.String(), registers
		}
		registers = append(registers, string((*j.buf)[:j.n]))
	}
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

var (
	options = crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
	invite  = crlf("INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\nCSeq: 1 INVITE\nContent-Type: application/sdp\nl:   5\n\n") + "v=0\r\n"
	reg1    = crlf("REGISTER sip:b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK3\nCSeq: 1 REGISTER\ncontent-length: 0\n\n")
	reg2    = crlf("REGISTER sip:b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK4\nCSeq: 2 REGISTER\nContent-Length : 4\n\n") + "abcd"
)

func TestStreamFraming(t *testing.T) {
	stream := options + reg1 + "\r\n\r\n" + invite + reg2 + options
	cases := map[string][][]byte{"whole": {[]byte(stream)}}
	var bytewise [][]byte
	for i := range len(stream) {
		bytewise = append(bytewise, []byte{stream[i]})
	}
	cases["byte by byte"] = bytewise
	cases["split in a header"] = [][]byte{[]byte(stream[:len(options)+20]), []byte(stream[len(options)+20:])}
	for name, chunks := range cases {
		t.Run(name, func(t *testing.T) {
			f := queueOnly(16, 65535)
			c := &streamConn{Conn: &scriptConn{chunks: chunks}, f: f, transport: "TCP", src: "127.0.0.1:5070"}
			passed, regs := drain(t, f, c)
			if want := options + "\r\n\r\n" + invite + options; passed != want {
				t.Errorf("sipgo got\n%q\nwant\n%q", passed, want)
			}
			if len(regs) != 2 || regs[0] != reg1 || regs[1] != reg2 {
				t.Errorf("dispatched %q, want the two REGISTERs", regs)
			}
		})
	}
}

// What the framer does not understand goes to sipgo, whole and in order,
// from there on; nothing is dispatched after it.
func TestStreamPassThrough(t *testing.T) {
	cases := map[string]string{
		"bare LF":               "REGISTER sip:b SIP/2.0\nCSeq: 1 REGISTER\nContent-Length: 0\n\n" + reg1,
		"folded Content-Length": crlf("REGISTER sip:b SIP/2.0\nContent-Length:\n 0\n\n") + reg1,
		"truncated at EOF":      reg1[:40],
	}
	for name, stream := range cases {
		t.Run(name, func(t *testing.T) {
			f := queueOnly(16, 2048)
			c := &streamConn{Conn: &scriptConn{chunks: [][]byte{[]byte(stream)}}, f: f, transport: "TCP", src: "x"}
			passed, regs := drain(t, f, c)
			if passed != stream || len(regs) != 0 {
				t.Errorf("sipgo got %d of %d bytes, %d dispatched; want everything passed", len(passed), len(stream), len(regs))
			}
		})
	}
}

// A message whose header section announces a body over the limit, or
// has no Content-Length that frames it (RFC 3261 18.3), is answered 513
// or 400 from its headers (or not at all, without a Via), and the
// connection ends (io.EOF, for sipgo to close it): nothing after it is
// passed or dispatched.
func TestStreamEnds(t *testing.T) {
	noLength := strings.Replace(reg1, "content-length: 0\r\n", "", 1)
	for name, c := range map[string]struct{ msg, answer string }{
		"no Content-Length":           {noLength, "SIP/2.0 400 Missing Content-Length Header\r\n"},
		"two Content-Lengths":         {strings.Replace(reg1, "content-length: 0", "content-length: 0\r\nl: 3", 1), "SIP/2.0 400 Duplicate Content-Length Header\r\n"},
		"Content-Length not a number": {strings.Replace(options, "Content-Length: 0", "Content-Length: -999", 1), "SIP/2.0 400 Malformed Content-Length Header\r\n"},
		"no Content-Length, no Via":   {crlf("REGISTER sip:b SIP/2.0\nCSeq: 1 REGISTER\n\n"), ""},
		"OPTIONS":                     {strings.Replace(options, "Content-Length: 0", "Content-Length: 9000", 1), "SIP/2.0 513 Message Too Large\r\n"},
		"REGISTER, 20 digits":         {strings.Replace(reg1, "content-length: 0", "content-length: 10000000000000000000", 1), "SIP/2.0 513 Message Too Large\r\n"},
		"headers over the limit":      {strings.Replace(reg1, "content-length: 0", "X-Big: "+strings.Repeat("a", 3000)+"\r\ncontent-length: 0", 1), "SIP/2.0 513 Message Too Large\r\n"},
		"without a Via":               {crlf("OPTIONS sip:b SIP/2.0\nContent-Length: 9000\n\n"), ""},
		// No end of the header section within the limit and the buffer:
		// answered from the lines before the long one, when they hold
		// what a response copies.
		"header section without an end": {crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK5\nFrom: <sip:c@b>;tag=1\nTo: <sip:a@b>\ni: x1\nCSeq: 1 OPTIONS\nX-Big: ") +
			strings.Repeat("a", 20000) + "\r\nContent-Length: 0\r\n\r\n", "SIP/2.0 513 Message Too Large\r\n"},
		"header section without an end, no Call-ID before it": {crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK5\nFrom: <sip:c@b>;tag=1\nTo: <sip:a@b>\nCSeq: 1 OPTIONS\nX-Big: ") +
			strings.Repeat("a", 20000) + "\r\nCall-ID: x1\r\nContent-Length: 0\r\n\r\n", ""},
	} {
		t.Run(name, func(t *testing.T) {
			f := queueOnly(16, 2048)
			sc := &scriptConn{chunks: [][]byte{[]byte(c.msg + reg2)}}
			conn := &streamConn{Conn: sc, f: f, transport: "TCP", src: "127.0.0.1:5070"}
			for range 2 { // and again: the end stays
				n, err := conn.Read(make([]byte, 4096))
				if n != 0 || !errors.Is(err, io.EOF) {
					t.Fatalf("read %d bytes, %v; want io.EOF", n, err)
				}
			}
			if len(f.jobs) != 0 {
				t.Errorf("%d dispatched, want none: the REGISTER after it is never framed", len(f.jobs))
			}
			if got := sc.out.String(); !strings.HasPrefix(got, c.answer) || (c.answer == "") != (got == "") {
				t.Errorf("answer %q, want %q", got, c.answer)
			}
		})
	}
}

// A full queue makes a stream's reader wait (backpressure): the REGISTER
// is queued once a worker took the one before it, and nothing reaches
// sipgo's stateful path. When the front closes meanwhile, the waiting
// REGISTER goes to sipgo.
func TestStreamQueueFull(t *testing.T) {
	f := queueOnly(1, 65535)
	c := &streamConn{Conn: &scriptConn{chunks: [][]byte{[]byte(reg1 + reg2 + reg1 + reg2)}}, f: f, transport: "TCP", src: "x"}
	type result struct {
		passed string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var got bytes.Buffer
		buf := make([]byte, 64)
		for range 1000 {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				done <- result{got.String(), err}
				return
			}
		}
		done <- result{got.String(), errors.New("no EOF after 1000 reads")}
	}()
	take := func(want string) {
		t.Helper()
		select {
		case j := <-f.jobs:
			if got := string((*j.buf)[:j.n]); got != want {
				t.Fatalf("queued %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing queued within 5 s; want %q", want)
		}
	}
	take(reg1)
	take(reg2) // queued only once reg1 left the queue
	// The third fills the queue's one place; the fourth waits for room,
	// and the front closes instead: sipgo gets it.
	deadline := time.Now().Add(5 * time.Second)
	for len(f.jobs) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("the reader did not wait for room: sipgo got %q (%v)", r.passed, r.err)
	case <-time.After(20 * time.Millisecond):
	}
	f.stop()
	select {
	case r := <-done:
		if !errors.Is(r.err, io.EOF) || r.passed != reg2 {
			t.Fatalf("sipgo got %q (%v); want the REGISTER left waiting when the front closed", r.passed, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader still waits after the front closed")
	}
}

// A connection holds at most maxConnQueued of the queue: past that its
// reader waits for its own slots, and another connection still finds
// room; a worker taking one of its jobs gives the slot back.
func TestStreamConnSlots(t *testing.T) {
	f := queueOnly(maxConnQueued+4, 65535)
	many := strings.Repeat(reg1, maxConnQueued+1)
	a := &streamConn{Conn: &scriptConn{chunks: [][]byte{[]byte(many)}}, f: f, transport: "TCP", src: "a",
		slots: newConnSlots()}
	b := &streamConn{Conn: &scriptConn{chunks: [][]byte{[]byte(reg2)}}, f: f, transport: "TCP", src: "b",
		slots: newConnSlots()}
	aDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := a.Read(buf); err != nil {
				aDone <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.jobs) < maxConnQueued && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // a reader that would not wait would have queued one more
	if n := len(f.jobs); n != maxConnQueued {
		t.Fatalf("connection a has %d queued, want its %d slots' worth", n, maxConnQueued)
	}
	if _, err := b.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection b: %v, want EOF after its REGISTER was queued", err)
	}
	if n := len(f.jobs); n != maxConnQueued+1 {
		t.Fatalf("%d queued after b's REGISTER, want %d", n, maxConnQueued+1)
	}
	// Workers take a's jobs: its reader waits until half of its slots
	// are free, then queues its last REGISTER and reaches EOF.
	c := f.newCrew()
	f.h = func(*sip.Request, sip.ServerTransaction) {} // answers nothing
	for range maxConnQueued/2 - 1 {
		f.work(c, <-f.jobs)
	}
	select {
	case err := <-aDone:
		t.Fatalf("connection a's reader went on with %d of its slots free (%v); want it to wait for half", maxConnQueued/2-1, err)
	case <-time.After(20 * time.Millisecond):
	}
	f.work(c, <-f.jobs)
	select {
	case err := <-aDone:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("connection a: %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection a's reader still waits after a worker took one of its jobs")
	}
	if n := a.slots.n.Load(); n != maxConnQueued/2+1 {
		t.Fatalf("a holds %d slots, want %d (half freed, one taken)", n, maxConnQueued/2+1)
	}
}

func TestContentLength(t *testing.T) {
	for _, c := range []struct {
		h    string
		n    int
		good bool
	}{
		{"A\r\nContent-Length: 12\r\n\r\n", 12, true},
		{"A\r\nCONTENT-LENGTH:0\r\n\r\n", 0, true},
		{"A\r\nl:7\r\n\r\n", 7, true},
		{"A\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 3, true},
		{"A\r\nContent-Length: 3\r\nl: 4\r\n\r\n", 0, false},
		{"A\r\nContent-Length: -1\r\n\r\n", 0, false},
		{"A\r\nContent-Length: 12345678\r\n\r\n", tooLong, true},
		{"A\r\nContent-Length: 100000000000000000000000\r\n\r\n", tooLong, true},
		{"A\r\nContent-Length: 00000000000000000000012\r\n\r\n", 12, true},
		{"A\r\nContent-Length: 0000000000000\r\n\r\n", 0, true},
		{"A\r\nContent-Length: \r\n\r\n", 0, false},
		{"A\r\nContent-Type: x\r\n\r\n", 0, false},
		{"A\r\nX-Content-Length: 5\r\n\r\n", 0, false},
	} {
		n, good := contentLength([]byte(c.h))
		if n != c.n || good != c.good {
			t.Errorf("contentLength(%q) = %d, %t; want %d, %t", c.h, n, good, c.n, c.good)
		}
	}
}

// okHandler answers every REGISTER with 200.
func okHandler(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// Over a real loopback TCP connection: REGISTERs are answered by the
// workers on the connection; an OPTIONS reaches the reader (sipgo's
// place) untouched.
func TestStreamOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := New(okHandler, Config{Workers: 2})
	defer f.Close()
	wl := f.Listener(ln, "TCP")
	defer wl.Close()
	got := make(chan string, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		t.Cleanup(func() { c.Close() }) // open until the answer is read
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(c, buf, len(options))
		got <- string(buf[:n])
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte(reg1 + options)); err != nil {
		t.Fatal(err)
	}
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	res := make([]byte, 4096)
	n, err := cli.Read(res)
	if err != nil || !strings.HasPrefix(string(res[:n]), "SIP/2.0 200 OK\r\n") || !strings.Contains(string(res[:n]), "branch=z9hG4bK3") {
		t.Fatalf("answer %q, %v; want 200 to the REGISTER", res[:n], err)
	}
	select {
	case s := <-got:
		if s != options {
			t.Fatalf("reader got %q, want the OPTIONS", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader got nothing")
	}
	if f.Handled() != 1 {
		t.Fatalf("handled %d, want 1", f.Handled())
	}
}

// Over UDP: a REGISTER is answered to its source, an OPTIONS read.
func TestPacketConn(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := New(okHandler, Config{Workers: 1})
	defer f.Close()
	wpc := f.PacketConn(pc)
	defer wpc.Close()
	cli, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, m := range []string{reg1, options} {
		if _, err := cli.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	_ = wpc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := wpc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != options {
		t.Fatalf("read %q, %v; want the OPTIONS", buf[:n], err)
	}
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = cli.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 OK\r\n") {
		t.Fatalf("answer %q, %v; want 200", buf[:n], err)
	}
}

// gatedHandler answers 200 once gate is closed, after telling started.
type gatedHandler struct {
	started chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (h *gatedHandler) handle(req *sip.Request, tx sip.ServerTransaction) {
	h.once.Do(func() { close(h.started) })
	<-h.gate
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// REGISTERs that queued up while the worker was busy are answered with
// one write per run of the same connection, whole and in order.
func TestStreamAnswersBatched(t *testing.T) {
	h := &gatedHandler{started: make(chan struct{}), gate: make(chan struct{})}
	f := New(h.handle, Config{Workers: 1, Queue: 64})
	defer f.Close()
	regN := func(n int) string {
		return crlf(fmt.Sprintf("REGISTER sip:b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK%d\nCSeq: %d REGISTER\nContent-Length: 0\n\n", n, n))
	}
	a := &scriptConn{}
	b := &scriptConn{}
	ca := &streamConn{Conn: a, f: f, transport: "TCP", src: "a"}
	cb := &streamConn{Conn: b, f: f, transport: "TCP", src: "b"}
	frameAll := func(c *streamConn, sc *scriptConn, from, to int) {
		var s strings.Builder
		for i := from; i <= to; i++ {
			s.WriteString(regN(i))
		}
		sc.chunks = [][]byte{[]byte(s.String())}
		if _, err := c.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
			t.Fatalf("read: %v, want EOF (every message a REGISTER)", err)
		}
	}
	frameAll(ca, a, 1, 1)
	select {
	case <-h.started: // the worker is busy with REGISTER 1
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not start")
	}
	frameAll(ca, a, 2, 10)
	frameAll(cb, b, 11, 12)
	frameAll(ca, a, 13, 14)
	close(h.gate)
	deadline := time.Now().Add(5 * time.Second)
	for f.Handled() < 14 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if f.Handled() != 14 {
		t.Fatalf("handled %d of 14", f.Handled())
	}
	f.Close() // the last flush has happened
	check := func(name string, sc *scriptConn, wantWrites int, cseqs ...int) {
		t.Helper()
		sc.mu.Lock()
		defer sc.mu.Unlock()
		var want strings.Builder
		for _, n := range cseqs {
			fmt.Fprintf(&want, "CSeq: %d REGISTER", n)
		}
		var got strings.Builder
		for _, line := range strings.Split(sc.out.String(), "\r\n") {
			if strings.HasPrefix(line, "CSeq: ") {
				got.WriteString(line)
			}
		}
		if got.String() != want.String() || sc.writes != wantWrites {
			t.Errorf("conn %s: %d writes of %q; want %d writes of %q", name, sc.writes, got.String(), wantWrites, want.String())
		}
	}
	// 2 to 14 queued while 1 was handled: 1 to 10 go out together, then
	// 11-12 on b, then 13-14 on a.
	check("a", a, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14)
	check("b", b, 1, 11, 12)
}

// deadConn is a peer that stopped reading: every write fails (as one does
// once the write deadline passed); Close is counted.
type deadConn struct {
	scriptConn // its reads; its mu and writes count here too
	closes     int
}

func (c *deadConn) Write([]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return 0, errors.New("i/o timeout")
}

func (c *deadConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes++
	return nil
}

// A failed write closes the connection once; later answers for it are
// dropped instead of holding a worker for another write timeout each.
func TestStreamAnswerFailureCloses(t *testing.T) {
	f := New(okHandler, Config{Workers: 1})
	defer f.Close()
	dc := &deadConn{}
	c := &streamConn{Conn: dc, f: f, transport: "TCP", src: "x"}
	for i := range 3 {
		dc.chunks = [][]byte{[]byte(reg1)}
		if _, err := c.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
			t.Fatalf("read: %v, want EOF", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for f.Handled() < uint64(i+1) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	f.Close() // every answer is flushed
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if f.Handled() != 3 || dc.writes != 1 || dc.closes != 1 {
		t.Fatalf("handled %d, %d writes, %d closes; want 3 handled, 1 write, 1 close", f.Handled(), dc.writes, dc.closes)
	}
}

// smallBufListener gives accepted connections a small send buffer, so
// that a peer that does not read blocks the server's writes soon.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// Over loopback TCP: a client that sends REGISTERs and never reads gets
// its connection closed once a worker's write has waited WriteTimeout,
// and another client is answered at once meanwhile and after.
func TestStreamPeerNotReading(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := New(okHandler, Config{Workers: 1, WriteTimeout: 200 * time.Millisecond})
	defer f.Close()
	wl := f.Listener(smallBufListener{ln}, "TCP")
	defer wl.Close()
	// sipgo's part: read every accepted connection until it ends.
	ended := make(chan string, 4)
	go func() {
		for range 2 {
			c, err := wl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for range 1_000_000 {
					if _, err := c.Read(buf); err != nil {
						ended <- c.RemoteAddr().String()
						return
					}
				}
			}()
		}
	}()

	mute, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	_ = mute.(*net.TCPConn).SetReadBuffer(4096)
	// About 150 bytes of answer per REGISTER: 4,000 of them overflow both
	// small buffers many times over.
	flood := []byte(strings.Repeat(reg1, 4000))
	go func() { _, _ = mute.Write(flood) }()

	select {
	case who := <-ended:
		if who != mute.LocalAddr().String() {
			t.Fatalf("connection %s ended, want the mute one %s", who, mute.LocalAddr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection of a client that does not read was not closed")
	}

	// The worker is free: another client is answered.
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte(reg1)); err != nil {
		t.Fatal(err)
	}
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	res := make([]byte, 4096)
	n, err := cli.Read(res)
	if err != nil || !strings.HasPrefix(string(res[:n]), "SIP/2.0 200 OK\r\n") {
		t.Fatalf("answer %q, %v; want 200", res[:n], err)
	}
}

func FuzzStreamFraming(f *testing.F) {
	f.Add([]byte(options+reg1+"\r\n\r\n"+invite+reg2), uint8(5))
	f.Add([]byte(reg1[:30]), uint8(1))
	f.Add([]byte("REGISTER x\r\nl: 99999\r\n\r\n"), uint8(3))
	f.Add([]byte(options+strings.Replace(options, "CSeq: 1", "CSeq: x", 1)+reg1), uint8(9))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		size := int(chunk%64) + 1
		var chunks [][]byte
		for b := data; len(b) > 0; {
			n := min(size, len(b))
			chunks = append(chunks, b[:n])
			b = b[n:]
		}
		fr := queueOnly(1<<12, 1024)
		dropped := 0 // requests nobody can be answered for (answerMalformed)
		fr.cfg.OnShed = func(reason string) {
			if reason == ShedUnparsable {
				dropped++
			}
		}
		sc := &scriptConn{chunks: chunks}
		c := &streamConn{Conn: sc, f: fr, transport: "TCP", src: "x"}
		passed, regs := drain(t, fr, c)
		total := len(passed)
		for _, r := range regs {
			if !strings.HasPrefix(r, "REGISTER ") {
				t.Fatalf("dispatched a non-REGISTER %q", r)
			}
			total += len(r)
		}
		// What was neither passed nor dispatched is malformed requests
		// answered 400, 416 for a Request-URI scheme or 501 for a
		// lower-case method (suspect.go): one whole answer each; or
		// requests dropped, with nobody to answer; at least one of them;
		// or the framer closed the connection at a message over the limit
		// (ended), answered 513 (the last answer) when it had a Via.
		answers := strings.SplitAfter(sc.out.String(), "\r\n\r\n")
		n := len(answers) - 1
		if answers[n] != "" {
			t.Fatalf("a partial answer written: %q", answers[n])
		}
		for i, a := range answers[:n] {
			if c.ended && i == n-1 && strings.HasPrefix(a, "SIP/2.0 513 Message Too Large\r\n") {
				continue
			}
			if !strings.HasPrefix(a, "SIP/2.0 400 ") && !strings.HasPrefix(a, "SIP/2.0 416 Unsupported URI Scheme\r\n") &&
				!strings.HasPrefix(a, "SIP/2.0 501 Not Implemented\r\n") {
				t.Fatalf("an answer written is not a 400, 416 or 501 (or a last 513 before the close):\n%q", a)
			}
		}
		if total > len(data) || (!c.ended && (total != len(data)) != (n+dropped > 0)) || (c.ended && total == len(data)) {
			t.Fatalf("%d bytes in, %d out (passed + dispatched), %d malformed requests answered, %d dropped, ended %v",
				len(data), total, n, dropped, c.ended)
		}
	})
}

// BenchmarkStreamFrame: framing one REGISTER off a TCP stream and queueing
// it (the reader's share of a stateless REGISTER over TCP).
func BenchmarkStreamFrame(b *testing.B) {
	msg := []byte(reg1)
	f := queueOnly(1, 65535)
	c := &streamConn{Conn: &scriptConn{}, f: f, transport: "TCP", src: "x"}
	b.ReportAllocs()
	for b.Loop() {
		c.buf, c.r, c.w = append(c.buf[:0], msg...), 0, len(msg)
		if !c.frame() {
			b.Fatal("not framed")
		}
		j := <-f.jobs
		f.putBuf(j.buf)
	}
}
