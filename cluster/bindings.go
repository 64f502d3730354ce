package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sipwarden/sipwarden/store"
)

// Bindings shares the location table: every node keeps the whole table in
// memory (lookups stay in memory) and writes what each save changed to
// Redis and to the other nodes (chanBindings), which merge it into their
// tables. Redis holds one hash per AOR, a field per binding (its ID ->
// its JSON), expiring with its latest binding (Redis 7.0 has no per-field
// expiry: a binding that expired without a removal is dropped when read,
// and by every node's sweeper, whose removal is written like any other).
// A change names the bindings it added or refreshed and the IDs of those
// it removed, never a whole set: two devices of one AOR registering
// through two nodes at the same moment both stay, where writing sets let
// the second node's set, which did not hold the first node's binding yet,
// replace it (and the nodes disagree until the next registration).
// Removals (an unregister, a closed TCP/WebSocket flow, a deleted
// credential, an expiry) are replicated like everything else.
//
// Saves are queued and written in batches (coalesced per AOR; one Lua
// script per batch stores them and publishes them, so that every node
// receives the changes in the order Redis applied them) by one goroutine,
// so that the registrar never waits on Redis with a location shard
// locked. A REGISTER is nevertheless answered only once its change is in
// Redis (group commit, bindings_commit.go): the registrar waits for it
// (registrar.Durable) after the shard is unlocked, and answers 503 when
// Redis did not take it in time. Other saves (the sweeper's expiries, a
// closed flow, a deleted credential) are not waited for.
//
// Which node holds a binding's connection is its LocalAddr: the listener
// address it was registered on, one of that node's.
type Bindings struct {
	c     *Cluster
	apply func(aor string, up []store.Binding, del []string)
	// sub is the subscription Subscribe made, for Run.
	sub *redis.PubSub
	// own starts every message this node publishes (the JSON of a
	// bindingBatch begins with its node): Run skips them undecoded.
	own string

	// Guarded by mu: the saves not yet written, in the order they were
	// made (order[head:]), and each AOR's changes since it was last
	// written.
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
	// (failErr); waiting are the REGISTERs waiting for theirs, and
	// stopped tells a new one that nothing will write or reap any more.
	stored  uint64
	failed  uint64
	failErr error
	waiting []*commitWaiter
	stopped bool
	// waiters counts the REGISTERs waiting in Stored; hurry tells the
	// writer that one began to wait (bindings_commit.go).
	waiters atomic.Int64
	hurry   chan struct{}
	// notStored counts the waits that ended without their change stored.
	notStored atomic.Uint64
}

// change is what saves did to an AOR: the bindings they added or
// refreshed, and the IDs of those they removed (no ID in both). Its
// slices are never modified once made: a batch on its way to Redis holds
// them while later saves make new ones (then).
type change struct {
	up  []store.Binding
	del []string
}

// diff returns the change from prev to next.
func diff(prev, next []store.Binding) change {
	var ch change
	for _, n := range next {
		i := slices.IndexFunc(prev, func(p store.Binding) bool { return p.ID == n.ID })
		if i < 0 || prev[i] != n {
			ch.up = append(ch.up, n)
		}
	}
	for _, p := range prev {
		if !slices.ContainsFunc(next, func(n store.Binding) bool { return n.ID == p.ID }) {
			ch.del = append(ch.del, p.ID)
		}
	}
	return ch
}

// then returns ch followed by the later change l: l's upserts and
// removals replace ch's of the same IDs.
func (ch change) then(l change) change {
	in := func(id string) bool {
		return slices.Contains(l.del, id) || slices.ContainsFunc(l.up, func(b store.Binding) bool { return b.ID == id })
	}
	var out change
	for _, b := range ch.up {
		if !in(b.ID) {
			out.up = append(out.up, b)
		}
	}
	out.up = append(out.up, l.up...)
	for _, id := range ch.del {
		if !in(id) {
			out.del = append(out.del, id)
		}
	}
	out.del = append(out.del, l.del...)
	return out
}

// pendingSet is an AOR's changes not yet written, and the last save that
// made one.
type pendingSet struct {
	ch  change
	seq uint64
}

// queuedSave is one save, in order: aor's changes as of save seq (or a
// later one).
type queuedSave struct {
	aor string
	seq uint64
}

// bindingChange is one AOR's change as published.
type bindingChange struct {
	AOR string          `json:"aor"`
	Up  []store.Binding `json:"up,omitempty"`
	Del []string        `json:"del,omitempty"`
}

// bindingBatch is what a node publishes for one batch: one message for
// all its AORs (one PUBLISH, and one message for every node to receive,
// its own included, instead of one per AOR).
type bindingBatch struct {
	Node string          `json:"node"`
	Sets []bindingChange `json:"sets"`
}

// Bindings returns the shared location table; apply merges a change
// another node made to an AOR's bindings into the node's table. Call Run.
func (c *Cluster) Bindings(apply func(aor string, up []store.Binding, del []string)) *Bindings {
	node, _ := json.Marshal(c.cfg.Node) // a string: cannot fail
	return &Bindings{
		c: c, apply: apply, own: `{"node":` + string(node) + `,`,
		pending: map[string]pendingSet{}, wake: make(chan struct{}, 1),
		hurry: make(chan struct{}, 1),
	}
}

// SaveBindings queues what changed from prev to next in aor's bindings
// for Redis and the other nodes (registrar.BindingSaver); it never
// blocks. Stored waits until it is written.
func (b *Bindings) SaveBindings(aor string, prev, next []store.Binding) {
	ch := diff(prev, next)
	b.mu.Lock()
	seq := b.seq.Add(1)
	if p, ok := b.pending[aor]; ok {
		ch = p.ch.then(ch)
	}
	b.pending[aor] = pendingSet{ch: ch, seq: seq}
	b.order = append(b.order, queuedSave{aor: aor, seq: seq})
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Subscribe subscribes to the other nodes' binding changes and returns once
// Redis confirmed it: a node starting calls it before Load, so that a change
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

// Load returns every binding Redis holds, for a node starting (the
// caller drops the expired ones). It fetches the AORs' hashes (SCAN, then
// a pipeline of HVALS per 1,000) while GOMAXPROCS goroutines decode what
// was fetched: at a million bindings decoding the JSON is most of the
// work (docs/bench.md, cluster).
func (b *Bindings) Load(ctx context.Context) ([]store.Binding, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	fetched := make(chan [][]string, workers)
	decoded := make(chan []store.Binding, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for vals := range fetched {
				decoded <- decodeBindings(vals)
			}
		})
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

// fetch sends the bindings of every AOR, 1,000 AORs at a time, to vals:
// per AOR, its bindings' JSON.
func (b *Bindings) fetch(ctx context.Context, vals chan<- [][]string) error {
	iter := b.c.rdb.Scan(ctx, 0, keyBinds+"*", 1000).Iterator()
	var keys []string
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		cmds := make([]*redis.StringSliceCmd, len(keys))
		_, err := b.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.HVals(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		v := make([][]string, len(cmds))
		for i, c := range cmds {
			v[i] = c.Val()
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

// decodeBindings decodes HVALS's values (store.Binding JSON), skipping
// what does not decode.
func decodeBindings(vals [][]string) []store.Binding {
	var out []store.Binding
	for _, aor := range vals {
		for _, s := range aor {
			var x store.Binding
			if json.Unmarshal([]byte(s), &x) == nil && x.ID != "" && x.AOR != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

// Run writes the queued changes and applies the other nodes' until ctx
// ends.
// It uses the subscription Subscribe made, else subscribes now.
func (b *Bindings) Run(ctx context.Context) {
	sub := b.sub
	if sub == nil {
		sub = b.c.rdb.Subscribe(ctx, chanBindings)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	wg.Go(func() { b.writeLoop(ctx) })
	wg.Go(func() { b.reapLoop(ctx) })
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
					b.apply(set.AOR, set.Up, set.Del)
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

// maxBindingBatch bounds the AORs of one batch (and of one published
// message).
const maxBindingBatch = 1000

// batchSet is one AOR's changes in a batch, as of save seq.
type batchSet struct {
	aor string
	ch  change
	seq uint64
}

// take returns the changes of the oldest saves not yet written: each
// AOR's changes so far, at most maxBindingBatch AORs. n is how many queued saves
// the batch covers, and upto the sequence number up to which every save
// is in Redis once the batch is written (the saves before were written by
// earlier batches, or are covered by this one's changes). more reports
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
			// The AOR's changes, which cover this save and every later
			// one of the AOR queued so far.
			if len(batch) == maxBindingBatch {
				break
			}
			if in == nil {
				in = make(map[string]bool, min(len(q), maxBindingBatch))
			}
			in[e.aor] = true
			batch = append(batch, batchSet{aor: e.aor, ch: p.ch, seq: p.seq})
		}
		// Else the AOR's changes are in this batch, or were written by
		// an earlier one (pending is cleared only once written).
		n++
	}
	if n == len(q) {
		return batch, n, b.seq.Load(), false
	}
	return batch, n, q[n].seq - 1, true
}

// writeNext takes the next batch and writes it; it reports whether saves
// are left beyond it, and the write's error (its changes stay queued).
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

// Flush writes every change queued so far, in batches, and returns when
// Redis has them all, or the first error (the changes not written stay
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

// linger lets the next batch fill: at most one batch per
// bindingLinger while no REGISTER waits for one, rather than one per save
// (a pipeline per REGISTER was 19% of a node's CPU at 8,000 flows/s), and
// one per commitLinger while one waits (group commit: the saves made
// while a batch is on its way go in the next, sent when it returns or
// commitLinger after the previous one was sent, whichever is later). A
// save after a quiet spell is written at once. It returns false when ctx
// ended.
func (b *Bindings) linger(ctx context.Context, last time.Time) bool {
	select {
	case <-b.hurry: // from a REGISTER that waited earlier
	default:
	}
	for {
		until := bindingLinger
		if b.waiters.Load() > 0 {
			until = commitLinger
		}
		wait := until - time.Since(last)
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
			return true
		case <-b.hurry: // a REGISTER began to wait: commitLinger now
			t.Stop()
		}
	}
}

// commitLinger is the least time between two batches while a REGISTER
// waits for one: under load a batch holds the saves of this long, and the
// node and Redis pay the round trip's system calls once for them (a
// REGISTER waits at most this much longer).
const commitLinger = 500 * time.Microsecond

// writeScript stores one batch and publishes it, atomically (every node
// receives the changes in the order Redis applied them). KEYS are the
// AORs' hashes; ARGV[1] is the message, ARGV[2] its channel, then per
// key: the latest expiry (Unix ms) of its upserts, how many upserts, how
// many removals, the upserts (ID, JSON), the removed IDs. The hash
// expires with its latest binding: its expiry only ever moves later
// (PEXPIRETIME, Redis 7.0), since a binding of another node may outlive
// the ones this change wrote; emptied by removals, Redis deletes it.
// Commands take at most 500 fields each (unpack has a stack limit).
var writeScript = redis.NewScript(`
local function each(cmd, key, from, n, width)
  local i = 0
  while i < n do
    local k = math.min(n - i, 500)
    redis.call(cmd, key, unpack(ARGV, from + i * width, from + (i + k) * width - 1))
    i = i + k
  end
end
local a = 3
for _, key in ipairs(KEYS) do
  local exp, nup, ndel = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  each('HSET', key, a, nup, 2)
  a = a + 2 * nup
  each('HDEL', key, a, ndel, 1)
  a = a + ndel
  if nup > 0 then
    local t = redis.call('PEXPIRETIME', key)
    if t == -1 or (t >= 0 and t < exp) then
      redis.call('PEXPIREAT', key, exp)
    end
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
`)

// write stores one batch and publishes it (writeScript): per AOR, the
// bindings added or refreshed and the IDs removed; an upsert that has
// expired meanwhile goes as a removal. Each binding is encoded once: the
// hash's value is the bytes of the message that hold it.
func (b *Bindings) write(ctx context.Context, batch []batchSet) error {
	now := time.Now()
	keys := make([]string, 0, len(batch))
	args := make([]any, 2, 2+6*len(batch))
	pub := make([]byte, 0, 256+640*len(batch))
	pub = append(pub, b.own...)
	pub = append(pub, `"sets":[`...)
	var ups []store.Binding
	var dels []string
	for _, s := range batch {
		ups, dels = ups[:0], append(dels[:0], s.ch.del...)
		for _, x := range s.ch.up {
			if x.Expires.After(now) {
				ups = append(ups, x)
			} else {
				dels = append(dels, x.ID)
			}
		}
		if len(ups) == 0 && len(dels) == 0 {
			continue
		}
		if len(keys) > 0 {
			pub = append(pub, ',')
		}
		pub = appendField(pub, '{', "aor", s.aor)
		keys = append(keys, keyBinds+s.aor)
		var last time.Time
		for _, x := range ups {
			if x.Expires.After(last) {
				last = x.Expires
			}
		}
		args = append(args, last.UnixMilli(), len(ups), len(dels))
		if len(ups) > 0 {
			pub = append(pub, `,"up":[`...)
			for i, x := range ups {
				if i > 0 {
					pub = append(pub, ',')
				}
				start := len(pub)
				pub = appendBinding(pub, x)
				// The slice keeps its bytes when pub grows: append copies
				// them to a new array and leaves the old one as it was.
				args = append(args, x.ID, pub[start:len(pub):len(pub)])
			}
			pub = append(pub, ']')
		}
		if len(dels) > 0 {
			pub = append(pub, `,"del":[`...)
			for i, id := range dels {
				if i > 0 {
					pub = append(pub, ',')
				}
				pub = appendString(pub, id)
				args = append(args, id)
			}
			pub = append(pub, ']')
		}
		pub = append(pub, '}')
	}
	if len(keys) == 0 {
		return nil
	}
	pub = append(pub, "]}"...)
	args[0], args[1] = pub, chanBindings
	ctx, cancel := context.WithTimeout(ctx, 4*b.c.cfg.Timeout)
	defer cancel()
	if err := writeScript.Run(ctx, b.c.rdb, keys, args...).Err(); err != nil {
		return b.c.unavailable("write bindings", err)
	}
	return nil
}
