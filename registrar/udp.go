package registrar

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// StatelessUDP wraps the UDP socket sipgo serves so that REGISTER
// datagrams are answered here, without a server transaction, and never
// reach sipgo (RFC 3261 section 8.2.7, stateless UAS behaviour).
//
// Why: sipgo keeps every UDP non-INVITE server transaction for Timer J
// (32 s) with its request and response, about 13 KB per REGISTER flow, so
// memory grows with rate x 32 s (2 GB at 15,000 flows/s). A REGISTER is
// safe to answer statelessly: a retransmitted first leg gets a fresh 401;
// a retransmitted second leg re-presents a nonce count already accepted
// and gets 401 stale=true, after which the client answers again with the
// next count. Kamailio answers REGISTER the same way (sl_send_reply).
//
// Everything else (and REGISTERs while every worker is busy and the queue
// is full) goes to sipgo as before.
type StatelessUDP struct {
	net.PacketConn
	reg     *Registrar
	log     *slog.Logger
	jobs    chan udpJob
	bufs    sync.Pool
	handled atomic.Uint64
	observe func(req *sip.Request, res *sip.Response)
	gate    func(req *sip.Request) (refusal *sip.Response, ok bool)
	gateEnd func()
	wg      sync.WaitGroup
	stop    context.CancelFunc
	ctx     context.Context
}

type udpJob struct {
	buf  *[]byte
	n    int
	addr net.Addr
}

// NewStatelessUDP starts workers goroutines answering REGISTERs read from
// conn. Close stops them (and closes conn).
func NewStatelessUDP(conn net.PacketConn, r *Registrar, workers int, logger *slog.Logger) *StatelessUDP {
	if workers < 1 {
		workers = 1
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &StatelessUDP{PacketConn: conn, reg: r, log: logger, jobs: make(chan udpJob, 4096), ctx: ctx, stop: cancel}
	s.bufs.New = func() any { b := make([]byte, 65536); return &b }
	for range workers {
		s.wg.Add(1)
		go s.worker()
	}
	return s
}

// OnExchange registers f to be called for every REGISTER answered here
// (before the response is sent; res is nil for a dropped request), for
// the metrics and the message trace the sipgo handlers get elsewhere.
// Call it before serving.
func (s *StatelessUDP) OnExchange(f func(req *sip.Request, res *sip.Response)) { s.observe = f }

// SetGate puts the checks the sipgo handlers get (bans, User-Agent deny
// list, in-flight bound) in front of the stateless path: gate admits a
// request (then end is called when it is done) or returns the refusal to
// send (nil: drop it). Call it before serving.
func (s *StatelessUDP) SetGate(gate func(req *sip.Request) (refusal *sip.Response, ok bool), end func()) {
	s.gate, s.gateEnd = gate, end
}

// Handled returns how many REGISTERs were answered statelessly.
func (s *StatelessUDP) Handled() uint64 { return s.handled.Load() }

// ReadFrom returns the next datagram that is not a REGISTER.
func (s *StatelessUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := s.PacketConn.ReadFrom(b)
		if err != nil || !isRegister(b[:n]) {
			return n, addr, err
		}
		bp := s.bufs.Get().(*[]byte)
		if n > len(*bp) {
			s.bufs.Put(bp)
			return n, addr, nil // cannot happen with 64 KB buffers; let sipgo decide
		}
		copy(*bp, b[:n])
		select {
		case s.jobs <- udpJob{buf: bp, n: n, addr: addr}:
		default:
			s.bufs.Put(bp)
			return n, addr, nil // workers saturated: the stateful path takes it
		}
	}
}

// Close stops the workers and closes the socket.
func (s *StatelessUDP) Close() error {
	err := s.PacketConn.Close()
	s.stop()
	s.wg.Wait()
	return err
}

func (s *StatelessUDP) worker() {
	defer s.wg.Done()
	parser := sip.NewParser()
	var out bytes.Buffer
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.jobs:
			s.handle(parser, &out, j)
			s.bufs.Put(j.buf)
		}
	}
}

func (s *StatelessUDP) handle(parser *sip.Parser, out *bytes.Buffer, j udpJob) {
	msg, err := parser.ParseSIP((*j.buf)[:j.n])
	if err != nil {
		s.log.Debug("unparsable REGISTER dropped", "source", j.addr.String(), "error", err)
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.Via() == nil || req.CSeq() == nil {
		return // RFC 3261 18.3: without Via and CSeq there is no one to answer
	}
	req.SetSource(j.addr.String())
	req.SetTransport("UDP")
	var res *sip.Response
	if s.gate != nil {
		refusal, ok := s.gate(req)
		if !ok {
			if refusal != nil {
				s.send(out, refusal, j.addr)
			}
			return
		}
		defer s.gateEnd()
	}
	res = s.reg.Handle(req)
	if s.observe != nil {
		s.observe(req, res)
	}
	if res == nil {
		return
	}
	s.handled.Add(1) // before sending: the client may act on it at once
	s.send(out, res, j.addr)
}

func (s *StatelessUDP) send(out *bytes.Buffer, res *sip.Response, addr net.Addr) {
	out.Reset()
	res.StringWrite(out)
	if _, err := s.PacketConn.WriteTo(out.Bytes(), addr); err != nil {
		s.log.Debug("send REGISTER response", "destination", addr.String(), "error", err)
	}
}

// isRegister reports whether a datagram starts a REGISTER request.
func isRegister(b []byte) bool {
	return len(b) > 9 && string(b[:9]) == "REGISTER "
}
