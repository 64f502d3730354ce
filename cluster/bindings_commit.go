package cluster

import (
	"context"
	"fmt"
	"time"
)

// Group commit: a REGISTER through a cluster node is answered 200 only
// once its change of the bindings is in Redis, never before (a kill -9 of the node
// between the two would lose an acknowledged binding), and never when
// Redis did not take it.
//
// Every save gets the next sequence number (SaveBindings). The writer
// takes the oldest saves not yet written, writes them in one batch,
// and records that every save up to the batch's last one is stored
// (stored); a batch that fails records how far it reached (failed) and
// stays queued, to be retried as before. The registrar, once it has
// unlocked the location shard, waits (Stored) for the sequence number of
// its own save (Ticket, read right after it), at most cluster.timeout:
// the REGISTERs that wait at the same time share a batch, and while one
// waits the writer sends the next batch as soon as the previous returns,
// or commitLinger after it was sent (writeLoop, linger).

// Ticket returns the sequence number of the last save so far
// (registrar.Durable): read right after a save, a ticket for it.
func (b *Bindings) Ticket() uint64 { return b.seq.Load() }

// Stored returns nil once every save up to ticket is in Redis
// (registrar.Durable). It returns an error wrapping ErrUnavailable when a
// batch holding one of them failed, or when they were not written within
// the cluster's command timeout; the changes stay queued and the writer
// retries them, but a REGISTER waiting for them must not be answered 200.
func (b *Bindings) Stored(ctx context.Context, ticket uint64) error {
	b.mu.Lock()
	done := b.stored >= ticket
	b.mu.Unlock()
	if done {
		return nil
	}
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	select {
	case b.hurry <- struct{}{}:
	default:
	}
	timeout := time.NewTimer(b.c.cfg.Timeout)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		stored, failed, err, settled := b.stored, b.failed, b.failErr, b.settled
		b.mu.Unlock()
		switch {
		case stored >= ticket:
			return nil
		case failed >= ticket:
			b.notStored.Add(1)
			return err
		}
		select {
		case <-settled:
		case <-timeout.C:
			b.notStored.Add(1)
			return &unavailableError{op: "store bindings", err: fmt.Errorf("not written within %v", b.c.cfg.Timeout)}
		case <-ctx.Done():
			b.notStored.Add(1)
			return &unavailableError{op: "store bindings", err: ctx.Err()}
		}
	}
}

// NotStored returns how many waits (Stored) ended without their changes in
// Redis: REGISTERs answered 503.
func (b *Bindings) NotStored() uint64 { return b.notStored.Load() }

// settle records the outcome of a batch that took n queued saves, up to
// upto: written (err nil), they leave the queue, and the waiters for them
// are released; failed, they stay queued, and the waiters for them are
// told.
func (b *Bindings) settle(batch []batchSet, n int, upto uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if upto > b.failed {
			b.failed, b.failErr = upto, err
		}
	} else {
		for _, s := range batch {
			if p, ok := b.pending[s.aor]; ok && p.seq == s.seq {
				delete(b.pending, s.aor) // else saved again since: still queued
			}
		}
		b.head += n
		switch {
		case b.head == len(b.order):
			clear(b.order)
			b.order, b.head = b.order[:0], 0
		case b.head >= 4096 && b.head > len(b.order)/2:
			k := copy(b.order, b.order[b.head:])
			clear(b.order[k:])
			b.order, b.head = b.order[:k], 0
		}
		if upto > b.stored {
			b.stored = upto
		}
	}
	close(b.settled)
	b.settled = make(chan struct{})
}
