package stateless

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// socketKinds are the two kinds of UDP socket sipwarden listens on: an
// IPv4 one (a 127.0.0.1 or other IPv4 listen address) and a dual-stack
// one (0.0.0.0 or ::).
var socketKinds = []struct {
	name   string
	listen func(*testing.T) net.PacketConn
}{
	{"IPv4 socket", func(t *testing.T) net.PacketConn { return listen(t, "udp4", "127.0.0.1:0") }},
	{"dual-stack socket", listenDualStack},
}

// listenDualStack returns a dual-stack UDP socket (AF_INET6, IPV6_V6ONLY
// off: what listening on 0.0.0.0 with network "udp" makes) bound to
// ::ffff:127.0.0.1 on a free port: it takes IPv4 datagrams as IPv4-mapped
// addresses, and only on loopback (a test binds no other address).
func listenDualStack(t *testing.T) net.PacketConn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		unix.Close(fd)
		t.Fatalf("IPV6_V6ONLY: %v", err)
	}
	sa := &unix.SockaddrInet6{}
	copy(sa.Addr[:], net.IPv4(127, 0, 0, 1).To16())
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		t.Fatalf("bind ::ffff:127.0.0.1: %v", err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack")
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		t.Fatalf("FilePacketConn: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	if s, ok := newBatchSender(pc).(*mmsgSender); !ok || !s.v6 {
		t.Fatalf("the batch sender does not see %s as an IPv6 socket", pc.LocalAddr())
	}
	return pc
}
