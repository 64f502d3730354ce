package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGuardDefaults(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if c.Guard.MaxFailures != 20 || c.Guard.BanAction != "reject" || len(c.Guard.UserAgentDeny) != 3 {
		t.Errorf("guard defaults: got %+v", c.Guard)
	}
	if c.Limits.HTTPMaxConnections != 1024 || c.Limits.HTTPIdleTimeout.D() != 90*time.Second {
		t.Errorf("http limits: got %d connections, idle %v; want 1024 and 90s", c.Limits.HTTPMaxConnections, c.Limits.HTTPIdleTimeout.D())
	}
	if got, want := c.Limits.IdleTimeoutAuthenticated.D(), 2*time.Hour+5*time.Minute; got != want {
		t.Errorf("idle_timeout_authenticated: got %v, want %v", got, want)
	}
}

func TestGuardLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	y := "registrar:\n  max_expires: 600\n  default_expires: 600\nguard:\n  exempt_cidrs: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]\n  user_agent_deny: []\n"
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Guard.ExemptPrefixes()
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if len(got) != len(want) {
		t.Fatalf("exempt: got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("exempt[%d]: got %v, want %v", i, got[i], want[i])
		}
	}
	if len(c.Guard.UserAgentDeny) != 0 {
		t.Errorf("user_agent_deny: [] gave %v, want none", c.Guard.UserAgentDeny)
	}
	if got, want := c.Limits.IdleTimeoutAuthenticated.D(), 15*time.Minute; got != want {
		t.Errorf("idle_timeout_authenticated follows max_expires: got %v, want %v", got, want)
	}
}

func TestGuardRefuses(t *testing.T) {
	cases := []struct{ yaml, wantKey string }{
		{"guard:\n  ban_action: tarpit\n", "guard.ban_action"},
		{"guard:\n  max_failures: -1\n", "guard.max_failures"},
		{"guard:\n  window: 1ms\n", "guard.window"},
		{"guard:\n  exempt_cidrs: [10.0.0.0/33]\n", "guard.exempt_cidrs"},
		{"guard:\n  exempt_cidrs: [nonsense]\n", "guard.exempt_cidrs"},
		{"guard:\n  user_agent_deny: [\"\"]\n", "guard.user_agent_deny"},
		{"guard:\n  max_tracked: 3\n", "guard.max_tracked"},
		{"limits:\n  max_connections: 10\n  max_connections_per_ip: 20\n", "limits.max_connections_per_ip"},
		{"limits:\n  idle_timeout: 30s\n  idle_timeout_authenticated: 10s\n", "limits.idle_timeout_authenticated"},
		{"limits:\n  api_max_body_bytes: 10\n", "limits.api_max_body_bytes"},
		{"limits:\n  max_in_flight: -5\n", "limits.max_in_flight"},
		{"limits:\n  api_key_failures: -1\n", "limits.api_key_failures"},
		{"limits:\n  http_max_connections: -1\n", "limits.http_max_connections"},
		{"limits:\n  http_max_connections: 2000000\n", "limits.http_max_connections"},
		{"limits:\n  http_idle_timeout: 10ms\n", "limits.http_idle_timeout"},
		{"limits:\n  http_idle_timeout: 2h\n", "limits.http_idle_timeout"},
		{"limits:\n  unknown: 1\n", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.wantKey, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), c.wantKey) {
				t.Fatalf("Load(%q): got %v, want an error naming %s", c.yaml, err, c.wantKey)
			}
		})
	}
}
