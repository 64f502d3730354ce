package config

import (
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Cluster configures several nodes sharing one state on Redis (README,
// "Running a cluster"). With RedisURL empty (the default) the node keeps
// everything to itself, in bbolt and in memory.
type Cluster struct {
	// RedisURL turns clustering on: redis://[user:password@]host:port/db
	// (or rediss:// for TLS). Default "" (off).
	RedisURL string `yaml:"redis_url"`
	// NodeName names this node to the others; unique in the cluster.
	// Default: the machine's host name (only when redis_url is set).
	NodeName string `yaml:"node_name"`
	// Advertise is the host:port at which the other nodes reach this
	// node's SIP (UDP) listener. Required when redis_url is set.
	Advertise string `yaml:"advertise"`
	// Timeout bounds one Redis command; a request whose state cannot be
	// read or written within it is answered 503. Default 500ms.
	Timeout Duration `yaml:"timeout"`
	// NonceCounts is where digest nonce counts are checked: "node" (each
	// node issues nonces bound to itself and keeps their counts in
	// memory; an answer to another node's nonce is challenged again with
	// stale=true) or "cluster" (nonces valid on every node, counts
	// checked in Redis: one more Redis round trip per digest answer).
	// Default "node".
	NonceCounts string `yaml:"nonce_counts"`
}

// Where nonce counts are checked (Cluster.NonceCounts).
const (
	NonceCountsNode    = "node"
	NonceCountsCluster = "cluster"
)

// Enabled reports whether the node is part of a cluster.
func (c Cluster) Enabled() bool { return c.RedisURL != "" }

func (c *Cluster) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = Duration(500 * time.Millisecond)
	}
	if c.NonceCounts == "" {
		c.NonceCounts = NonceCountsNode
	}
	if c.RedisURL != "" && c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "sipwarden"
		}
		c.NodeName = h
	}
}

func (c *Cluster) validate(bad func(key string, v any, why string)) {
	if d := c.Timeout.D(); d < 10*time.Millisecond || d > 10*time.Second {
		bad("cluster.timeout", d, "want 10ms to 10s")
	}
	if c.NonceCounts != NonceCountsNode && c.NonceCounts != NonceCountsCluster {
		bad("cluster.nonce_counts", quote(c.NonceCounts), "want node or cluster")
	}
	if c.RedisURL == "" {
		if c.Advertise != "" {
			bad("cluster.advertise", quote(c.Advertise), "set only with cluster.redis_url")
		}
		return
	}
	u, err := url.Parse(c.RedisURL)
	switch {
	case err != nil:
		bad("cluster.redis_url", "(url)", "not a URL")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		bad("cluster.redis_url", quote(u.Scheme), "want a redis:// or rediss:// URL")
	case u.Host == "":
		bad("cluster.redis_url", "(url)", "names no host")
	}
	if c.NodeName == "" || len(c.NodeName) > 64 || strings.ContainsAny(c.NodeName, " :{}\"\\\r\n\t") {
		bad("cluster.node_name", quote(c.NodeName), "want 1 to 64 characters without spaces, colons, braces or quotes")
	}
	if c.Advertise == "" {
		bad("cluster.advertise", `""`, "required with cluster.redis_url: the host:port other nodes reach this node's SIP at")
	} else if h, p, err := net.SplitHostPort(c.Advertise); err != nil || h == "" || p == "" || p == "0" {
		bad("cluster.advertise", quote(c.Advertise), "want host:port")
	}
}
