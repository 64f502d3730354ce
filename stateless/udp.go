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
	return &packetConn{PacketConn: pc, f: f, batch: newBatchReader(pc)}
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
}

// batchReader reads a socket several datagrams at a time: read returns
// the next one, valid until the next read, its source, and when it
// reached the socket (the zero time: not known).
type batchReader interface {
	read() ([]byte, net.Addr, time.Time, error)
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
		msg, addr, arrived, err := c.batch.read()
		if err != nil {
			return 0, nil, err
		}
		if !arrived.IsZero() {
			now := time.Now()
			c.f.observeQueue(&c.queue, now.Sub(arrived), now)
		}
		if !c.f.take(msg, job{addr: addr, pc: c.PacketConn, transport: "UDP"}) {
			return copy(b, msg), addr, nil
		}
	}
}
