package stateless

import (
	"net"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchRead is how many datagrams one recvmmsg(2) may return.
const batchRead = 16

// maxDatagram is the room for each: the largest UDP payload, so that
// nothing is ever cut.
const maxDatagram = 65535

// mmsgReader reads a UDP socket's datagrams batchRead at a time with
// recvmmsg(2) and hands them out one by one (one recvfrom(2) per
// datagram was 5% of the CPU at 11,000 REGISTER flows/s). Under load the
// socket holds several datagrams when the reader comes back to it; idle,
// a read returns the one that arrived, at once. Not safe for concurrent
// use: its one user is the socket's reader (packetConn).
type mmsgReader struct {
	raw   syscall.RawConn
	laddr net.Addr
	bufs  [][]byte
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	// names has room for either family's address: the kernel writes a
	// sockaddr_in on an IPv4 socket, a sockaddr_in6 on an IPv6 one.
	names []unix.RawSockaddrInet6
	// ctrls hold each datagram's control message: its arrival time
	// (SO_TIMESTAMPNS), when the socket gives it.
	ctrls [][]byte
	// n datagrams were read by the last call; next is the next to hand
	// out.
	n, next int
	// The last scope decoded, and its interface's name: looking it up
	// asks the kernel for every interface.
	scope     uint32
	scopeName string
}

// newBatchReader returns a batch reader for pc, or nil when pc is not a
// UDP socket.
func newBatchReader(pc net.PacketConn) batchReader {
	raw := udpRaw(pc)
	if raw == nil {
		return nil
	}
	r := &mmsgReader{
		raw: raw, laddr: pc.LocalAddr(),
		bufs: make([][]byte, batchRead), hdrs: make([]unix.Mmsghdr, batchRead),
		iovs: make([]unix.Iovec, batchRead), names: make([]unix.RawSockaddrInet6, batchRead),
		ctrls: make([][]byte, batchRead),
	}
	// The kernel stamps each datagram with its arrival (CLOCK_REALTIME):
	// how long it waited in the socket's buffer is the front's queue
	// delay at admission (sojourn.go). Without it (an error here) that
	// delay is not known, and nothing else changes.
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	for i := range r.bufs {
		r.bufs[i] = make([]byte, maxDatagram)
		r.iovs[i] = unix.Iovec{Base: &r.bufs[i][0]}
		r.iovs[i].SetLen(maxDatagram)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
		r.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.ctrls[i] = make([]byte, ctrlLen)
		r.hdrs[i].Hdr.Control = &r.ctrls[i][0]
	}
	return r
}

// read returns the next datagram (valid until the next read) and its
// source, reading a batch when none is left. Its errors are those of the
// socket, as ReadFrom gives them (net.ErrClosed once it is closed).
func (r *mmsgReader) read() ([]byte, net.Addr, time.Time, error) {
	for {
		for r.next < r.n {
			i := r.next
			r.next++
			if addr := r.source(i); addr != nil {
				return r.bufs[i][:r.hdrs[i].Len], addr, r.arrival(i), nil
			}
			// An address of neither family: not a datagram from a peer.
		}
		if err := r.fill(); err != nil {
			return nil, nil, time.Time{}, &net.OpError{Op: "read", Net: "udp", Source: r.laddr, Err: err}
		}
	}
}

func (r *mmsgReader) drained() bool { return r.next >= r.n }
func (r *mmsgReader) full() bool    { return r.n == batchRead }

// ctrlLen is room for one control message holding a timespec.
var ctrlLen = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// arrival returns when datagram i reached the socket (its SO_TIMESTAMPNS
// control message), the zero time when it has none.
func (r *mmsgReader) arrival(i int) time.Time {
	const tsLen = int(unsafe.Sizeof(unix.Timespec{}))
	off := unix.CmsgLen(0)
	if int(r.hdrs[i].Hdr.Controllen) < off+tsLen {
		return time.Time{}
	}
	c := r.ctrls[i]
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	if cm.Level != unix.SOL_SOCKET || cm.Type != unix.SO_TIMESTAMPNS {
		return time.Time{}
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&c[off]))
	return time.Unix(ts.Unix())
}

// fill reads the next batch, waiting for at least one datagram.
func (r *mmsgReader) fill() error {
	r.n, r.next = 0, 0
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.SetControllen(ctrlLen)
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	var serr error
	err := r.raw.Read(func(fd uintptr) bool {
		for {
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
			switch e {
			case 0:
				r.n = int(n)
				return true
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait until a datagram arrives
			case unix.ECONNREFUSED:
				// An ICMP port unreachable for an earlier send: no
				// datagram, and no reason to stop reading.
			default:
				serr = e
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// source decodes the sender of datagram i as ReadFrom would: an IPv4
// sender on a dual-stack socket as its IPv4-mapped address (which prints
// as the IPv4 one), a scope as its interface's name.
func (r *mmsgReader) source(i int) net.Addr {
	sa := &r.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return &net.UDPAddr{IP: net.IP{sa4.Addr[0], sa4.Addr[1], sa4.Addr[2], sa4.Addr[3]}, Port: int(p[0])<<8 | int(p[1])}
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		a := &net.UDPAddr{IP: make(net.IP, net.IPv6len), Port: int(p[0])<<8 | int(p[1])}
		copy(a.IP, sa.Addr[:])
		if sa.Scope_id != 0 {
			if sa.Scope_id != r.scope {
				r.scope, r.scopeName = sa.Scope_id, strconv.Itoa(int(sa.Scope_id))
				if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
					r.scopeName = ifi.Name
				}
			}
			a.Zone = r.scopeName
		}
		return a
	}
	return nil
}
