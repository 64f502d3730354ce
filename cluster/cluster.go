// Package cluster lets several sipwarden nodes share one state on Redis
// (config cluster.redis_url). A node opens one Cluster, and the pieces
// built from it stand in for the single-node ones behind the small
// interfaces their consumers own:
//
//   - secrets.go: the nonce key, the nonce epoch and the JWT signing key,
//     created by the first node (SET NX) and loaded by the others;
//   - nonces.go, with cluster.nonce_counts: cluster (by default each node
//     keeps its own nonces' counts in memory, and Redis holds neither
//     counts nor epoch: server/cluster.go): the nonce counts
//     (auth.Counter), one key per nonce holding
//     the highest count accepted, compared and set by a Lua script, expiring
//     with the nonce; and the nonces themselves (auth.Nonces), whose epoch
//     follows the cluster's: when Redis loses the counts (a flush, a restart
//     without persistence) it loses the epoch with them, and every node
//     moves to a new one, so that no nonce whose count was forgotten is
//     accepted again;
//   - bans.go: the failure counts per source address (a sliding window of
//     two fixed windows, one key each) and the bans they lead to, published
//     to every node, which imposes them on its own guard (guard.Impose): the
//     hot path (guard.Check) stays a map lookup in memory;
//   - records.go: connections, credentials, numbers and API keys. Redis
//     holds the authoritative copy of the store's record buckets; each
//     node's bbolt file is a replica its reads use (REGISTER pays no Redis
//     round trip for its credential), written through a cluster-wide
//     write lock before bbolt commits and applied by the others from
//     pub/sub (the file explains why this is the cheapest correct design
//     over the existing store);
//   - bindings.go: each AOR's binding set, one key expiring with its last
//     binding, written in pipelined batches and applied to every node's
//     in-memory location table; a REGISTER is answered once its batch is
//     written (group commit, bindings_commit.go);
//   - nodes.go: where each live node is reached, so that a call for a
//     device connected to another node goes through that node.
//
// Every key starts with "sipwarden:" (schema.go lists them). Redis is the
// authority for what it holds; a node never answers from a guess when it
// cannot reach it: a binding set Redis did not take, or a nonce count it
// cannot check, fails with an error wrapping ErrUnavailable, which the
// node answers 503 with Retry-After (not 200, and not a challenge: the
// count was not found stale, it was not checked).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Cluster.
type Config struct {
	// URL is the Redis URL, redis://host:port/db.
	URL string
	// Node is this node's name.
	Node string
	// Advertise is where the other nodes reach this node's SIP.
	Advertise string
	// Timeout bounds one Redis command. Default 500ms.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Cluster is a node's connection to the cluster's Redis. It is safe for
// concurrent use.
type Cluster struct {
	cfg Config
	rdb *redis.Client
	log *slog.Logger

	mu      sync.Mutex
	lastErr error // of the last health check, nil when Redis answered
	// down is set when a command fails for want of Redis, and cleared by
	// Watch when Redis answers again.
	down atomic.Bool
	// recovered are called (on Watch's goroutine) when Redis answers
	// again after a failure.
	recovered []func()
	// peers maps the other live nodes' listener addresses to their
	// advertised addresses (nodes.go).
	peers atomic.Pointer[peerTable]
	// hosts resolves the host names other nodes advertise (nodes.go).
	hosts hostCache
	// announced is this node's entry in the nodes table, as Announce
	// wrote it: RunPresence writes it again with each presence refresh,
	// so that a Redis restarted empty learns it back (nodes.go).
	announced atomic.Pointer[[]byte]
}

// Down reports whether Redis is known to be unreachable: the last health
// check or a command since failed.
func (c *Cluster) Down() bool { return c.down.Load() }

// failed records a command that Redis did not answer.
func (c *Cluster) failed() { c.down.Store(true) }

// OnRecovered adds f to the functions Watch calls when Redis answers
// again after a failure. Call it before Watch.
func (c *Cluster) OnRecovered(f func()) { c.recovered = append(c.recovered, f) }

// Open connects to Redis and checks that it answers (PING), waiting while
// it does not until ctx ends; each failure is reported to notReady.
func Open(ctx context.Context, cfg Config, notReady func(reason string)) (*Cluster, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis url: %w", err) // the URL may hold a password: not quoted
	}
	opt.DialTimeout = max(cfg.Timeout, time.Second)
	opt.ReadTimeout = cfg.Timeout
	opt.WriteTimeout = cfg.Timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = 1
	// RESP2: go-redis checks RESP3 connections for push notifications
	// around every command and pipeline (4% of a node's CPU under REGISTER
	// load); nothing here uses RESP3 (pub/sub has its own connection).
	opt.Protocol = 2
	opt.ClientName = "sipwarden-" + cfg.Node
	c := &Cluster{cfg: cfg, rdb: redis.NewClient(opt), log: log}
	delay := 200 * time.Millisecond
	for {
		err := c.Ping(ctx)
		if err == nil {
			return c, nil
		}
		if notReady != nil {
			notReady(err.Error())
		}
		log.Error("redis unreachable; retrying", "error", err, "retry_in_s", delay.Seconds())
		select {
		case <-ctx.Done():
			c.rdb.Close()
			return nil, fmt.Errorf("cluster: connect: %w", errors.Join(ctx.Err(), err))
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// Close closes the connections to Redis.
func (c *Cluster) Close() error { return c.rdb.Close() }

// Node returns this node's name.
func (c *Cluster) Node() string { return c.cfg.Node }

// Ping checks that Redis answers within the timeout.
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cluster: redis ping: %w", err)
	}
	return nil
}

// Watch pings Redis every interval until ctx ends, calling health with
// nil when it answers and the error when it does not, on every change
// (and once at the start).
func (c *Cluster) Watch(ctx context.Context, interval time.Duration, health func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	first := true
	for {
		err := c.Ping(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		wasDown := c.down.Load()
		changed := first || (err == nil) != (c.lastErr == nil) || (err == nil && wasDown)
		c.lastErr = err
		c.mu.Unlock()
		first = false
		c.down.Store(err != nil)
		if err == nil && wasDown {
			for _, f := range c.recovered {
				f()
			}
		}
		if changed {
			if err != nil {
				c.log.Error("redis unreachable", "error", err)
			} else {
				c.log.Info("redis reachable")
			}
			health(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Cluster) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.Timeout)
}
