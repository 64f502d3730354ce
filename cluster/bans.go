package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sipwarden/sipwarden/guard"
)

// failureScript counts one failure in the fixed window KEYS[1] (the
// previous one is KEYS[2]) and, when the sliding estimate reaches
// ARGV[3], bans the source: KEYS[3] is set to ARGV[5] until ARGV[4] (Unix
// ms) unless a ban is held, the source ARGV[7] is added to the index
// KEYS[4], and ARGV[5] is published on ARGV[6]. ARGV[1] is the window in
// ms, ARGV[2] how far into the current window now is. It returns 1 when
// it banned.
var failureScript = redis.NewScript(`
local w = tonumber(ARGV[1])
local cur = redis.call('INCR', KEYS[1])
if cur == 1 then redis.call('PEXPIRE', KEYS[1], 2 * w) end
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local est = cur + math.floor(prev * (w - tonumber(ARGV[2])) / w)
if est >= tonumber(ARGV[3]) and redis.call('SET', KEYS[3], ARGV[5], 'PXAT', ARGV[4], 'NX') then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[7])
  redis.call('PUBLISH', ARGV[6], ARGV[5])
  return 1
end
return 0
`)

// Guard is what Bans needs of the node's brute-force guard (*guard.Guard).
type Guard interface {
	Impose(b guard.Ban) bool
	Lift(addr netip.Addr) bool
	Bans() []guard.Ban
	Exempt(addr netip.Addr) bool
}

// BanConfig is the guard's per-address policy, which the cluster applies
// to the failures of every node together.
type BanConfig struct {
	MaxFailures int
	Window      time.Duration
	BanDuration time.Duration
}

// Bans shares failure counts and bans between the nodes. Each node's guard
// keeps deciding alone on its hot path (guard.Check in memory); Bans
// counts every node's failures in Redis as well, and imposes on every
// guard a ban decided by any node, or by the counts of all. It also
// serves the management API's list and lift (api.Bans): a ban lifted
// through any node is lifted on all.
type Bans struct {
	c     *Cluster
	g     Guard
	cfg   BanConfig
	now   func() time.Time
	queue chan netip.Prefix

	mu     sync.Mutex
	shared map[netip.Prefix]sharedBan // bans known to be in Redis
}

type sharedBan struct {
	until time.Time
	at    time.Time // when it was written or seen
}

// banMessage is a ban as Redis keeps it and the channel carries it.
type banMessage struct {
	Op       string `json:"op"` // "ban" or "lift"
	Source   string `json:"source"`
	Reason   string `json:"reason,omitempty"`
	Since    int64  `json:"since_ms,omitempty"`
	Until    int64  `json:"until_ms,omitempty"`
	Failures int    `json:"failures,omitempty"`
	Node     string `json:"node"`
}

// Bans returns the shared bans over g, the node's guard; call Run.
func (c *Cluster) Bans(g Guard, cfg BanConfig) *Bans {
	return &Bans{c: c, g: g, cfg: cfg, now: time.Now, queue: make(chan netip.Prefix, 4096),
		shared: map[netip.Prefix]sharedBan{}}
}

// Failure counts a failed attempt from addr in the cluster, in the
// background: it never blocks (a full queue drops the failure, which the
// node's own guard still counted).
func (b *Bans) Failure(addr netip.Addr) {
	src := guard.SourceOf(addr)
	if !src.IsValid() || b.g.Exempt(addr) {
		return
	}
	select {
	case b.queue <- src:
	default:
	}
}

// List returns the live bans (api.Bans): the node's guard holds every
// shared ban it learnt of.
func (b *Bans) List() []guard.Ban { return b.g.Bans() }

// Lift ends the ban of addr's source on every node, and forgets its
// shared failures. It reports whether there was a ban here or in Redis.
// Redis comes first: when it fails, nothing is lifted, here either, and
// the error is an unavailable one (503 in the API), as every write the
// cluster cannot store. It used to lift the ban here only and answer
// 204, leaving the other nodes banning the source.
func (b *Bans) Lift(addr netip.Addr) (bool, error) {
	src := guard.SourceOf(addr)
	if !src.IsValid() {
		return false, nil
	}
	ctx, cancel := b.c.timeout(context.Background())
	defer cancel()
	cur, prev := b.windowKeys(src, b.now())
	var del *redis.IntCmd
	_, err := b.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, keyBan+src.String(), cur, prev)
		p.ZRem(ctx, keyBanIndex, src.String())
		return nil
	})
	if err != nil {
		return false, b.c.unavailable("lift ban", err)
	}
	local := b.g.Lift(addr)
	b.mu.Lock()
	delete(b.shared, src)
	b.mu.Unlock()
	msg, _ := json.Marshal(banMessage{Op: "lift", Source: src.String(), Node: b.c.cfg.Node})
	if err := b.c.rdb.Publish(ctx, chanBans, msg).Err(); err != nil {
		b.c.log.Error("ban lift not published", "source", src.String(), "error", err)
	}
	return local || del.Val() > 0, nil
}

// Reshare makes this node write its live bans to Redis again at the next
// push (within a second): Redis came back empty.
func (b *Bans) Reshare() {
	b.mu.Lock()
	clear(b.shared)
	b.mu.Unlock()
}

// windowKeys returns the keys of the current and the previous fixed
// window of src's failures at now.
func (b *Bans) windowKeys(src netip.Prefix, now time.Time) (cur, prev string) {
	w := b.cfg.Window.Milliseconds()
	i := now.UnixMilli() / w
	base := keyFail + src.String() + ":"
	return base + strconv.FormatInt(i, 10), base + strconv.FormatInt(i-1, 10)
}

// Run loads the shared bans, then until ctx ends: counts the queued
// failures, imposes the bans other nodes publish, writes this node's own
// bans to Redis (every second) and reloads them all (every 5 s: a message
// missed while disconnected is caught up).
func (b *Bans) Run(ctx context.Context) {
	sub := b.c.rdb.Subscribe(ctx, chanBans)
	defer sub.Close()
	cctx, cancel := b.c.timeout(ctx)
	_, _ = sub.Receive(cctx) // the confirmation; a ban missed meanwhile is reloaded within 5 s
	cancel()
	b.resync(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.countLoop(ctx)
	}()
	defer wg.Wait()
	msgs := sub.Channel()
	push := time.NewTicker(time.Second)
	defer push.Stop()
	pull := time.NewTicker(5 * time.Second)
	defer pull.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			b.apply(m.Payload)
		case <-push.C:
			b.pushLocal(ctx)
		case <-pull.C:
			b.resync(ctx)
		}
	}
}

func (b *Bans) countLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case src := <-b.queue:
			b.count(ctx, src)
		}
	}
}

func (b *Bans) count(ctx context.Context, src netip.Prefix) {
	now := b.now()
	cur, prev := b.windowKeys(src, now)
	w := b.cfg.Window.Milliseconds()
	until := now.Add(b.cfg.BanDuration)
	msg, _ := json.Marshal(banMessage{
		Op: "ban", Source: src.String(), Node: b.c.cfg.Node, Failures: b.cfg.MaxFailures,
		Reason: "failed attempts reached " + strconv.Itoa(b.cfg.MaxFailures) + " within " + b.cfg.Window.String() + " across the cluster",
		Since:  now.UnixMilli(), Until: until.UnixMilli(),
	})
	ctx, cancel := b.c.timeout(ctx)
	defer cancel()
	err := failureScript.Run(ctx, b.c.rdb, []string{cur, prev, keyBan + src.String(), keyBanIndex},
		w, now.UnixMilli()%w, b.cfg.MaxFailures, until.UnixMilli(), msg, chanBans, src.String()).Err()
	if err != nil && !errors.Is(err, context.Canceled) {
		b.c.log.Warn("failure not counted in the cluster", "source", src.String(), "error", err)
	}
}

// apply imposes or lifts a ban published by any node (this one included:
// imposing is idempotent).
func (b *Bans) apply(payload string) {
	var m banMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		b.c.log.Warn("bad message on the bans channel", "error", err)
		return
	}
	src, err := netip.ParsePrefix(m.Source)
	if err != nil {
		return
	}
	switch m.Op {
	case "ban":
		b.impose(src, m)
	case "lift":
		if m.Node == b.c.cfg.Node {
			return
		}
		b.g.Lift(src.Addr())
		b.mu.Lock()
		delete(b.shared, src)
		b.mu.Unlock()
	}
}

func (b *Bans) impose(src netip.Prefix, m banMessage) {
	until := time.UnixMilli(m.Until)
	b.g.Impose(guard.Ban{Source: src, Reason: m.Reason, Since: time.UnixMilli(m.Since).UTC(), Until: until.UTC(), Failures: m.Failures})
	b.mu.Lock()
	if s, ok := b.shared[src]; !ok || until.After(s.until) {
		b.shared[src] = sharedBan{until: until, at: b.now()}
	}
	b.mu.Unlock()
}

// pushLocal writes to Redis, and publishes, the bans this node's guard
// decided alone (its long window, its slowed usernames).
func (b *Bans) pushLocal(ctx context.Context) {
	now := b.now()
	for _, ban := range b.g.Bans() {
		b.mu.Lock()
		s, ok := b.shared[ban.Source]
		b.mu.Unlock()
		if ok && !ban.Until.After(s.until) {
			continue
		}
		msg, _ := json.Marshal(banMessage{Op: "ban", Source: ban.Source.String(), Reason: ban.Reason,
			Since: ban.Since.UnixMilli(), Until: ban.Until.UnixMilli(), Failures: ban.Failures, Node: b.c.cfg.Node})
		cctx, cancel := b.c.timeout(ctx)
		_, err := b.c.rdb.TxPipelined(cctx, func(p redis.Pipeliner) error {
			p.Set(cctx, keyBan+ban.Source.String(), msg, time.Until(ban.Until))
			p.ZAdd(cctx, keyBanIndex, redis.Z{Score: float64(ban.Until.UnixMilli()), Member: ban.Source.String()})
			return nil
		})
		if err == nil {
			err = b.c.rdb.Publish(cctx, chanBans, msg).Err()
		}
		cancel()
		if err != nil {
			b.c.log.Warn("ban not shared yet", "source", ban.Source.String(), "error", err)
			return // retried in a second
		}
		b.mu.Lock()
		b.shared[ban.Source] = sharedBan{until: ban.Until, at: now}
		b.mu.Unlock()
	}
}

// resync imposes every ban Redis holds, and lifts here the shared bans
// that are no longer there (lifted while this node missed the message).
func (b *Bans) resync(ctx context.Context) {
	started := b.now()
	ctx, cancel := context.WithTimeout(ctx, 10*b.c.cfg.Timeout)
	defer cancel()
	seen := map[netip.Prefix]bool{}
	// The index, without the bans ended (their keys expired with them).
	var srcs *redis.StringSliceCmd
	_, err := b.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, keyBanIndex, "-inf", strconv.FormatInt(started.UnixMilli(), 10))
		srcs = p.ZRange(ctx, keyBanIndex, 0, -1)
		return nil
	})
	if err != nil {
		b.c.log.Warn("bans not reloaded", "error", err)
		return
	}
	keys := make([]string, 0, len(srcs.Val()))
	for _, s := range srcs.Val() {
		keys = append(keys, keyBan+s)
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 500)]
		keys = keys[len(batch):]
		vals, err := b.c.rdb.MGet(ctx, batch...).Result()
		if err != nil {
			b.c.log.Warn("bans not reloaded", "error", err)
			return
		}
		for _, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			var m banMessage
			if json.Unmarshal([]byte(s), &m) != nil {
				continue
			}
			src, err := netip.ParsePrefix(m.Source)
			if err != nil {
				continue
			}
			seen[src] = true
			b.impose(src, m)
		}
	}
	b.mu.Lock()
	var gone []netip.Prefix
	for src, s := range b.shared {
		if !seen[src] && s.at.Before(started.Add(-2*time.Second)) {
			gone = append(gone, src)
			delete(b.shared, src)
		}
	}
	b.mu.Unlock()
	for _, src := range gone {
		b.g.Lift(src.Addr())
	}
}
