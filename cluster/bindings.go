package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sipwarden/sipwarden/store"
)

// Bindings shares the location table: every node keeps the whole table in
// memory (lookups stay in memory) and writes each AOR's complete binding
// set, as its registrar saves it, to Redis (one key per AOR, expiring with
// its last binding: Redis 7.0 has no per-field expiry) and to the other
// nodes (chanBindings), which replace the AOR's set in their tables. An
// empty set (an unregister, a closed TCP/WebSocket flow, a deleted
// credential) deletes the key and the other nodes' copies: deletions are
// replicated like everything else.
//
// Saves are queued and written in pipelined batches (coalesced per AOR) by
// one goroutine, so that the registrar never waits on Redis with a
// location shard locked. A REGISTER is nevertheless answered only once its
// set is in Redis (group commit, bindings_commit.go): the registrar waits
// for it (registrar.Durable) after the shard is unlocked, and answers 503
// when Redis did not take it in time. Other saves (the sweeper's expiries,
// a closed flow, a deleted credential) are not waited for.
//
// Which node holds a binding's connection is its LocalAddr: the listener
// address it was registered on, one of that node's.
type Bindings struct {
	c     *Cluster
	apply func(aor string, bs []store.Binding)
	// sub is the subscription Subscribe made, for Run.
	sub *redis.PubSub
	// own starts every message this node publishes (the JSON of a
	// bindingBatch begins with its node): Run skips them undecoded.
	own string

	// Guarded by mu: the saves not yet written, in the order they were
	// made (order[head:]), and each AOR's latest set.
	mu      sync.Mutex
	pending map[string]pendingSet
	order   []queuedSave
	head    int
	// seq numbers the saves: the last one's, changed under mu.
	seq  atomic.Uint64
	wake chan struct{}

	// wmu lets one batch at a time be taken and written (writeLoop,
	// Flush): what an earlier batch took is written, or still queued,
	// when the next is taken.
	wmu sync.Mutex
	// Guarded by mu (bindings_commit.go): every save up to stored is in
	// Redis; the saves up to failed were queued when a batch failed
	// (failErr); settled is closed, and replaced, when either moves.
	stored  uint64
	failed  uint64
	failErr error
	settled chan struct{}
	// waiters counts the REGISTERs waiting in Stored; hurry tells the
	// writer that one began to wait (bindings_commit.go).
	waiters atomic.Int64
	hurry   chan struct{}
	// notStored counts the waits that ended without their set stored.
	notStored atomic.Uint64
}

// pendingSet is an AOR's latest set not yet written, and the save that
// queued it.
type pendingSet struct {
	bs  []store.Binding // nil deletes
	seq uint64
}

// queuedSave is one save, in order: aor's set as of save seq (or a later
// one).
type queuedSave struct {
	aor string
	seq uint64
}

type bindingSet struct {
	Node     string          `json:"node"`
	AOR      string          `json:"aor"`
	Bindings []store.Binding `json:"bindings,omitempty"`
}

// bindingBatch is what a node publishes for one batch: one message for
// all its AORs (one PUBLISH, and one message for every node to receive,
// its own included, instead of one per AOR).
type bindingBatch struct {
	Node string       `json:"node"`
	Sets []bindingSet `json:"sets"`
}

// Bindings returns the shared location table; apply replaces an AOR's set
// in the node's table with what another node saved. Call Run.
func (c *Cluster) Bindings(apply func(aor string, bs []store.Binding)) *Bindings {
	node, _ := json.Marshal(c.cfg.Node) // a string: cannot fail
	return &Bindings{
		c: c, apply: apply, own: `{"node":` + string(node) + `,`,
		pending: map[string]pendingSet{}, wake: make(chan struct{}, 1),
		settled: make(chan struct{}), hurry: make(chan struct{}, 1),
	}
}

// SaveBindings queues aor's complete set for Redis and the other nodes
// (registrar.BindingSaver); it never blocks. Stored waits until it is
// written.
func (b *Bindings) SaveBindings(aor string, bs []store.Binding) {
	b.mu.Lock()
	seq := b.seq.Add(1)
	b.pending[aor] = pendingSet{bs: bs, seq: seq}
	b.order = append(b.order, queuedSave{aor: aor, seq: seq})
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Subscribe subscribes to the other nodes' binding sets and returns once
// Redis confirmed it: a node starting calls it before Load, so that a set
// another node saves after Load read it, or while Load runs, is not
// missed (it is applied by Run, after the loaded ones). Without it Run
// subscribes itself, and what is published before it has subscribed is
// missed until the device registers again.
func (b *Bindings) Subscribe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(b.c.cfg.Timeout, time.Second))
	defer cancel()
	sub := b.c.rdb.Subscribe(ctx, chanBindings)
	if _, err := sub.Receive(ctx); err != nil { // the confirmation
		sub.Close()
		return b.c.unavailable("subscribe to bindings", err)
	}
	b.sub = sub
	return nil
}

// Load returns every live binding Redis holds, for a node starting. It
// fetches the keys (SCAN, then MGET per 1,000) while GOMAXPROCS
// goroutines decode what was fetched: at a million bindings decoding the
// JSON is most of the work (docs/bench.md, cluster).
func (b *Bindings) Load(ctx context.Context) ([]store.Binding, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	fetched := make(chan []any, workers)
	decoded := make(chan []store.Binding, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for vals := range fetched {
				decoded <- decodeSets(vals)
			}
		}()
	}
	var parts [][]store.Binding
	total := 0
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for p := range decoded {
			parts = append(parts, p)
			total += len(p)
		}
	}()
	err := b.fetch(ctx, fetched)
	close(fetched)
	wg.Wait()
	close(decoded)
	<-collected
	if err != nil {
		return nil, b.c.unavailable("load bindings", err)
	}
	out := make([]store.Binding, 0, total)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// fetch sends the values of every binding key, 1,000 keys at a time, to
// vals.
func (b *Bindings) fetch(ctx context.Context, vals chan<- []any) error {
	iter := b.c.rdb.Scan(ctx, 0, keyBind+"*", 1000).Iterator()
	var keys []string
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		v, err := b.c.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		keys = keys[:0]
		select {
		case vals <- v:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}

// decodeSets decodes MGET's values (bindingSet JSON; nil for a key gone
// meanwhile) into their bindings, skipping what does not decode.
func decodeSets(vals []any) []store.Binding {
	var out []store.Binding
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		var set bindingSet
		if json.Unmarshal([]byte(s), &set) == nil {
			out = append(out, set.Bindings...)
		}
	}
	return out
}

// Run writes the queued sets and applies the other nodes' until ctx ends.
// It uses the subscription Subscribe made, else subscribes now.
func (b *Bindings) Run(ctx context.Context) {
	sub := b.sub
	if sub == nil {
		sub = b.c.rdb.Subscribe(ctx, chanBindings)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.writeLoop(ctx)
	}()
	defer wg.Wait()
	msgs := sub.Channel(redis.WithChannelSize(4096))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if strings.HasPrefix(m.Payload, b.own) {
				continue // this node's own, received back: decoding it was 12% of a node's CPU under REGISTER load
			}
			var batch bindingBatch
			if err := json.Unmarshal([]byte(m.Payload), &batch); err != nil || batch.Node == b.c.cfg.Node {
				continue
			}
			for _, set := range batch.Sets {
				if set.AOR != "" {
					b.apply(set.AOR, set.Bindings)
				}
			}
		}
	}
}

// bindingLinger is the least time between two batches of the writer while
// no REGISTER waits for one: a save nobody waits for (an expiry, a closed
// flow) reaches Redis and the other nodes within about this plus a round
// trip.
const bindingLinger = 5 * time.Millisecond

// maxBindingBatch bounds the AORs of one pipeline (and of one published
// message).
const maxBindingBatch = 1000

// batchSet is one AOR's set in a batch, as of save seq.
type batchSet struct {
	aor string
	bs  []store.Binding
	seq uint64
}

// take returns the sets of the oldest saves not yet written: each AOR's
// latest set, at most maxBindingBatch AORs. n is how many queued saves
// the batch covers, and upto the sequence number up to which every save
// is in Redis once the batch is written (the saves before were written by
// earlier batches, with their own set or a later one). more reports
// saves left beyond the batch: a large queue (a node writing its whole
// table back after Redis came back empty) goes in bounded batches. The
// caller holds wmu.
func (b *Bindings) take() (batch []batchSet, n int, upto uint64, more bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.order[b.head:]
	var in map[string]bool
	for n < len(q) {
		e := q[n]
		p, queued := b.pending[e.aor]
		if queued && !in[e.aor] {
			// The AOR's latest set, which covers this save and every later
			// one of the AOR queued so far.
			if len(batch) == maxBindingBatch {
				break
			}
			if in == nil {
				in = make(map[string]bool, min(len(q), maxBindingBatch))
			}
			in[e.aor] = true
			batch = append(batch, batchSet{aor: e.aor, bs: p.bs, seq: p.seq})
		}
		// Else a later set of the AOR is in this batch, or was written by
		// an earlier one (pending is cleared only once written).
		n++
	}
	if n == len(q) {
		return batch, n, b.seq.Load(), false
	}
	return batch, n, q[n].seq - 1, true
}

// writeNext takes the next batch and writes it; it reports whether saves
// are left beyond it, and the write's error (its sets stay queued).
func (b *Bindings) writeNext(ctx context.Context) (more bool, err error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	batch, n, upto, more := b.take()
	if len(batch) > 0 {
		err = b.write(ctx, batch)
	}
	b.settle(batch, n, upto, err)
	return more, err
}

// Flush writes every set queued so far, in batches, and returns when
// Redis has them all, or the first error (the sets not written stay
// queued for Run). For a node stopping, and for tools that write many
// bindings at once (bench/cmd/scale).
func (b *Bindings) Flush(ctx context.Context) error {
	for range maxFlushBatches {
		more, err := b.writeNext(ctx)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return fmt.Errorf("cluster: flush bindings: more than %d batches queued", maxFlushBatches)
}

// maxFlushBatches bounds one Flush: ten million AORs.
const maxFlushBatches = 10_000

func (b *Bindings) writeLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	var last time.Time // of the last batch taken
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-retry.C:
		}
		if !b.linger(ctx, last) {
			return
		}
		last = time.Now()
		more, err := b.writeNext(ctx)
		if more {
			select {
			case b.wake <- struct{}{}: // the rest next
			default:
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.c.log.Warn("bindings not shared yet; retrying", "error", err)
			retry.Reset(500 * time.Millisecond)
		}
	}
}

// linger lets the next batch fill while no REGISTER waits for one: at
// most one pipeline per bindingLinger rather than one per save (a
// pipeline per REGISTER was 19% of a node's CPU at 8,000 flows/s). A save
// after a quiet spell is written at once, and so is the next batch when a
// REGISTER waits (group commit: the saves made while a pipeline is on its
// way go in the next, sent as soon as it returns). It returns false when
// ctx ended.
func (b *Bindings) linger(ctx context.Context, last time.Time) bool {
	wait := bindingLinger - time.Since(last)
	if wait <= 0 {
		return true
	}
	select {
	case <-b.hurry: // from a REGISTER that waited earlier
	default:
	}
	if b.waiters.Load() > 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-b.hurry: // a REGISTER began to wait
	}
	return true
}

// write sends one batch in one pipeline: per AOR, SET with PXAT (or DEL),
// and one PUBLISH of the whole batch (bindingBatch, put together from the
// sets' JSON).
func (b *Bindings) write(ctx context.Context, batch []batchSet) error {
	ctx, cancel := context.WithTimeout(ctx, 4*b.c.cfg.Timeout)
	defer cancel()
	var pub strings.Builder
	pub.WriteString(b.own)
	pub.WriteString(`"sets":[`)
	_, err := b.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range batch {
			msg, err := json.Marshal(bindingSet{Node: b.c.cfg.Node, AOR: s.aor, Bindings: s.bs})
			if err != nil {
				return err
			}
			if i > 0 {
				pub.WriteByte(',')
			}
			pub.Write(msg)
			var last time.Time
			for _, x := range s.bs {
				if x.Expires.After(last) {
					last = x.Expires
				}
			}
			if len(s.bs) == 0 || !last.After(time.Now()) {
				p.Del(ctx, keyBind+s.aor)
			} else {
				p.Do(ctx, "SET", keyBind+s.aor, msg, "PXAT", last.UnixMilli())
			}
		}
		pub.WriteString("]}")
		p.Publish(ctx, chanBindings, pub.String())
		return nil
	})
	if err != nil {
		return b.c.unavailable("write bindings", err)
	}
	return nil
}
