//go:build !linux

package stateless

import "net"

// newBatchSender: batches are sent with sendmmsg(2), which only Linux has;
// elsewhere answers go one by one.
func newBatchSender(net.PacketConn) batchSender { return nil }
