package stateless

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgSender sends a batch of datagrams on a UDP socket with one
// sendmmsg(2). Go's net package has no batch send, and
// golang.org/x/net/ipv4's WriteBatch encodes an IPv4 destination as
// AF_INET even on a dual-stack AF_INET6 socket (which is what listening on
// 0.0.0.0 makes), where the kernel refuses it: so the addresses are
// encoded here, as the socket's family wants them.
type mmsgSender struct {
	raw syscall.RawConn
	v6  bool
	// Scratch for one call, kept between calls; the headers point into
	// iovs and names, and the iovecs into the messages.
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names4 []unix.RawSockaddrInet4 // an IPv4 socket's
	names6 []unix.RawSockaddrInet6 // a dual-stack or IPv6 socket's
	idx    []int                   // the message each header sends
	rest   []int
}

// newBatchSender returns a batch sender for pc, or nil when pc is not a
// UDP socket whose family can be read.
func newBatchSender(pc net.PacketConn) batchSender {
	raw := udpRaw(pc)
	if raw == nil {
		return nil
	}
	var sa unix.Sockaddr
	var serr error
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil || serr != nil {
		return nil
	}
	switch sa.(type) {
	case *unix.SockaddrInet4:
		return &mmsgSender{raw: raw}
	case *unix.SockaddrInet6:
		return &mmsgSender{raw: raw, v6: true}
	}
	return nil
}

// udpRaw returns pc's raw socket when pc is a UDP socket, else nil.
func udpRaw(pc net.PacketConn) syscall.RawConn {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// send sends msgs[i] to addrs[i]. A message to an address this socket
// cannot take in a batch (not a *net.UDPAddr, an IPv6 address on an IPv4
// socket, a scoped IPv6 address) is left in rest, as is one the kernel
// refused (err says why; the others are still sent).
func (s *mmsgSender) send(msgs [][]byte, addrs []net.Addr) (rest []int, err error) {
	n := len(msgs)
	s.rest, s.idx = s.rest[:0], s.idx[:0]
	if cap(s.hdrs) < n {
		s.hdrs = make([]unix.Mmsghdr, n)
		s.iovs = make([]unix.Iovec, n)
		if s.v6 {
			s.names6 = make([]unix.RawSockaddrInet6, n)
		} else {
			s.names4 = make([]unix.RawSockaddrInet4, n)
		}
	}
	hdrs := s.hdrs[:0]
	for i, m := range msgs {
		k := len(hdrs)
		var name *byte
		var namelen uint32
		if a, ok := addrs[i].(*net.UDPAddr); ok && len(m) > 0 && s.encode(k, a) {
			if s.v6 {
				name, namelen = (*byte)(unsafe.Pointer(&s.names6[k])), unix.SizeofSockaddrInet6
			} else {
				name, namelen = (*byte)(unsafe.Pointer(&s.names4[k])), unix.SizeofSockaddrInet4
			}
		} else {
			s.rest = append(s.rest, i)
			continue
		}
		s.iovs[k] = unix.Iovec{Base: &m[0]}
		s.iovs[k].SetLen(len(m))
		hdrs = append(hdrs, unix.Mmsghdr{Hdr: unix.Msghdr{Name: name, Namelen: namelen, Iov: &s.iovs[k]}})
		hdrs[k].Hdr.SetIovlen(1)
		s.idx = append(s.idx, i)
	}
	sent := 0
	var errs []error
	werr := s.raw.Write(func(fd uintptr) bool {
		// Each pass sends at least one header or returns: a refused one
		// (its error is reported by the call after the ones before it
		// were sent) is skipped.
		for sent < len(hdrs) {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[sent])), uintptr(len(hdrs)-sent), 0, 0, 0)
			switch e {
			case 0:
				sent += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait until the socket can take more
			default:
				errs = append(errs, e)
				s.rest = append(s.rest, s.idx[sent])
				sent++
			}
		}
		return true
	})
	for i := range hdrs {
		hdrs[i] = unix.Mmsghdr{}
		s.iovs[i] = unix.Iovec{}
	}
	if werr != nil {
		// The socket is closed: nothing more was sent.
		s.rest = append(s.rest, s.idx[sent:]...)
		errs = append(errs, werr)
	}
	return s.rest, errors.Join(errs...)
}

// encode writes a's socket address in the socket's family into names4[k]
// or names6[k]; false when the socket cannot send to it in a batch.
func (s *mmsgSender) encode(k int, a *net.UDPAddr) bool {
	if a.Port <= 0 || a.Port > 65535 {
		return false
	}
	port := [2]byte{byte(a.Port >> 8), byte(a.Port)} // network byte order
	ip4 := a.IP.To4()
	if !s.v6 {
		if ip4 == nil {
			return false
		}
		sa := &s.names4[k]
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET}
		*(*[2]byte)(unsafe.Pointer(&sa.Port)) = port
		copy(sa.Addr[:], ip4)
		return true
	}
	ip6 := a.IP.To16()
	if ip6 == nil || a.Zone != "" {
		return false
	}
	sa := &s.names6[k]
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6}
	*(*[2]byte)(unsafe.Pointer(&sa.Port)) = port
	copy(sa.Addr[:], ip6) // an IPv4 address as ::ffff:a.b.c.d, as the dual-stack socket wants it
	return true
}
