package stateless

import (
	"bytes"
	"net"

	"github.com/emiago/sipgo/sip"
)

// Batching of datagram answers: a worker keeps the UDP answers of the
// jobs it takes in one round (the first job and up to maxBatchJobs-1 more
// found queued) and sends them with one sendmmsg(2) once the round is
// over, the batch is maxBatchBytes long, or the next answer leaves by
// another socket. One sendto(2) per answer was 19.6% of the CPU at 11,000
// REGISTER flows/s over UDP, 10.8% batched; on loopback an answer costs
// about 0.65x the time in batches of 4, 0.5x in batches of 16, of one
// sent alone (BenchmarkDatagrams). A lone REGISTER is still answered at
// once: its round ends with it.
type datagrams struct {
	pc    net.PacketConn // the socket of the answers held; nil: none
	buf   bytes.Buffer   // the answers, back to back
	ends  []int          // answer i is buf[ends[i-1]:ends[i]]
	addrs []net.Addr
	// senders holds a batch sender per socket seen (nil where the socket
	// cannot send batches: the answers go one by one), made at first use.
	senders map[net.PacketConn]batchSender
	msgs    [][]byte // flush's scratch
}

// batchSender sends several datagrams at once on one socket. send sends
// msgs[i] to addrs[i] and returns what it could not send, with the first
// error; it may leave out a message whose address it cannot encode, for
// the caller to send alone (reported in rest).
type batchSender interface {
	send(msgs [][]byte, addrs []net.Addr) (rest []int, err error)
}

// add appends the serialized res, for addr by pc, sending what was held
// for another socket first.
func (d *datagrams) add(f *Front, pc net.PacketConn, addr net.Addr, res *sip.Response) {
	if d.pc != pc {
		d.flush(f)
		d.pc = pc
	}
	res.StringWrite(&d.buf)
	d.ends = append(d.ends, d.buf.Len())
	d.addrs = append(d.addrs, addr)
	if d.buf.Len() >= maxBatchBytes || len(d.ends) >= maxBatchJobs {
		d.flush(f)
	}
}

// flush sends the answers held.
func (d *datagrams) flush(f *Front) {
	if len(d.ends) == 0 {
		d.pc = nil
		return
	}
	b := d.buf.Bytes()
	d.msgs = d.msgs[:0]
	start := 0
	for _, end := range d.ends {
		d.msgs = append(d.msgs, b[start:end:end])
		start = end
	}
	s, ok := d.senders[d.pc]
	if !ok {
		s = newBatchSender(d.pc)
		if d.senders == nil {
			d.senders = map[net.PacketConn]batchSender{}
		}
		d.senders[d.pc] = s
	}
	if s != nil && len(d.msgs) > 1 {
		rest, err := s.send(d.msgs, d.addrs)
		if err != nil {
			f.log.Debug("send responses", "transport", "UDP", "datagrams", len(d.msgs), "error", err)
		}
		for _, i := range rest {
			d.sendOne(f, i)
		}
	} else {
		for i := range d.msgs {
			d.sendOne(f, i)
		}
	}
	clear(d.msgs)
	clear(d.addrs)
	d.msgs, d.addrs, d.ends = d.msgs[:0], d.addrs[:0], d.ends[:0]
	d.buf.Reset()
	if d.buf.Cap() > 4*maxBatchBytes {
		d.buf = bytes.Buffer{}
	}
	d.pc = nil
}

// sendOne sends answer i by itself.
func (d *datagrams) sendOne(f *Front, i int) {
	if _, err := d.pc.WriteTo(d.msgs[i], d.addrs[i]); err != nil {
		f.log.Debug("send response", "transport", "UDP", "to", d.addrs[i], "error", err)
	}
}
