package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
//
// Each wait is a commitWaiter on a list (Bindings.waiting): a batch's
// outcome wakes only the waiters whose saves it settled, and a waiter
// past the timeout is told so by the reaper (reapLoop), so that a wait
// costs neither a timer nor a wake-up per batch. Waking every waiter at
// every batch, as a closed channel did, woke under load the half whose
// saves were still on their way in the next batch, only to park again.

// commitWaiter is one REGISTER waiting in Stored: it receives exactly
// one outcome on done, from whoever takes it off the list (settle, the
// reaper, or its own cancelled wait).
type commitWaiter struct {
	ticket uint64
	since  time.Time
	done   chan error // buffered: the sender never blocks
}

// errStopped is the wait's error once Run has ended: nothing writes any
// more.
var errStopped = errors.New("bindings writer stopped")

var waiterPool = sync.Pool{New: func() any { return &commitWaiter{done: make(chan error, 1)} }}

// Ticket returns the sequence number of the last save so far
// (registrar.Durable): read right after a save, a ticket for it.
func (b *Bindings) Ticket() uint64 { return b.seq.Load() }

// Stored returns nil once every save up to ticket is in Redis
// (registrar.Durable). It returns an error wrapping ErrUnavailable when a
// batch holding one of them failed, or when they were not written within
// the cluster's command timeout; the changes stay queued and the writer
// retries them, but a REGISTER waiting for them must not be answered 200.
// Run must be running (it writes, and it runs the reaper).
func (b *Bindings) Stored(ctx context.Context, ticket uint64) error {
	b.mu.Lock()
	switch {
	case b.stored >= ticket:
		b.mu.Unlock()
		return nil
	case b.failed >= ticket || b.stopped:
		err := b.failErr
		if b.failed < ticket {
			err = &unavailableError{op: "store bindings", err: errStopped}
		}
		b.mu.Unlock()
		b.notStored.Add(1)
		return err
	}
	w := waiterPool.Get().(*commitWaiter)
	w.ticket, w.since = ticket, time.Now()
	b.waiting = append(b.waiting, w)
	b.mu.Unlock()
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	select {
	case b.hurry <- struct{}{}:
	default:
	}
	var err error
	select {
	case err = <-w.done:
	case <-ctx.Done():
		b.mu.Lock()
		mine := b.unlist(w)
		b.mu.Unlock()
		if mine {
			err = &unavailableError{op: "store bindings", err: ctx.Err()}
		} else {
			err = <-w.done // taken off the list meanwhile: its outcome is on its way
		}
	}
	waiterPool.Put(w)
	if err != nil {
		b.notStored.Add(1)
	}
	return err
}

// errDown is Writable's reason while Redis is known down.
var errDown = errors.New("redis is down: the last command failed, or the watch's last ping")

// Writable returns an error wrapping ErrUnavailable while Redis is known
// down (registrar.Durable): a removal an operator asks for now would be
// made on this node only, and Redis's copy, or another node's reseeding
// it after an empty restart, could bring the binding back.
func (b *Bindings) Writable() error {
	if b.c.Down() {
		return &unavailableError{op: "store bindings", err: errDown}
	}
	return nil
}

// unlist removes w from the waiting list; false when it was not there
// (someone else took it off, and sends its outcome). The caller holds mu.
func (b *Bindings) unlist(w *commitWaiter) bool {
	for i, x := range b.waiting {
		if x == w {
			last := len(b.waiting) - 1
			b.waiting[i] = b.waiting[last]
			b.waiting[last] = nil
			b.waiting = b.waiting[:last]
			return true
		}
	}
	return false
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
	b.release(func(w *commitWaiter) (error, bool) {
		switch {
		case b.stored >= w.ticket:
			return nil, true
		case b.failed >= w.ticket:
			return b.failErr, true
		}
		return nil, false
	})
}

// release sends their outcome to the waiters for which done says they
// have one, and takes them off the list. The caller holds mu.
func (b *Bindings) release(done func(*commitWaiter) (error, bool)) {
	keep := b.waiting[:0]
	for _, w := range b.waiting {
		if err, ok := done(w); ok {
			w.done <- err
		} else {
			keep = append(keep, w)
		}
	}
	clear(b.waiting[len(keep):])
	b.waiting = keep
}

// reapLoop tells the waiters that waited longer than the cluster's command
// timeout that their saves were not written in time, checking a tenth of
// the timeout apart (so a wait ends within 1.1 timeouts), until ctx ends;
// the waiters left then are told too.
func (b *Bindings) reapLoop(ctx context.Context) {
	timeout := b.c.cfg.Timeout
	tick := time.NewTicker(max(timeout/10, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			b.mu.Lock()
			b.stopped = true
			b.release(func(*commitWaiter) (error, bool) {
				return &unavailableError{op: "store bindings", err: errStopped}, true
			})
			b.mu.Unlock()
			return
		case now := <-tick.C:
			b.mu.Lock()
			b.release(func(w *commitWaiter) (error, bool) {
				if now.Sub(w.since) < timeout {
					return nil, false
				}
				return &unavailableError{op: "store bindings", err: fmt.Errorf("not written within %v", timeout)}, true
			})
			b.mu.Unlock()
		}
	}
}
