package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Nonce counts checked concurrently share round trips: the checks queued
// while a batch is on its way to Redis go together in the next pipeline
// (one write and one read for all of them) instead of one round trip, and
// two system calls on each side, per REGISTER. There is no goroutine of
// its own: the caller that finds fewer than maxCountBatches batches in
// flight sends the queue itself, and a caller finishing a batch hands
// what queued meanwhile to one of the waiting callers. A lone check is
// sent at once, as before.
//
// Under load from the bench (sipp, 2 cores) a REGISTER's count check was
// one EVALSHA round trip on a worker that could do nothing else meanwhile
// (the node has GOMAXPROCS REGISTER workers): the round trips, not the
// CPU, bounded the node's rate.

// maxCountBatches bounds the batches in flight (each on its own
// connection): with more, more checks go alone, at a round trip each.
const maxCountBatches = 2

// countBatcher sends nonce count checks to Redis in pipelines.
type countBatcher struct {
	c *Cluster

	mu       sync.Mutex
	queue    []*countCheck
	inflight int
}

// countCheck is one check: its arguments, then its outcome.
type countCheck struct {
	nonce, nc, epoch string
	expiresMS        int64

	res int64
	err error

	// Guarded by countBatcher.mu: done once res and err are set; lead
	// is a batch this check's caller must send.
	done bool
	lead []*countCheck
	wake chan struct{} // a token after each change of done or lead
}

func (w *countCheck) notify() {
	select {
	case w.wake <- struct{}{}:
	default: // a token is pending: the waiter reads the state anyway
	}
}

// check runs acceptScript for ch, batched with the checks of other
// callers, and returns its result.
func (b *countBatcher) check(ch *countCheck) (int64, error) {
	ch.wake = make(chan struct{}, 1)
	b.mu.Lock()
	b.queue = append(b.queue, ch)
	if b.inflight < maxCountBatches {
		b.inflight++
		batch := b.queue
		b.queue = nil
		b.mu.Unlock()
		b.send(batch)
	} else {
		b.mu.Unlock()
	}
	// Bounded: a batch ends within its timeout, and the caller that ends
	// one hands the queue on before it returns.
	for {
		<-ch.wake
		b.mu.Lock()
		batch, done := ch.lead, ch.done
		ch.lead = nil
		b.mu.Unlock()
		if batch != nil {
			b.send(batch)
			continue // ch was in it: done now
		}
		if done {
			return ch.res, ch.err
		}
	}
}

// send runs one batch in one pipeline, then wakes its callers and hands
// what queued meanwhile to one of them.
func (b *countBatcher) send(batch []*countCheck) {
	b.run(batch)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range batch {
		ch.done = true
		ch.notify()
	}
	if len(b.queue) == 0 {
		b.inflight--
		return
	}
	next := b.queue
	b.queue = nil
	next[0].lead = next
	next[0].notify()
}

// run sends the batch in one pipeline. A first count (nc 1, nearly every
// REGISTER: the answer to a fresh challenge) needs no script: 1 is the
// lowest count, so it is accepted when SET NX creates the key, provided
// the epoch, read once for the whole batch ahead of the SETs, is the
// nonce's (a SET for a nonce of a lost epoch only leaves a key expiring
// with that stale nonce). In redis-server that is a third of the
// script's CPU. Other counts run acceptScript (EVALSHA); when Redis lost
// the script (restarted), it is loaded again and the batch sent once
// more.
func (b *countBatcher) run(batch []*countCheck) {
	ctx, cancel := b.c.timeout(context.Background())
	defer cancel()
	for attempt := 0; ; attempt++ {
		var epoch *redis.StringCmd
		cmds := make([]*redis.Cmd, len(batch))
		_, err := b.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, ch := range batch {
				if ch.nc == "1" {
					if epoch == nil {
						epoch = p.Get(ctx, keySecret+SecretNonceEpoch)
					}
					cmds[i] = p.Do(ctx, "SET", keyNC+ch.nonce, "1", "NX", "PXAT", ch.expiresMS)
					continue
				}
				cmds[i] = acceptScript.EvalSha(ctx, p, []string{keyNC + ch.nonce, keySecret + SecretNonceEpoch}, ch.nc, ch.expiresMS, ch.epoch)
			}
			return nil
		})
		if err != nil && attempt == 0 && isNoScript(err) {
			if lerr := acceptScript.Load(ctx, b.c.rdb).Err(); lerr == nil {
				continue
			}
		}
		for i, ch := range batch {
			if ch.nc == "1" {
				ch.res, ch.err = firstCount(epoch, cmds[i], ch.epoch)
				continue
			}
			ch.res, ch.err = cmds[i].Int64()
		}
		return
	}
}

// firstCount is acceptScript's result for a first count: -1 when the
// epoch in Redis is not the nonce's (or gone), 1 when SET NX created the
// count, 0 when a count was there (a replay).
func firstCount(epoch *redis.StringCmd, set *redis.Cmd, nonceEpoch string) (int64, error) {
	e, err := epoch.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return -1, nil
	case err != nil:
		return 0, err
	case e != nonceEpoch:
		return -1, nil
	}
	switch err := set.Err(); {
	case errors.Is(err, redis.Nil):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return 1, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
