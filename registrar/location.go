// Package registrar implements the REGISTER side of sipwarden: RFC 3261
// section 10.3 processing, the last-device-wins policy and the in-memory
// location table the proxy routes calls with.
package registrar

import (
	"container/heap"
	"context"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// BindingSaver persists an AOR's bindings after a change: next is the
// AOR's complete set (empty: none left), prev the set it replaces (every
// binding the table held, expired ones included). A saver that stores
// sets (the bbolt store) writes next; one that stores each binding (a
// cluster node, where two nodes changing one AOR at once must not undo
// each other's change) writes the difference. It must not block on disk
// or network I/O: it is called with a location shard locked, so that the
// order of saves is the order of changes. Neither slice may be modified.
type BindingSaver interface {
	SaveBindings(aor string, prev, next []store.Binding)
}

// Durable is implemented by a BindingSaver whose saves are stored some
// time after SaveBindings returns: a cluster node's, which writes them to
// Redis in pipelined batches from a goroutine of its own (package
// cluster). A REGISTER is then answered only once the set it saved is
// stored (Pending.Wait), never before: no 200 for a binding a crash of
// the node could still lose, or that Redis never took. A single node's
// bbolt store does not implement it: its group commit may lose the last
// flush interval of refreshes on a crash (DESIGN.md), and its REGISTERs
// do not wait.
type Durable interface {
	// Ticket returns the ticket of the last save handed to SaveBindings:
	// read right after a save, one that covers it.
	Ticket() uint64
	// Stored returns nil once every save up to ticket is stored, and an
	// error when that did not happen within the saver's own bound (or
	// before ctx ended): the saves stay queued and are retried, but must
	// not be acknowledged.
	Stored(ctx context.Context, ticket uint64) error
	// Writable returns nil when a save made now can be stored, and an
	// error when the saver knows it cannot (a cluster's Redis down): an
	// operator's removal is then refused, not made on one node only.
	Writable() error
}

// Pending is a change of the table whose save may not be stored yet.
type Pending struct {
	d      Durable
	ticket uint64
}

// durable reports whether the change is stored some time later (Wait may
// wait), rather than once saved.
func (p Pending) durable() bool { return p.d != nil }

// Wait returns nil once the change is stored: at once when the saver is
// not Durable (or there is none), else when Durable.Stored says so. Call
// it with no shard locked.
func (p Pending) Wait(ctx context.Context) error {
	if p.d == nil {
		return nil
	}
	return p.d.Stored(ctx, p.ticket)
}

const shardCount = 64

// Location is the location table: AOR -> bindings, sharded, with an expiry
// index per shard (a min-heap of each AOR's earliest expiry), so that the
// sweeper touches only what is due instead of scanning every binding.
//
// Binding slices handed out are shared and must not be modified: every
// change replaces the AOR's slice (copy on write).
type Location struct {
	seed   maphash.Seed
	shards [shardCount]shard
	saver  BindingSaver
	// durable is saver when it is Durable.
	durable Durable
	now     func() time.Time
	log     *slog.Logger
	// onExpire, when set, is called for each binding the sweeper removes.
	onExpire func(store.Binding)
	// onRemove, when set, is called for each binding RemoveBinding or
	// RemoveFlow removes.
	onRemove func(store.Binding)
}

type shard struct {
	mu    sync.RWMutex
	aors  map[string]*aorEntry
	exp   expiryHeap
	count transportCounts // bindings per transport, see location_stats.go
}

type aorEntry struct {
	aor      string
	bindings []store.Binding // never empty while in the map
	next     time.Time       // earliest binding expiry
	// due orders the shard's heap: never after next. A refresh moves
	// next later and leaves due (and the entry's place in the heap)
	// alone; Sweep moves the entry on when due comes. Nearly every
	// REGISTER is a refresh, and re-sorting the heap for each was 2% of
	// the CPU at 10,000 REGISTER flows/s (the entries' cache misses).
	due time.Time
	idx int // position in the shard's heap
}

// NewLocation returns an empty table. saver may be nil (nothing persisted),
// now nil means time.Now, logger nil discards.
func NewLocation(saver BindingSaver, now func() time.Time, logger *slog.Logger) *Location {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Location{seed: maphash.MakeSeed(), saver: saver, now: now, log: logger}
	l.durable, _ = saver.(Durable)
	for i := range l.shards {
		l.shards[i].aors = make(map[string]*aorEntry)
	}
	return l
}

// OnExpire registers f to be called for every binding removed by expiry.
// It must be called before Run.
func (l *Location) OnExpire(f func(store.Binding)) { l.onExpire = f }

// OnRemove registers f to be called, outside the table's locks, for every
// binding RemoveBinding or RemoveFlow removes (RemoveAOR returns its own:
// its caller, lifecycle.Keeper, knows the credential they belonged to).
// Call it before serving.
func (l *Location) OnRemove(f func(store.Binding)) { l.onRemove = f }

func (l *Location) removed(bs []store.Binding) {
	if l.onRemove != nil {
		for _, b := range bs {
			l.onRemove(b)
		}
	}
}

func (l *Location) shard(aor string) *shard {
	return &l.shards[maphash.String(l.seed, aor)%shardCount]
}

// Lookup returns aor's unexpired bindings, newest registration last. The
// slice is shared: do not modify it.
func (l *Location) Lookup(aor string) []store.Binding {
	s := l.shard(aor)
	s.mu.RLock()
	e := s.aors[aor]
	var (
		bs   []store.Binding
		next time.Time
	)
	if e != nil {
		bs, next = e.bindings, e.next // the entry mutates under the lock: copy both
	}
	s.mu.RUnlock()
	if bs == nil {
		return nil
	}
	now := l.now()
	if !next.After(now) { // some binding is due but not swept yet
		bs = unexpired(bs, now)
	}
	return bs
}

func unexpired(bs []store.Binding, now time.Time) []store.Binding {
	out := make([]store.Binding, 0, len(bs))
	for _, b := range bs {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// Update applies one atomic change to aor's bindings: fn receives the
// current unexpired bindings (shared: do not modify) and returns the new
// complete set. If fn fails nothing changes (RFC 3261 10.3 step 7: all
// changes of one REGISTER apply together, or none). The new set is handed
// to the saver before the shard is unlocked; the Pending returned waits
// for it to be stored, which a REGISTER's answer must do first.
func (l *Location) Update(aor string, fn func(cur []store.Binding) ([]store.Binding, error)) ([]store.Binding, Pending, error) {
	now := l.now()
	s := l.shard(aor)
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []store.Binding
	e := s.aors[aor]
	if e != nil {
		cur = e.bindings
		if !e.next.After(now) {
			cur = unexpired(cur, now)
		}
	}
	next, err := fn(cur)
	if err != nil {
		return nil, Pending{}, err
	}
	var prev []store.Binding
	if e != nil {
		prev = e.bindings
	}
	key := s.setLocked(aor, e, next)
	var p Pending
	if l.saver != nil {
		l.saver.SaveBindings(key, prev, next)
		if l.durable != nil {
			p = Pending{d: l.durable, ticket: l.durable.Ticket()}
		}
	}
	return next, p, nil
}

// Pending returns the changes saved so far, for an answer that lists
// bindings without changing them (a REGISTER without Contact): they may
// include one not stored yet.
func (l *Location) Pending() Pending {
	if l.durable == nil {
		return Pending{}
	}
	return Pending{d: l.durable, ticket: l.durable.Ticket()}
}

// setLocked stores bs as aor's set (removing the AOR when empty) and keeps
// the expiry heap in step. It returns the AOR as the table keeps it, or a
// copy when the set is gone: aor may be a part of a whole request's text
// (package sipparse), and whoever keeps the key after the request (the
// saver's queue of pending sets, until its next write) must keep this one,
// not the request.
func (s *shard) setLocked(aor string, e *aorEntry, bs []store.Binding) string {
	var old []store.Binding
	if e != nil {
		old = e.bindings
	}
	s.count.replaceLocked(old, bs)
	if len(bs) == 0 {
		if e != nil {
			heap.Remove(&s.exp, e.idx)
			delete(s.aors, aor)
			return e.aor
		}
		return strings.Clone(aor)
	}
	next := bs[0].Expires
	for _, b := range bs[1:] {
		if b.Expires.Before(next) {
			next = b.Expires
		}
	}
	if e == nil {
		// The key outlives the request: the bindings' own copy, as the
		// registrar makes it.
		if bs[0].AOR == aor {
			aor = bs[0].AOR
		} else {
			aor = strings.Clone(aor)
		}
		e = &aorEntry{aor: aor, bindings: bs, next: next, due: next}
		s.aors[aor] = e
		heap.Push(&s.exp, e)
		return aor
	}
	e.bindings, e.next = bs, next
	if next.Before(e.due) {
		e.due = next
		heap.Fix(&s.exp, e.idx)
	}
	return e.aor
}

// Restore loads bindings read from the store at start, dropping expired
// ones. It does not write them back.
func (l *Location) Restore(bs []store.Binding) int {
	now := l.now()
	byAOR := make(map[string][]store.Binding)
	n := 0
	for _, b := range bs {
		if b.AOR == "" || !b.Expires.After(now) {
			continue
		}
		byAOR[b.AOR] = append(byAOR[b.AOR], b)
		n++
	}
	for aor, set := range byAOR {
		slices.SortFunc(set, func(a, b store.Binding) int { return a.RegisteredAt.Compare(b.RegisteredAt) })
		s := l.shard(aor)
		s.mu.Lock()
		s.setLocked(aor, s.aors[aor], set)
		s.mu.Unlock()
	}
	return n
}

// Sweep removes every binding that expired at or before now and returns
// how many it removed. Only AORs whose earliest expiry is due are visited.
func (l *Location) Sweep(now time.Time) int {
	removed := 0
	var gone []store.Binding
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for len(s.exp) > 0 && !s.exp[0].due.After(now) {
			e := s.exp[0]
			if e.next.After(now) { // refreshed since: on to its expiry
				e.due = e.next
				heap.Fix(&s.exp, 0)
				continue
			}
			keep := unexpired(e.bindings, now)
			for _, b := range e.bindings {
				if !b.Expires.After(now) {
					gone = append(gone, b)
				}
			}
			removed += len(e.bindings) - len(keep)
			prev := e.bindings
			s.setLocked(e.aor, e, keep)
			if len(keep) > 0 { // its next is later now: so is its due
				e.due = e.next
				heap.Fix(&s.exp, e.idx)
			}
			if l.saver != nil {
				l.saver.SaveBindings(e.aor, prev, keep)
			}
		}
		s.mu.Unlock()
	}
	if l.onExpire != nil {
		for _, b := range gone {
			l.onExpire(b)
		}
	}
	return removed
}

// Run sweeps expired bindings every interval until ctx ends.
func (l *Location) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := l.Sweep(l.now()); n > 0 {
				l.log.Debug("bindings expired", "count", n)
			}
		}
	}
}

// Bindings lists the unexpired bindings of aor, or of every AOR when aor
// is empty, sorted by AOR and then by registration time.
func (l *Location) Bindings(aor string) []store.Binding {
	if aor != "" {
		return slices.Clone(l.Lookup(aor))
	}
	now := l.now()
	var out []store.Binding
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		for _, e := range s.aors {
			for _, b := range e.bindings {
				if b.Expires.After(now) {
					out = append(out, b)
				}
			}
		}
		s.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b store.Binding) int {
		if c := strings.Compare(a.AOR, b.AOR); c != 0 {
			return c
		}
		if c := a.RegisteredAt.Compare(b.RegisteredAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// RemoveBinding removes the binding with the given ID. Operator action:
// it scans the table.
func (l *Location) RemoveBinding(id string) (store.Binding, bool) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for aor, e := range s.aors {
			for j, b := range e.bindings {
				if b.ID != id {
					continue
				}
				prev := e.bindings
				keep := slices.Concat(prev[:j], prev[j+1:])
				key := s.setLocked(aor, e, keep)
				if l.saver != nil {
					l.saver.SaveBindings(key, prev, keep)
				}
				s.mu.Unlock()
				if !b.Expires.After(l.now()) && l.onExpire != nil {
					// Expired already, not swept yet: its end is
					// its expiry (registration.expired), which the
					// sweeper would otherwise have reported.
					l.onExpire(b)
				} else {
					l.removed([]store.Binding{b})
				}
				return b, true
			}
		}
		s.mu.Unlock()
	}
	return store.Binding{}, false
}

// Sync commits the pending binding writes to the store now (operator
// removals must survive a crash), or with a Durable saver waits until
// they are stored (an error when they were not in its bound: they stay
// queued and retried); nothing without a store that batches.
func (l *Location) Sync() error {
	if l.durable != nil {
		return l.durable.Stored(context.Background(), l.durable.Ticket())
	}
	if f, ok := l.saver.(interface{ FlushBindings() error }); ok {
		return f.FlushBindings()
	}
	return nil
}

// Writable returns nil when a removal made now can be stored, else the
// Durable saver's reason (Durable.Writable).
func (l *Location) Writable() error {
	if l.durable == nil {
		return nil
	}
	return l.durable.Writable()
}

// RemoveAOR removes every binding of aor and returns them.
func (l *Location) RemoveAOR(aor string) []store.Binding {
	return l.RemoveWhere(aor, func(store.Binding) bool { return true })
}

// RemoveWhere removes the bindings of aor that drop reports, and returns
// them (a credential's tokens revoked, its connection's allowed_cidrs
// narrowed: package lifecycle).
func (l *Location) RemoveWhere(aor string, drop func(store.Binding) bool) []store.Binding {
	s := l.shard(aor)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.aors[aor]
	if e == nil {
		return nil
	}
	prev := e.bindings
	var keep, gone []store.Binding
	for _, b := range prev {
		if drop(b) {
			gone = append(gone, b)
		} else {
			keep = append(keep, b)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	key := s.setLocked(aor, e, keep)
	if l.saver != nil {
		l.saver.SaveBindings(key, prev, keep)
	}
	return gone
}

// RemoveFlow removes the bindings of aor that came over the flow
// (transport, source): the connection they were registered on closed.
// A binding the device has since refreshed over another flow stays (RFC
// 5626 section 5.2: a flow that fails takes only its own binding; a
// browser re-registers on its new WebSocket). It returns how many went.
func (l *Location) RemoveFlow(aor, transport, source string) int {
	s := l.shard(aor)
	s.mu.Lock()
	e := s.aors[aor]
	if e == nil {
		s.mu.Unlock()
		return 0
	}
	keep := make([]store.Binding, 0, len(e.bindings))
	var gone []store.Binding
	for _, b := range e.bindings {
		if b.Transport != transport || b.Source != source {
			keep = append(keep, b)
		} else {
			gone = append(gone, b)
		}
	}
	if len(gone) == 0 {
		s.mu.Unlock()
		return 0
	}
	prev := e.bindings
	key := s.setLocked(aor, e, keep)
	if l.saver != nil {
		l.saver.SaveBindings(key, prev, keep)
	}
	s.mu.Unlock()
	l.removed(gone)
	return len(gone)
}

// Count calls f with the number of live bindings per transport; for
// gauges computed at scrape time.
func (l *Location) Count(f func(transport string, n int)) {
	counts := map[string]int{}
	now := l.now()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		for _, e := range s.aors {
			for _, b := range e.bindings {
				if b.Expires.After(now) {
					counts[b.Transport]++
				}
			}
		}
		s.mu.RUnlock()
	}
	for tp, n := range counts {
		f(tp, n)
	}
}

// expiryHeap orders AOR entries by due, at or before their earliest
// binding expiry.
type expiryHeap []*aorEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*aorEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

// Merge applies a change another node of a cluster made to aor's
// bindings (package cluster): up are bindings it added or refreshed (each
// replaces the one of its ID), del the IDs of those it removed; the
// bindings of aor it did not name stay (another node may have added one
// at the same moment, that this change must not undo). Expired bindings
// in up are dropped. The saver is not called: the change is the other node's to
// store. A binding removed here that has expired was swept by the other
// node first: the expiry hook is called for it here too, so that the
// node that reports expiries (the hook decides) reports it whichever node
// swept first.
func (l *Location) Merge(aor string, up []store.Binding, del []string) {
	now := l.now()
	s := l.shard(aor)
	s.mu.Lock()
	e := s.aors[aor]
	var cur []store.Binding
	if e != nil {
		cur = e.bindings
	}
	next := make([]store.Binding, 0, len(cur)+len(up))
	var gone []store.Binding
	for _, b := range cur {
		switch {
		case slices.Contains(del, b.ID):
			if !b.Expires.After(now) && l.onExpire != nil {
				gone = append(gone, b)
			}
		case slices.ContainsFunc(up, func(u store.Binding) bool { return u.ID == b.ID }):
		default:
			next = append(next, b) // expired or not: this node's sweeper removes it
		}
	}
	for _, u := range up {
		if u.Expires.After(now) && !slices.Contains(del, u.ID) {
			next = append(next, u)
		}
	}
	slices.SortStableFunc(next, func(a, b store.Binding) int { return a.RegisteredAt.Compare(b.RegisteredAt) })
	s.setLocked(aor, e, next)
	s.mu.Unlock()
	for _, b := range gone {
		l.onExpire(b)
	}
}
