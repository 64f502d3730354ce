package harness

import (
	"context"
	"strings"
	"testing"
	"time"
)

// StartRedis runs Debian's redis-server on loopback without persistence,
// Do and Info read its answers, and Stop ends it by its PID.
func TestStartRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := StartRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if !strings.HasPrefix(r.Addr, "127.0.0.1:") {
		t.Errorf("got address %s, want loopback", r.Addr)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"PING", "PONG"},
		{"SET k hello", "OK"},
		{"GET k", "hello"},
		{"DBSIZE", "1"},
		{"CONFIG GET appendonly", ""}, // an array: not read by Do
	} {
		got, err := r.Do(tc.cmd)
		if tc.cmd == "CONFIG GET appendonly" {
			if err == nil {
				t.Errorf("%s: got %q, want an error (arrays are not read)", tc.cmd, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v, want %q", tc.cmd, got, err, tc.want)
		}
	}
	info, err := r.Info("persistence")
	if err != nil {
		t.Fatal(err)
	}
	if got := info["aof_enabled"]; got != "0" {
		t.Errorf("aof_enabled: got %q, want 0", got)
	}
	if got := info["rdb_changes_since_last_save"]; got == "" {
		t.Error("INFO persistence: no rdb_changes_since_last_save")
	}
	r.Stop()
	if !r.Exited() {
		t.Error("redis-server still running after Stop")
	}
}
