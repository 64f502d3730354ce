package cluster

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sipwarden/sipwarden/digest"
)

// acceptScript records ARGV[1] as the count of the nonce KEYS[1] when it is
// higher than the one held, expiring at ARGV[2] (Unix ms), provided the
// cluster's epoch (KEYS[2]) is still ARGV[3], the nonce's own: 1 accepted,
// 0 a replay, -1 the epoch changed or vanished (its counts may be lost).
var acceptScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
`)

// Nonces issues and checks digest nonces with the cluster's key and epoch,
// and keeps their counts in Redis (auth.Nonces and auth.Counter), for
// cluster.nonce_counts: cluster (by default each node keeps its own
// nonces' counts in memory and needs none of this). When the epoch held
// in Redis changes or vanishes, it moves to the new one: nonces issued
// before are stale from then on.
type Nonces struct {
	c        *Cluster
	key      []byte
	lifetime time.Duration
	now      func() time.Time
	cur      atomic.Pointer[epochNonces]
	mu       sync.Mutex // serialises epoch changes
	errors   atomic.Uint64
	counts   countBatcher // nonces_batch.go
}

type epochNonces struct {
	n     *digest.Nonces
	epoch [4]byte
	hex   string
}

// Nonces returns the cluster's nonces, signed with key (the cluster's
// shared nonce key) and valid for lifetime, in the cluster's epoch (created
// by the first node). now is the clock; nil means time.Now.
func (c *Cluster) Nonces(ctx context.Context, key []byte, lifetime time.Duration, now func() time.Time) (*Nonces, error) {
	if now == nil {
		now = time.Now
	}
	n := &Nonces{c: c, key: append([]byte(nil), key...), lifetime: lifetime, now: now, counts: countBatcher{c: c}}
	e, err := c.RandomSecret(ctx, SecretNonceEpoch, 4)
	if err != nil {
		return nil, err
	}
	if err := n.use([4]byte(e)); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Nonces) use(epoch [4]byte) error {
	dn, err := digest.NewNoncesEpoch(n.key, epoch, n.lifetime, n.now)
	if err != nil {
		return fmt.Errorf("cluster: nonces: %w", err)
	}
	n.cur.Store(&epochNonces{n: dn, epoch: epoch, hex: hex.EncodeToString(epoch[:])})
	return nil
}

// Lifetime returns how long a nonce stays valid after it is issued.
func (n *Nonces) Lifetime() time.Duration { return n.lifetime }

// New returns a fresh nonce of the current epoch.
func (n *Nonces) New() string { return n.cur.Load().n.New() }

// Check checks a nonce against the current epoch (digest.Nonces.Check).
func (n *Nonces) Check(nonce string) (digest.NonceStatus, time.Time) {
	return n.cur.Load().n.Check(nonce)
}

// Errors returns how many counts could not be checked because Redis did
// not answer (each one answered 503).
func (n *Nonces) Errors() uint64 { return n.errors.Load() }

// Accept records nc as the count of nonce, which expires at expires, and
// reports whether it is higher than every count any node accepted for it.
// When Redis does not answer in time it returns an error wrapping
// ErrUnavailable (and marks the cluster down), never true: the count
// could be neither checked nor recorded, which is not a replay.
func (n *Nonces) Accept(nonce string, nc uint32, expires time.Time) (bool, error) {
	now := n.now()
	if nc == 0 || !expires.After(now) {
		return false, nil
	}
	epoch, ok := digest.NonceEpoch(nonce)
	if !ok {
		return false, nil
	}
	r, err := n.counts.check(&countCheck{
		nonce: nonce, nc: strconv.FormatUint(uint64(nc), 10), expiresMS: expires.UnixMilli(), epoch: hex.EncodeToString(epoch[:]),
	})
	if err != nil {
		n.errors.Add(1)
		return false, n.c.unavailable("check nonce count", err)
	}
	if r == -1 {
		// The nonce's epoch is no longer the cluster's: stale whatever
		// happens, unless the new epoch could not be read for want of Redis.
		if err := n.follow(epoch); err != nil {
			if errors.Is(err, ErrUnavailable) {
				return false, err
			}
			n.c.log.Warn("nonce epoch not renewed", "error", err)
		}
		return false, nil
	}
	return r == 1, nil
}

// follow moves to the cluster's epoch after a count of epoch old was
// refused because Redis holds another one, or none (then a new one is
// created, and the nonce key stored again).
func (n *Nonces) follow(old [4]byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur := n.cur.Load(); cur.epoch != old {
		return nil // moved already
	}
	ctx, cancel := n.c.timeout(context.Background())
	defer cancel()
	s, err := n.c.rdb.Get(ctx, keySecret+SecretNonceEpoch).Result()
	switch {
	case errors.Is(err, redis.Nil):
		if _, err := n.c.Secret(context.Background(), SecretNonceKey, n.key, false); err != nil {
			return err
		}
		e, err := n.c.RandomSecret(context.Background(), SecretNonceEpoch, 4)
		if err != nil {
			return err
		}
		n.c.log.Warn("nonce epoch lost from redis (flushed or restarted without persistence): new epoch, earlier nonces are stale")
		return n.use([4]byte(e))
	case err != nil:
		return n.c.unavailable("load nonce epoch", err)
	}
	e, err := hex.DecodeString(s)
	if err != nil || len(e) != 4 {
		return fmt.Errorf("cluster: nonce epoch in redis is not 4 hex bytes")
	}
	if [4]byte(e) == old {
		return nil
	}
	n.c.log.Info("nonce epoch changed in redis: following it")
	return n.use([4]byte(e))
}
