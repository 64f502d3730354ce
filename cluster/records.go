package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sipwarden/sipwarden/store"
)

// Shared records: connections, credentials, numbers and API keys.
//
// The cheapest correct design over the existing store: Redis holds the
// authoritative copy of the store's record buckets (one hash per bucket,
// the store's own binary values), and each node keeps its bbolt file as
// a replica that its reads (and the REGISTER path's in-memory caches)
// use, so a REGISTER pays no Redis round trip for its credential. A write
// through the API of any node (Records implements store.Replicator):
//
//   - takes the cluster's write lock (SET NX with an expiry) and brings
//     the node's replica up to date, so that the store's own checks (a
//     username taken, a connection in use) see every node's writes;
//   - runs the bbolt transaction, and before bbolt commits, writes the
//     changes to Redis in one MULTI/EXEC with the new version number and
//     a message on chanRecords: when Redis fails, the transaction rolls
//     back and the API answers 503; a 201 means Redis has it;
//   - every other node applies the message to its replica (in the order
//     of the versions; a gap, a message missed while disconnected, or a
//     version seen to differ in the 2 s check, makes it reload the whole
//     copy in one MULTI/EXEC snapshot).
//
// Writes are rare (the API), so one lock for the cluster costs nothing
// that matters and keeps the store's checks correct without a second
// implementation of them in Lua.
type Records struct {
	c         *Cluster
	db        Replica
	onApplied func(store.Effect)

	mu       sync.Mutex // held by a local write, an apply or a reload
	version  int64      // of the replica; -1: unknown, reload
	pending  int64      // version a local write sent to Redis
	token    string     // of the write lock held
	sub      *redis.PubSub
	running  atomic.Bool // Run started: onApplied may be called
	reseeded func()
}

// Replica is the node's store (*store.DB).
type Replica interface {
	ApplyReplica(changes []store.Change) (store.Effect, error)
	ReplaceReplica(snap map[string]map[string][]byte) (store.Effect, error)
	ReplicaSnapshot() (map[string]map[string][]byte, error)
}

type recordMessage struct {
	Version int64          `json:"version"`
	Node    string         `json:"node"`
	Changes []store.Change `json:"changes"`
}

var _ store.Replicator = (*Records)(nil)

// recLockTTL bounds how long a node that died holding the write lock
// blocks the others' writes.
const recLockTTL = 10 * time.Second

// unlockScript deletes the lock KEYS[1] when it still holds ARGV[1].
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Records returns the shared records over db; onApplied (may be nil) is
// called, on a goroutine of its own, with what other nodes' writes did to
// the credentials, once applied here.
// Call Join, then db.SetReplicator, then Run.
func (c *Cluster) Records(db Replica, onApplied func(store.Effect)) *Records {
	return &Records{c: c, db: db, onApplied: onApplied, version: -1}
}

// Join brings the replica in line with the cluster at start: when Redis
// holds no records yet (the first node of a new cluster), this node's
// records become the cluster's; otherwise the replica is replaced by
// Redis's copy. It reports whether this node seeded the cluster.
func (r *Records) Join(ctx context.Context) (seeded bool, err error) {
	// Subscribed first: a write published while the replica loads is
	// applied after, or skipped as already loaded.
	sub := r.c.rdb.Subscribe(ctx, chanRecords)
	cctx, cancel := r.c.timeout(ctx)
	_, err = sub.Receive(cctx)
	cancel()
	if err != nil {
		sub.Close()
		return false, r.c.unavailable("subscribe to records", err)
	}
	r.sub = sub
	r.mu.Lock()
	defer r.mu.Unlock()
	// A lock this node held when it died (kill -9 during an API write) is
	// released now rather than when it expires: the node would not start.
	r.releaseOwnStale(ctx)
	// Another node's, if it died holding it, expires within recLockTTL.
	if err := r.lockWithin(ctx, recLockTTL+time.Second); err != nil {
		return false, err
	}
	defer r.unlockRedis()
	cctx, cancel = r.c.timeout(ctx)
	n, err := r.c.rdb.Exists(cctx, keyRecVersion).Result()
	cancel()
	if err != nil {
		return false, r.c.unavailable("join", err)
	}
	if n == 0 {
		snap, err := r.db.ReplicaSnapshot()
		if err != nil {
			return false, err
		}
		if err := r.upload(ctx, snap); err != nil {
			return false, err
		}
		r.version = 1
		return true, nil
	}
	return false, r.reloadLocked(ctx)
}

// upload writes snap as the cluster's records, version 1, replacing any.
func (r *Records) upload(ctx context.Context, snap map[string]map[string][]byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+10*r.c.cfg.Timeout)
	defer cancel()
	_, err := r.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, name := range store.ReplicatedBuckets() {
			p.Del(ctx, keyRec+name)
			m := snap[name]
			if len(m) == 0 {
				continue
			}
			args := make([]any, 0, 2*len(m))
			for k, v := range m {
				args = append(args, k, v)
			}
			p.HSet(ctx, keyRec+name, args...)
		}
		p.Set(ctx, keyRecVersion, 1, 0)
		return nil
	})
	if err != nil {
		return r.c.unavailable("upload records", err)
	}
	return nil
}

// Upload copies db's records into the cluster's Redis, replacing what it
// held (sipwarden cluster migrate): run it with no node serving.
func (c *Cluster) Upload(ctx context.Context, db Replica) (records int, err error) {
	snap, err := db.ReplicaSnapshot()
	if err != nil {
		return 0, err
	}
	for _, m := range snap {
		records += len(m)
	}
	r := &Records{c: c}
	if err := r.lock(ctx); err != nil {
		return 0, err
	}
	defer r.unlockRedis()
	if err := r.upload(ctx, snap); err != nil {
		return 0, err
	}
	// Any node running reloads: its version check sees 1 differ.
	return records, nil
}

// Download replaces db's records with the cluster's (migrating back to a
// single node).
func (c *Cluster) Download(ctx context.Context, db Replica) (records int, err error) {
	r := &Records{c: c, db: db}
	snap, _, err := r.snapshot(ctx)
	if err != nil {
		return 0, err
	}
	for _, m := range snap {
		records += len(m)
	}
	if _, err := db.ReplaceReplica(snap); err != nil {
		return 0, err
	}
	return records, nil
}

// lock takes the cluster's write lock, waiting up to 3 s for it.
func (r *Records) lock(ctx context.Context) error { return r.lockWithin(ctx, 3*time.Second) }

// lockWithin takes the cluster's write lock, waiting up to wait for it.
// Its token is this node's name, a slash and 16 random bytes in hex.
func (r *Records) lockWithin(ctx context.Context, wait time.Duration) error {
	var tok [16]byte
	rand.Read(tok[:]) // never fails (crypto/rand, Go 1.24)
	token := r.c.cfg.Node + "/" + hex.EncodeToString(tok[:])
	deadline := time.Now().Add(wait)
	for {
		cctx, cancel := r.c.timeout(ctx)
		ok, err := r.c.rdb.SetNX(cctx, keyRecLock, token, recLockTTL).Result()
		cancel()
		if err != nil {
			return r.c.unavailable("take the write lock", err)
		}
		if ok {
			r.token = token
			return nil
		}
		if time.Now().After(deadline) {
			return r.c.unavailable("take the write lock", fmt.Errorf("held by another node for %v", wait))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// releaseOwnStale deletes the write lock when its token names this node:
// node names are unique, and this node, starting, holds no lock, so it
// was taken by this node's previous run, which died holding it.
func (r *Records) releaseOwnStale(ctx context.Context) {
	cctx, cancel := r.c.timeout(ctx)
	defer cancel()
	held, err := r.c.rdb.Get(cctx, keyRecLock).Result()
	if err != nil || !strings.HasPrefix(held, r.c.cfg.Node+"/") {
		return // none, another node's, or Redis failing: lock() will tell
	}
	if err := unlockScript.Run(cctx, r.c.rdb, []string{keyRecLock}, held).Err(); err == nil {
		r.c.log.Warn("write lock left by this node's previous run released", "node", r.c.cfg.Node)
	}
}

func (r *Records) unlockRedis() {
	ctx, cancel := r.c.timeout(context.Background())
	defer cancel()
	if err := unlockScript.Run(ctx, r.c.rdb, []string{keyRecLock}, r.token).Err(); err != nil {
		r.c.log.Warn("write lock not released (it expires)", "error", err)
	}
	r.token = ""
}

// Lock implements store.Replicator: the write lock, and the replica
// brought up to date.
func (r *Records) Lock() (func(committed bool), error) {
	r.mu.Lock()
	ctx := context.Background()
	if err := r.lock(ctx); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if err := r.catchUpLocked(ctx, true); err != nil {
		r.unlockRedis()
		r.mu.Unlock()
		return nil, err
	}
	r.pending = 0
	return func(committed bool) {
		switch {
		case r.pending == 0:
		case committed:
			r.version = r.pending
		default:
			// Redis has a write bbolt did not commit: reload.
			r.version = -1
		}
		r.unlockRedis()
		r.mu.Unlock()
	}, nil
}

// Commit implements store.Replicator: the changes, the new version and
// the message to the other nodes, in one MULTI/EXEC.
func (r *Records) Commit(changes []store.Change) error {
	v := r.version + 1
	msg, err := json.Marshal(recordMessage{Version: v, Node: r.c.cfg.Node, Changes: changes})
	if err != nil {
		return fmt.Errorf("cluster: encode changes: %w", err)
	}
	ctx, cancel := r.c.timeout(context.Background())
	defer cancel()
	_, err = r.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, ch := range changes {
			if ch.Delete {
				p.HDel(ctx, keyRec+ch.Bucket, string(ch.Key))
			} else {
				p.HSet(ctx, keyRec+ch.Bucket, string(ch.Key), ch.Value)
			}
		}
		p.Set(ctx, keyRecVersion, v, 0)
		p.Publish(ctx, chanRecords, msg)
		return nil
	})
	if err != nil {
		// Redis may or may not have applied it: the version check tells.
		r.version = -1
		return r.c.unavailable("write records", err)
	}
	r.pending = v
	return nil
}

// catchUpLocked reloads the replica when Redis's version differs. When
// Redis holds no records at all (restarted without persistence, or
// flushed), it seeds Redis again from this replica rather than empty every
// node: the first node to notice wins, under the write lock (taken here
// unless haveLock).
func (r *Records) catchUpLocked(ctx context.Context, haveLock bool) error {
	cctx, cancel := r.c.timeout(ctx)
	s, err := r.c.rdb.Get(cctx, keyRecVersion).Result()
	cancel()
	if errors.Is(err, redis.Nil) {
		return r.reseedLocked(ctx, haveLock)
	}
	if err != nil {
		return r.c.unavailable("read records version", err)
	}
	v, _ := strconv.ParseInt(s, 10, 64)
	if v == r.version && v > 0 {
		return nil
	}
	err = r.reloadLocked(ctx)
	if errors.Is(err, errNoRecords) {
		// Lost between the version read and the snapshot.
		return r.reseedLocked(ctx, haveLock)
	}
	return err
}

func (r *Records) reseedLocked(ctx context.Context, haveLock bool) error {
	if !haveLock {
		if err := r.lock(ctx); err != nil {
			return err
		}
		defer r.unlockRedis()
	}
	cctx, cancel := r.c.timeout(ctx)
	n, err := r.c.rdb.Exists(cctx, keyRecVersion).Result()
	cancel()
	if err != nil {
		return r.c.unavailable("read records version", err)
	}
	if n > 0 {
		return r.reloadLocked(ctx) // another node seeded it first
	}
	if r.version < 0 {
		// This replica may lack a write Redis had: still, it is the
		// best copy left.
		r.c.log.Warn("redis lost the records while this node's replica was not known to be current")
	}
	snap, err := r.db.ReplicaSnapshot()
	if err != nil {
		return err
	}
	if err := r.upload(ctx, snap); err != nil {
		return err
	}
	r.version = 1
	r.c.log.Warn("redis held no records (restarted without persistence, or flushed): seeded again from this node's replica")
	if f := r.reseeded; f != nil {
		go f()
	}
	return nil
}

// OnReseeded sets f, called (on a goroutine of its own) after this node
// seeded an empty Redis again with its records: the node puts back what
// else Redis lost and it holds (its bindings). Call it before Run.
func (r *Records) OnReseeded(f func()) { r.reseeded = f }

// CatchUp checks the version now (after Redis came back) rather than at
// the next periodic check.
func (r *Records) CatchUp(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.catchUpLocked(ctx, false); err != nil {
		r.c.log.Warn("records not checked", "error", err)
	}
}

// snapshot reads every record hash and the version in one MULTI/EXEC.
func (r *Records) snapshot(ctx context.Context) (map[string]map[string][]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+10*r.c.cfg.Timeout)
	defer cancel()
	names := store.ReplicatedBuckets()
	cmds := make([]*redis.MapStringStringCmd, len(names))
	var ver *redis.StringCmd
	_, err := r.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			cmds[i] = p.HGetAll(ctx, keyRec+name)
		}
		ver = p.Get(ctx, keyRecVersion)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, r.c.unavailable("read records", err)
	}
	if errors.Is(ver.Err(), redis.Nil) {
		return nil, 0, errNoRecords
	}
	snap := map[string]map[string][]byte{}
	for i, name := range names {
		m := map[string][]byte{}
		for k, v := range cmds[i].Val() {
			m[k] = []byte(v)
		}
		snap[name] = m
	}
	v, _ := strconv.ParseInt(ver.Val(), 10, 64)
	return snap, v, nil
}

// errNoRecords: Redis holds no records version, so no records (restarted
// without persistence, or flushed). Replacing the replica with that
// emptiness would delete every credential here, and the next reseed
// would then spread the loss to every node: the replica is kept, and
// catchUpLocked seeds Redis again from it.
var errNoRecords = errors.New("cluster: redis holds no records: replica kept, to seed it again")

func (r *Records) reloadLocked(ctx context.Context) error {
	start := time.Now()
	snap, v, err := r.snapshot(ctx)
	if err != nil {
		return err
	}
	eff, err := r.db.ReplaceReplica(snap)
	if err != nil {
		return fmt.Errorf("cluster: reload records: %w", err)
	}
	n := 0
	for _, m := range snap {
		n += len(m)
	}
	r.version = v
	r.c.log.Info("records reloaded from redis", "records", n, "version", v, "duration_s", time.Since(start).Seconds())
	if r.onApplied != nil && r.running.Load() {
		// Not at Join: the node is still being built, nothing is bound.
		go r.onApplied(eff) // it may write to the store: not under mu
	}
	return nil
}

// Run applies the other nodes' writes as they are published, and checks
// the version every 2 s (a message missed while disconnected, an upload
// by `sipwarden cluster migrate`), until ctx ends.
func (r *Records) Run(ctx context.Context) {
	r.running.Store(true)
	sub := r.sub
	if sub == nil {
		sub = r.c.rdb.Subscribe(ctx, chanRecords)
	}
	defer sub.Close()
	msgs := sub.Channel()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			r.apply(ctx, m.Payload)
		case <-t.C:
			r.CatchUp(ctx)
		}
	}
}

func (r *Records) apply(ctx context.Context, payload string) {
	var m recordMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		r.c.log.Warn("bad message on the records channel", "error", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case m.Node == r.c.cfg.Node:
		return // ours: bbolt committed it here
	case m.Version <= r.version:
		// A version already held: a message queued before a reload that
		// went past it (a node that fell behind gets a backlog of them:
		// one reload each made a storm), or Redis lost its records and
		// was seeded again (restarted without persistence). Redis's
		// version tells which: reload (or seed again) only when it is
		// not this replica's.
		if err := r.catchUpLocked(ctx, false); err != nil {
			r.version = -1
			r.c.log.Warn("records not reloaded", "error", err)
		}
		return
	case m.Version == r.version+1 && r.version > 0:
		eff, err := r.db.ApplyReplica(m.Changes)
		if err != nil {
			r.c.log.Error("records not applied; reloading", "error", err)
			break
		}
		r.version = m.Version
		if r.onApplied != nil {
			go r.onApplied(eff) // it may write to the store: not under mu
		}
		return
	}
	if err := r.reloadLocked(ctx); err != nil {
		r.version = -1
		r.c.log.Warn("records not reloaded", "error", err)
	}
}
