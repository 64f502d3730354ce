//go:build !linux

package stateless

import "net"

// newBatchSender: batches are sent with sendmmsg(2), which only Linux has;
// elsewhere answers go one by one.
func newBatchSender(net.PacketConn) batchSender { return nil }

// newBatchReader: batches are read with recvmmsg(2), which only Linux
// has; elsewhere datagrams are read one by one.
func newBatchReader(net.PacketConn) batchReader { return nil }
