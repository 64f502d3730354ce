package server_test

import (
	"fmt"
	"testing"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/server/servertest"
)

// BenchmarkRegisterFlow: one digest REGISTER flow (challenge, answer) over
// UDP at a time, on a single node on bbolt and on a node of a cluster on
// Redis (its binding written there before the 200; its nonce count in
// the node's memory, cluster.nonce_counts' default).
// Sequential: it measures what Redis adds to each flow, not a node's rate
// under load (make bench).
func BenchmarkRegisterFlow(b *testing.B) {
	for _, mode := range []string{"bbolt", "redis"} {
		b.Run(mode, func(b *testing.B) {
			cfg := servertest.Config(b, b.TempDir())
			cfg.Log.Level = "warn"
			if mode == "redis" {
				r := redistest.Start(b)
				cfg.Cluster = config.Cluster{RedisURL: r.URL(), NodeName: "bench", Advertise: "127.0.0.1:1"}
			}
			n := servertest.Start(b, cfg)
			const users = 100
			for i := range users {
				if code := n.API(b, "POST", "/v1/credentials", map[string]any{"username": fmt.Sprintf("u%03d", i), "password": pw}, nil); code != 201 {
					b.Fatalf("create credential: %d", code)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if st := n.Register(b, "127.0.0.1", fmt.Sprintf("u%03d", i%users), pw, 600); st != "SIP/2.0 200 OK" {
					b.Fatalf("register %d: %q", i, st)
				}
			}
		})
	}
}
