package cluster

import (
	"context"
	"encoding/json"
	"time"
)

// Presence: each node announces where the others reach it (its
// cluster.advertise) and which listener addresses are its own (a
// binding's LocalAddr names the node holding its connection), and keeps a
// key alive while it runs. A node whose key expired is dead: its
// connection bindings are unreachable until their devices register again.

const aliveTTL = 5 * time.Second

type nodeInfo struct {
	Advertise string   `json:"advertise"`
	Addrs     []string `json:"addrs"`
}

// peerTable maps a listener address to the advertised address of the
// live node it belongs to.
type peerTable map[string]string

// Announce records this node's advertised and listener addresses.
func (c *Cluster) Announce(ctx context.Context, addrs []string) error {
	b, _ := json.Marshal(nodeInfo{Advertise: c.cfg.Advertise, Addrs: addrs})
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.HSet(ctx, keyNodes, c.cfg.Node, b).Err(); err != nil {
		return c.unavailable("announce", err)
	}
	if err := c.rdb.Set(ctx, keyAlive+c.cfg.Node, "1", aliveTTL).Err(); err != nil {
		return c.unavailable("announce", err)
	}
	return c.refreshPeers(ctx)
}

// PeerAt returns the advertised address of the live node, other than
// this one, that owns the listener address addr.
func (c *Cluster) PeerAt(addr string) (string, bool) {
	t := c.peers.Load()
	if t == nil {
		return "", false
	}
	adv, ok := (*t)[addr]
	return adv, ok
}

func (c *Cluster) refreshPeers(ctx context.Context) error {
	all, err := c.rdb.HGetAll(ctx, keyNodes).Result()
	if err != nil {
		return c.unavailable("list nodes", err)
	}
	t := peerTable{}
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
		for _, a := range info.Addrs {
			t[a] = info.Advertise
		}
	}
	c.peers.Store(&t)
	return nil
}

// RunPresence keeps this node alive and the table of the others fresh,
// every second, until ctx ends.
func (c *Cluster) RunPresence(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := c.timeout(ctx)
		err := c.rdb.Set(cctx, keyAlive+c.cfg.Node, "1", aliveTTL).Err()
		if err == nil {
			err = c.refreshPeers(cctx)
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Debug("presence not refreshed", "error", err)
		}
	}
}
