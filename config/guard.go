package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/cidr"
)

// Guard configures brute-force protection (see package guard): bans of
// source addresses after failed authentications, the slowdown of usernames
// under attack, and the User-Agent deny list.
type Guard struct {
	// MaxFailures from one source address (IPv6: one /64) within Window
	// ban it. Default 20.
	MaxFailures int `yaml:"max_failures"`
	// Window of the per-address count. Default 1m.
	Window Duration `yaml:"window"`
	// BanDuration is how long a ban lasts. Default 15m.
	BanDuration Duration `yaml:"ban_duration"`
	// LongMaxFailures from one source address within LongWindow ban it
	// for LongWindow: slow guessing, under max_failures per window, is
	// banned too. Default 50 in 1h; -1 disables.
	LongMaxFailures int      `yaml:"long_max_failures"`
	LongWindow      Duration `yaml:"long_window"`
	// BanAction is reject (403 Forbidden) or drop (no answer; TCP/TLS
	// connections from the address are closed). Default reject.
	BanAction string `yaml:"ban_action"`
	// UserMaxFailures for one username across addresses within UserWindow
	// put it under attack: sources that failed for it are then answered
	// 403 Too Many Failed Attempts for UserSlowdown. Default 5.
	UserMaxFailures int `yaml:"user_max_failures"`
	// UserWindow of the per-username count. Default 1m.
	UserWindow Duration `yaml:"user_window"`
	// UserSlowdown after its last failure. Default 1m.
	UserSlowdown Duration `yaml:"user_slowdown"`
	// ExemptCIDRs are never counted, banned or slowed, nor limited per
	// address, nor blocked for wrong API keys: trusted peers and networks
	// you allow-list. Default none.
	ExemptCIDRs []string `yaml:"exempt_cidrs"`
	// MaxTracked bounds the addresses (and usernames) tracked. Default 65536.
	MaxTracked int `yaml:"max_tracked"`
	// UserAgentDeny lists case-insensitive substrings of User-Agent whose
	// requests are dropped unanswered. Default [friendly-scanner, sipcli,
	// sipvicious]; [] disables. Weak: the header is easily forged.
	UserAgentDeny []string `yaml:"user_agent_deny"`
}

// Limits bounds what one client can make the server hold.
type Limits struct {
	// MaxConnections is the number of TCP and TLS connections open at
	// once, both listeners together. Default 10000.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP from one source address (exempt_cidrs of guard
	// excepted). Default 1000.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// IdleTimeout closes a TCP/TLS connection that has carried no
	// authenticated request after this long without receiving data (the
	// TLS handshake included). Default 10s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// IdleTimeoutAuthenticated applies once a REGISTER over the connection
	// was authenticated. Default registrar.max_expires + 5m, so that a
	// device refreshing its binding keeps its connection.
	IdleTimeoutAuthenticated Duration `yaml:"idle_timeout_authenticated"`
	// MaxInFlight is the number of SIP requests other than INVITE handled
	// at once; above it requests get 503 Service Unavailable with
	// Retry-After. INVITEs are bounded by proxy.max_in_flight and the call
	// caps instead. Default 5000.
	MaxInFlight int `yaml:"max_in_flight"`
	// APIMaxBodyBytes bounds API request bodies (413 above). Default 1048576.
	APIMaxBodyBytes int64 `yaml:"api_max_body_bytes"`
	// HTTPMaxConnections is the number of connections the HTTP listeners
	// (http.listen, and http.metrics_listen apart) hold open at once;
	// beyond it a new connection is closed as soon as it is accepted.
	// Default 1024.
	HTTPMaxConnections int `yaml:"http_max_connections"`
	// HTTPIdleTimeout closes an HTTP keep-alive connection after this long
	// without a request. Default 90s.
	HTTPIdleTimeout Duration `yaml:"http_idle_timeout"`
	// APIKeyFailures from one address within a minute block it for
	// APIKeyBlock (429 with Retry-After). Default 10. No other threshold
	// applies to API keys (Guard.LongMaxFailures is for SIP only).
	APIKeyFailures int `yaml:"api_key_failures"`
	// APIKeyBlock is how long. Default 1m.
	APIKeyBlock Duration `yaml:"api_key_block"`
	// GCHeadroomMB is the most Go's heap may grow beyond its live part
	// before a collection while the live heap is small (GOGC raised up to
	// 800, never under Go's 100); the headroom granted follows the
	// allocation rate up to it (server.TuneGC): fewer collections under
	// load for an amount of memory that follows the load. Default 128; -1 (or the GOGC environment variable)
	// leaves the Go runtime's setting alone.
	GCHeadroomMB int `yaml:"gc_headroom_mb"`
	// MaxQueueDelay is the longest a REGISTER or first INVITE without
	// credentials may wait for a worker of the stateless front before it
	// is answered 503 Service Unavailable with a Retry-After instead
	// (overload: the server keeps serving at its maximum and refuses the
	// rest cheaply). Requests with credentials are always served. While
	// not negative, a node whose UDP datagrams wait in the kernel over 20
	// ms for two intervals of 100 ms running (CoDel's standing queue, RFC
	// 8289) also answers every INVITE that starts a call 503 at once, with
	// credentials or without, until its queue empties. Default 100ms;
	// negative: never.
	MaxQueueDelay Duration `yaml:"max_queue_delay"`
}

// DefaultUserAgentDeny is the User-Agent deny list used when none is set.
var defaultUserAgentDeny = []string{"friendly-scanner", "sipcli", "sipvicious"}

func (c *Config) setGuardDefaults() {
	g, l := &c.Guard, &c.Limits
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *Duration, v time.Duration) {
		if *p == 0 {
			*p = Duration(v)
		}
	}
	defInt(&g.MaxFailures, 20)
	defDur(&g.Window, time.Minute)
	defDur(&g.BanDuration, 15*time.Minute)
	defInt(&g.LongMaxFailures, 50)
	defDur(&g.LongWindow, time.Hour)
	if g.BanAction == "" {
		g.BanAction = "reject"
	}
	defInt(&g.UserMaxFailures, 5)
	defDur(&g.UserWindow, time.Minute)
	defDur(&g.UserSlowdown, time.Minute)
	if len(g.ExemptCIDRs) == 0 {
		g.ExemptCIDRs = nil // [] and absent are the same
	}
	defInt(&g.MaxTracked, 65536)
	if g.UserAgentDeny == nil {
		g.UserAgentDeny = append([]string(nil), defaultUserAgentDeny...)
	}
	defInt(&l.MaxConnections, 10000)
	defInt(&l.MaxConnectionsPerIP, 1000)
	defDur(&l.IdleTimeout, 10*time.Second)
	defDur(&l.IdleTimeoutAuthenticated, time.Duration(c.Registrar.MaxExpires)*time.Second+5*time.Minute)
	defInt(&l.MaxInFlight, 5000)
	if l.APIMaxBodyBytes == 0 {
		l.APIMaxBodyBytes = 1 << 20
	}
	defInt(&l.HTTPMaxConnections, 1024)
	defDur(&l.HTTPIdleTimeout, 90*time.Second)
	defInt(&l.APIKeyFailures, 10)
	defDur(&l.APIKeyBlock, time.Minute)
	defInt(&l.GCHeadroomMB, 128)
	defDur(&l.MaxQueueDelay, 100*time.Millisecond)
}

func (c *Config) validateGuard(bad func(key string, v any, why string)) {
	g, l := c.Guard, c.Limits
	if g.LongMaxFailures < -1 || g.LongMaxFailures > 1000000 {
		bad("guard.long_max_failures", g.LongMaxFailures, "want -1 (off) or 1 to 1000000")
	}
	if g.LongWindow < 0 {
		bad("guard.long_window", g.LongWindow, "must not be negative")
	}
	if g.MaxFailures < 1 || g.MaxFailures > 100000 {
		bad("guard.max_failures", g.MaxFailures, "want 1 to 100000")
	}
	durations := []struct {
		key      string
		v        Duration
		min, max time.Duration
	}{
		{"guard.window", g.Window, time.Second, 24 * time.Hour},
		{"guard.ban_duration", g.BanDuration, time.Second, 30 * 24 * time.Hour},
		{"guard.user_window", g.UserWindow, time.Second, 24 * time.Hour},
		{"guard.user_slowdown", g.UserSlowdown, time.Second, 24 * time.Hour},
		{"limits.idle_timeout", l.IdleTimeout, time.Second, time.Hour},
		{"limits.idle_timeout_authenticated", l.IdleTimeoutAuthenticated, time.Second, 7 * 24 * time.Hour},
		{"limits.api_key_block", l.APIKeyBlock, time.Second, 24 * time.Hour},
		{"limits.http_idle_timeout", l.HTTPIdleTimeout, time.Second, time.Hour},
	}
	for _, d := range durations {
		if d.v.D() < d.min || d.v.D() > d.max {
			bad(d.key, d.v.D(), fmt.Sprintf("want %v to %v", d.min, d.max))
		}
	}
	switch g.BanAction {
	case "reject", "drop":
	default:
		bad("guard.ban_action", quote(g.BanAction), "want reject or drop")
	}
	if g.UserMaxFailures < 1 || g.UserMaxFailures > 100000 {
		bad("guard.user_max_failures", g.UserMaxFailures, "want 1 to 100000")
	}
	for _, s := range g.ExemptCIDRs {
		if _, err := cidr.Parse(s); err != nil {
			bad("guard.exempt_cidrs", quote(s), "want an address or a CIDR such as 192.0.2.0/24")
		}
	}
	if l.MaxQueueDelay > Duration(10*time.Second) {
		bad("limits.max_queue_delay", l.MaxQueueDelay, "want at most 10s (negative: never)")
	}
	if h := l.GCHeadroomMB; h != -1 && (h < 16 || h > 65536) {
		bad("limits.gc_headroom_mb", h, "want -1 (off) or 16 to 65536")
	}
	if g.MaxTracked < 16 || g.MaxTracked > 1<<24 {
		bad("guard.max_tracked", g.MaxTracked, "want 16 to 16777216")
	}
	for _, s := range g.UserAgentDeny {
		if strings.TrimSpace(s) == "" {
			bad("guard.user_agent_deny", quote(s), "must not be empty (use [] for no list)")
		}
	}
	if l.MaxConnections < 1 || l.MaxConnections > 1<<20 {
		bad("limits.max_connections", l.MaxConnections, "want 1 to 1048576")
	}
	if l.MaxConnectionsPerIP < 1 || l.MaxConnectionsPerIP > l.MaxConnections {
		bad("limits.max_connections_per_ip", l.MaxConnectionsPerIP, "want 1 to limits.max_connections")
	}
	if l.IdleTimeoutAuthenticated < l.IdleTimeout {
		bad("limits.idle_timeout_authenticated", l.IdleTimeoutAuthenticated.D(), "must not be below limits.idle_timeout")
	}
	if l.MaxInFlight < 1 || l.MaxInFlight > 1<<20 {
		bad("limits.max_in_flight", l.MaxInFlight, "want 1 to 1048576")
	}
	if l.APIMaxBodyBytes < 1024 || l.APIMaxBodyBytes > 64<<20 {
		bad("limits.api_max_body_bytes", l.APIMaxBodyBytes, "want 1024 to 67108864")
	}
	if l.HTTPMaxConnections < 1 || l.HTTPMaxConnections > 1<<20 {
		bad("limits.http_max_connections", l.HTTPMaxConnections, "want 1 to 1048576")
	}
	if l.APIKeyFailures < 1 || l.APIKeyFailures > 100000 {
		bad("limits.api_key_failures", l.APIKeyFailures, "want 1 to 100000")
	}
}

// ExemptPrefixes returns guard.exempt_cidrs parsed; Validate has checked them.
func (g Guard) ExemptPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(g.ExemptCIDRs))
	for _, s := range g.ExemptCIDRs {
		if p, err := cidr.Parse(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
