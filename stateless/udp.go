package stateless

import (
	"net"
	"sync"
	"time"
)

// PacketConn wraps the UDP socket sipgo serves: ReadFrom takes REGISTER
// datagrams out for the workers and returns every other one. On Linux it
// reads the socket several datagrams at a time (recvmmsg_linux.go).
func (f *Front) PacketConn(pc net.PacketConn) net.PacketConn {
	c := &packetConn{PacketConn: pc, f: f, batch: newBatchReader(pc)}
	if f.cfg.Inline && !f.cfg.StatefulUDP && c.batch != nil {
		c.crew = f.newCrew()
	}
	return c
}

type packetConn struct {
	net.PacketConn
	f *Front
	// batch reads the socket in batches; nil: one datagram per read. mu
	// keeps its buffers to one reader at a time (sipgo has one per
	// socket: never contended).
	mu    sync.Mutex
	batch batchReader
	queue sojourn // how long its datagrams wait in the kernel (under mu)
	crew  *crew   // answers REGISTERs on the reader (inline.go); nil: never
}

// batchReader reads a socket several datagrams at a time: read returns
// the next one, valid until the next read, its source, and when it
// reached the socket (the zero time: not known). drained reports whether
// every datagram of the last batch was handed out (the next read reads
// the socket, and may wait); full whether that batch was as large as a
// batch may be (the socket may hold more).
type batchReader interface {
	read() ([]byte, net.Addr, time.Time, error)
	drained() bool
	full() bool
}

// ReadFrom returns the next datagram the front did not take (Front.take:
// a REGISTER, a first INVITE to challenge, the ACK of that challenge; or
// one the workers have no room for: the stateful path takes it).
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.batch != nil {
		return c.readBatched(b)
	}
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.f.take(b[:n], job{addr: addr, pc: c.PacketConn, transport: "UDP"}) {
			return n, addr, err
		}
	}
}

// readBatched is ReadFrom through the batch reader: a datagram for sipgo
// is copied into b (cut to its length, as the kernel would).
func (c *packetConn) readBatched(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.crew != nil && c.batch.drained() {
			c.crew.flush(c.f) // the batch's answers, before the read waits
		}
		msg, addr, arrived, err := c.batch.read()
		if err != nil {
			return 0, nil, err
		}
		lag := time.Duration(-1) // not known
		if !arrived.IsZero() {
			now := time.Now()
			lag = now.Sub(arrived)
			c.f.observeQueue(&c.queue, lag, now)
		}
		j := job{addr: addr, pc: c.PacketConn, transport: "UDP"}
		if c.crew != nil && isRegister(msg) && len(msg) <= c.f.cfg.MaxMessageBytes && c.f.inlines(lag, c.batch) {
			c.f.inline(c.crew, msg, j)
			continue
		}
		if !c.f.take(msg, j) {
			if c.crew != nil {
				c.crew.flush(c.f) // before sipgo handles msg
			}
			return copy(b, msg), addr, nil
		}
	}
}
