package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
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
// location shard locked: like the bbolt group commit of a single node, a
// crash loses at most the last batch (a few milliseconds).
//
// Which node holds a binding's connection is its LocalAddr: the listener
// address it was registered on, one of that node's.
type Bindings struct {
	c     *Cluster
	apply func(aor string, bs []store.Binding)
	// own starts every message this node publishes (the JSON of a
	// bindingBatch begins with its node): Run skips them undecoded.
	own string

	mu      sync.Mutex
	pending map[string][]store.Binding // AOR -> latest set; nil deletes
	wake    chan struct{}
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
		pending: map[string][]store.Binding{}, wake: make(chan struct{}, 1),
	}
}

// SaveBindings queues aor's complete set for Redis and the other nodes
// (registrar.BindingSaver); it never blocks.
func (b *Bindings) SaveBindings(aor string, bs []store.Binding) {
	b.mu.Lock()
	b.pending[aor] = bs
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
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
func (b *Bindings) Run(ctx context.Context) {
	sub := b.c.rdb.Subscribe(ctx, chanBindings)
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

// bindingLinger is the least time between two batches of the writer: a
// binding reaches Redis and the other nodes within about this plus a
// round trip.
const bindingLinger = 5 * time.Millisecond

// maxBindingBatch bounds the AORs of one pipeline (and of one published
// message).
const maxBindingBatch = 1000

// take removes from the queue and returns at most maxBindingBatch AORs'
// sets, and whether more are queued. A large queue (a node writing its
// whole table back after Redis came back empty) goes in bounded batches.
func (b *Bindings) take() (batch map[string][]store.Binding, more bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) <= maxBindingBatch {
		batch = b.pending
		b.pending = make(map[string][]store.Binding, len(batch))
		return batch, false
	}
	batch = make(map[string][]store.Binding, maxBindingBatch)
	for aor, bs := range b.pending {
		if len(batch) == maxBindingBatch {
			break
		}
		batch[aor] = bs
		delete(b.pending, aor)
	}
	return batch, true
}

// Flush writes every set queued so far, in batches, and returns when
// Redis has them all, or the first error (the sets not written stay
// queued for Run). For a node stopping, and for tools that write many
// bindings at once (bench/cmd/scale).
func (b *Bindings) Flush(ctx context.Context) error {
	for range maxFlushBatches {
		batch, more := b.take()
		if len(batch) > 0 {
			if err := b.write(ctx, batch); err != nil {
				b.requeue(batch)
				return err
			}
		}
		if !more {
			return nil
		}
	}
	return fmt.Errorf("cluster: flush bindings: more than %d batches queued", maxFlushBatches)
}

// maxFlushBatches bounds one Flush: ten million AORs.
const maxFlushBatches = 10_000

// requeue puts back a batch that was not written, unless a newer set of
// the same AOR was queued meanwhile.
func (b *Bindings) requeue(batch map[string][]store.Binding) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for aor, bs := range batch {
		if _, newer := b.pending[aor]; !newer {
			b.pending[aor] = bs
		}
	}
}

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
		// Under load, let the batch fill: at most one pipeline per
		// bindingLinger rather than one per save (a pipeline per REGISTER
		// was 19% of a node's CPU at 8,000 flows/s). A save after a quiet
		// spell is written at once.
		if wait := bindingLinger - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		batch, more := b.take()
		if more {
			select {
			case b.wake <- struct{}{}: // the rest next
			default:
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := b.write(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.c.log.Warn("bindings not shared yet; retrying", "aors", len(batch), "error", err)
			b.requeue(batch)
			retry.Reset(500 * time.Millisecond)
		}
	}
}

// write sends one batch in one pipeline: per AOR, SET with PXAT (or DEL),
// and one PUBLISH of the whole batch (bindingBatch, put together from the
// sets' JSON).
func (b *Bindings) write(ctx context.Context, batch map[string][]store.Binding) error {
	ctx, cancel := context.WithTimeout(ctx, 4*b.c.cfg.Timeout)
	defer cancel()
	var pub strings.Builder
	pub.WriteString(b.own)
	pub.WriteString(`"sets":[`)
	_, err := b.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		first := true
		for aor, bs := range batch {
			msg, err := json.Marshal(bindingSet{Node: b.c.cfg.Node, AOR: aor, Bindings: bs})
			if err != nil {
				return err
			}
			if !first {
				pub.WriteByte(',')
			}
			first = false
			pub.Write(msg)
			var last time.Time
			for _, x := range bs {
				if x.Expires.After(last) {
					last = x.Expires
				}
			}
			if len(bs) == 0 || !last.After(time.Now()) {
				p.Del(ctx, keyBind+aor)
			} else {
				p.Do(ctx, "SET", keyBind+aor, msg, "PXAT", last.UnixMilli())
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
