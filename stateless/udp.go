package stateless

import "net"

// PacketConn wraps the UDP socket sipgo serves: ReadFrom takes REGISTER
// datagrams out for the workers and returns every other one.
func (f *Front) PacketConn(pc net.PacketConn) net.PacketConn {
	return &packetConn{PacketConn: pc, f: f}
}

type packetConn struct {
	net.PacketConn
	f *Front
}

// ReadFrom returns the next datagram the front did not take (Front.take:
// a REGISTER, a first INVITE to challenge, the ACK of that challenge; or
// one the workers have no room for: the stateful path takes it).
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.f.take(b[:n], job{addr: addr, pc: c.PacketConn, transport: "UDP"}) {
			return n, addr, err
		}
	}
}
