package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence: each node announces where the others reach it (its
// cluster.advertise) and which listener addresses are its own (a
// binding's LocalAddr names the node holding its connection), and keeps a
// key alive while it runs. A node whose key expired is dead: its
// connection bindings are unreachable until their devices register again.
//
// The live nodes are also trusted by address (Member): a node relaying an
// INVITE to the node holding the callee's connection sends it without
// credentials, as a proxy.trusted_peers peer would. Listing a node in
// Redis is enough for that, and that is no weaker than the rest: whoever
// can write this Redis can already write credentials, bindings and the
// nonce key, so they are inside the trust boundary anyway.

const aliveTTL = 5 * time.Second

type nodeInfo struct {
	Advertise string   `json:"advertise"`
	Addrs     []string `json:"addrs"`
}

// peerTable is what the presence loop last read of the other live nodes.
type peerTable struct {
	// at maps a listener address to the advertised address of the live
	// node it belongs to.
	at map[string]string
	// ips holds the IP addresses of the other live nodes' advertise (a
	// host name resolved by hostCache) and listeners (not unspecified
	// ones such as 0.0.0.0).
	ips map[netip.Addr]bool
}

// ErrNodeNameTaken is Announce's error when another live node runs under
// this node's name.
var ErrNodeNameTaken = errors.New("cluster.node_name is taken by another live node")

// Announce records this node's advertised and listener addresses. Another
// live node under the same name, announced with other addresses, is an
// error (nameFree): the two would overwrite each other's entry and calls
// snapshot, and relays would go to either.
func (c *Cluster) Announce(ctx context.Context, addrs []string) error {
	b, _ := json.Marshal(nodeInfo{Advertise: c.cfg.Advertise, Addrs: addrs})
	if err := c.nameFree(ctx, b); err != nil {
		return err
	}
	c.announced.Store(&b)
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.HSet(ctx, keyNodes, c.cfg.Node, b).Err(); err != nil {
		return c.unavailable("announce", err)
	}
	if err := c.rdb.Set(ctx, keyAlive+c.cfg.Node, "1", aliveTTL).Err(); err != nil {
		return c.unavailable("announce", err)
	}
	// The nodes running read the table again now: a call relayed by or
	// to this node in its first second must not find it unknown.
	if err := c.rdb.Publish(ctx, chanNodes, c.cfg.Node).Err(); err != nil {
		return c.unavailable("announce", err)
	}
	return c.refreshPeers(ctx)
}

// nameFree returns nil unless another live node runs under this node's
// name with another announcement than b. A presence key left by a node of
// this name that died (a crash; a clean stop removes it, Leave) is told
// from a live one by its TTL: a live node renews it every second, a dead
// one's only runs down, so it is read twice, 1.2 s apart.
func (c *Cluster) nameFree(ctx context.Context, b []byte) error {
	read := func() (ttl time.Duration, entry string, err error) {
		cctx, cancel := c.timeout(ctx)
		defer cancel()
		var pttl *redis.DurationCmd
		var hget *redis.StringCmd
		_, err = c.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			pttl = p.PTTL(cctx, keyAlive+c.cfg.Node)
			hget = p.HGet(cctx, keyNodes, c.cfg.Node)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, "", c.unavailable("check the node name", err)
		}
		return pttl.Val(), hget.Val(), nil
	}
	first, entry, err := read()
	if err != nil || first <= 0 || entry == "" || entry == string(b) {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(1200 * time.Millisecond):
	}
	second, entry, err := read()
	if err != nil || second <= 0 || entry == "" || entry == string(b) || second < first-600*time.Millisecond {
		return err // gone, or running down: the key of a node that died
	}
	var other nodeInfo
	_ = json.Unmarshal([]byte(entry), &other)
	return fmt.Errorf("%w: %q runs at %s (listeners %v): give each node its own cluster.node_name",
		ErrNodeNameTaken, c.cfg.Node, other.Advertise, other.Addrs)
}

// Leave removes this node's presence key, on a clean stop: the other
// nodes stop relaying to its connections at once (not when the key
// expires), and a node started under its name does not wait for it.
func (c *Cluster) Leave(ctx context.Context) {
	if c.announced.Load() == nil {
		// Never announced (refused at start: its name is a live node's,
		// whose key this must not remove).
		return
	}
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.Del(ctx, keyAlive+c.cfg.Node).Err(); err != nil {
		c.log.Debug("presence key not removed", "error", err)
	}
}

// PeerAt returns the advertised address of the live node, other than
// this one, that owns the listener address addr.
func (c *Cluster) PeerAt(addr string) (string, bool) {
	t := c.peers.Load()
	if t == nil {
		return "", false
	}
	adv, ok := t.at[addr]
	return adv, ok
}

// Member reports whether addr is an address of another live node of the
// cluster (its advertise or one of its listeners), as of the presence
// loop's last refresh: a map lookup, no Redis round trip. While Redis is
// unreachable the last table read stays in force.
func (c *Cluster) Member(addr netip.Addr) bool {
	t := c.peers.Load()
	return t != nil && t.ips[addr.Unmap()]
}

// addIP adds the IP of hostport, when it is an address that can be a
// packet's source, to ips. A host name is resolved by hostCache.
func addIP(ips map[netip.Addr]bool, hostport string) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() {
		return
	}
	ips[a.Unmap()] = true
}

func (c *Cluster) refreshPeers(ctx context.Context) error {
	all, err := c.rdb.HGetAll(ctx, keyNodes).Result()
	if err != nil {
		return c.unavailable("list nodes", err)
	}
	t := peerTable{at: map[string]string{}, ips: map[netip.Addr]bool{}}
	for name, v := range all {
		if name == c.cfg.Node {
			continue
		}
		n, err := c.rdb.Exists(ctx, keyAlive+name).Result()
		if err != nil {
			return c.unavailable("list nodes", err)
		}
		var info nodeInfo
		if n == 0 || json.Unmarshal([]byte(v), &info) != nil || info.Advertise == "" {
			continue
		}
		addIP(t.ips, info.Advertise)
		for _, a := range c.hosts.resolve(ctx, info.Advertise, c.log) {
			t.ips[a] = true
		}
		for _, a := range info.Addrs {
			t.at[a] = info.Advertise
			addIP(t.ips, a)
		}
	}
	c.peers.Store(&t)
	return nil
}

// RunPresence keeps this node alive and the table of the others fresh,
// every second and whenever a node announces itself, until ctx ends.
func (c *Cluster) RunPresence(ctx context.Context) {
	sub := c.rdb.Subscribe(ctx, chanNodes)
	defer sub.Close()
	joined := sub.Channel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		alive := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			alive = true
		case <-joined:
		}
		cctx, cancel := c.timeout(ctx)
		var err error
		if alive {
			err = c.refreshPresence(cctx)
		}
		if err == nil {
			err = c.refreshPeers(cctx)
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Debug("presence not refreshed", "error", err)
		}
	}
}

// refreshPresence renews this node's presence key and writes its entry
// in the nodes table again: a Redis restarted without persistence has
// lost the table, and without this node's entry the other nodes would
// neither relay calls to the connections it holds nor trust the calls it
// relays to them, until it restarted. When the entry was missing the
// others are told at once.
func (c *Cluster) refreshPresence(ctx context.Context) error {
	b := c.announced.Load()
	if b == nil {
		return c.rdb.Set(ctx, keyAlive+c.cfg.Node, "1", aliveTTL).Err()
	}
	var added *redis.IntCmd
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, keyAlive+c.cfg.Node, "1", aliveTTL)
		added = p.HSet(ctx, keyNodes, c.cfg.Node, *b)
		return nil
	})
	if err != nil {
		return err
	}
	if added.Val() > 0 {
		c.log.Warn("this node's entry was missing from redis (restarted empty?): announced again", "node", c.cfg.Node)
		return c.rdb.Publish(ctx, chanNodes, c.cfg.Node).Err()
	}
	return nil
}

// hostCache resolves the host names nodes advertise (cluster.advertise
// may be edge-1.example.net:5060), so that their addresses are trusted
// too: each name at most every hostTTL, keeping the last addresses found
// while a lookup fails. The zero value is ready to use.
type hostCache struct {
	mu sync.Mutex
	m  map[string]hostEntry
}

type hostEntry struct {
	addrs []netip.Addr
	at    time.Time
}

// hostTTL is how long a node's resolved advertise host is used before it
// is looked up again.
const hostTTL = 30 * time.Second

// resolve returns the addresses of hostport's host when it is a name,
// nil when it is an address (addIP has it) or cannot be resolved.
func (h *hostCache) resolve(ctx context.Context, hostport string, log *slog.Logger) []netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[host]
	if ok && time.Since(e.at) < hostTTL {
		return e.addrs
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		log.Debug("advertised host of a node not resolved", "host", host, "error", err)
		if ok {
			e.at = time.Now() // try again in hostTTL, trusting the last addresses meanwhile
			h.m[host] = e
		}
		return e.addrs
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	if h.m == nil {
		h.m = map[string]hostEntry{}
	}
	h.m[host] = hostEntry{addrs: addrs, at: time.Now()}
	return addrs
}
