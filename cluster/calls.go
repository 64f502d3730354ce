package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
)

// Calls: each node holds the dialogs it relays in memory (a call's
// requests all pass through the node that took its INVITE). For GET
// /v1/calls on any node to list the cluster's calls, every node writes a
// snapshot of its own into Redis once a second when it changed
// (keyCalls), expiring with the node's presence: a dead node's calls
// vanish from the list within aliveTTL, as they end with it. A call is
// ended through any node by publishing its ID to the node relaying it
// (chanCallEnd), which sends the BYEs.

// callEnd is a chanCallEnd message.
type callEnd struct {
	Node string `json:"node"`
	ID   string `json:"id"`
}

// PublishCalls stores snapshot (JSON) as this node's live calls, for
// aliveTTL (RunCalls renews it).
func (c *Cluster) PublishCalls(ctx context.Context, snapshot []byte) error {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.Set(ctx, keyCalls+c.cfg.Node, snapshot, aliveTTL).Err(); err != nil {
		return c.unavailable("publish calls", err)
	}
	return nil
}

// PeerCalls returns the snapshots of the other live nodes, by node name.
func (c *Cluster) PeerCalls(ctx context.Context) (map[string][]byte, error) {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	names, err := c.rdb.HKeys(ctx, keyNodes).Result()
	if err != nil {
		return nil, c.unavailable("list calls", err)
	}
	var keys, nodes []string
	for _, n := range names {
		if n != c.cfg.Node {
			keys, nodes = append(keys, keyCalls+n), append(nodes, n)
		}
	}
	out := map[string][]byte{}
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, c.unavailable("list calls", err)
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[nodes[i]] = []byte(s)
		}
	}
	return out, nil
}

// EndCallOn asks node to end the call id (its dialog ID), which it does
// when it receives the message (RunCalls).
func (c *Cluster) EndCallOn(ctx context.Context, node, id string) error {
	b, _ := json.Marshal(callEnd{Node: node, ID: id}) // strings: cannot fail
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	if err := c.rdb.Publish(ctx, chanCallEnd, b).Err(); err != nil {
		return c.unavailable("end call", err)
	}
	return nil
}

// RunCalls, until ctx ends, writes this node's snapshot every second when
// it changed (its bytes: snapshot must be deterministic) and at least
// every aliveTTL/2 to keep it alive, and ends the calls other nodes ask
// this one to end.
func (c *Cluster) RunCalls(ctx context.Context, snapshot func() []byte, end func(id string)) {
	sub := c.rdb.Subscribe(ctx, chanCallEnd)
	defer sub.Close()
	ends := sub.Channel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var (
		last    []byte
		written time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ends:
			if !ok {
				return
			}
			var e callEnd
			if json.Unmarshal([]byte(m.Payload), &e) == nil && e.Node == c.cfg.Node && e.ID != "" {
				end(e.ID)
			}
		case <-tick.C:
			data := snapshot()
			if bytes.Equal(data, last) && time.Since(written) < aliveTTL/2 {
				continue
			}
			if err := c.PublishCalls(ctx, data); err != nil {
				if ctx.Err() == nil {
					c.log.Debug("calls not published", "error", err)
				}
				continue
			}
			last, written = data, time.Now()
		}
	}
}
