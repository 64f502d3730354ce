// Package guard decides, before authentication, whether a request's source
// may be served at all, and counts the failed authentication attempts that
// feed that decision. It does no I/O: the SIP registrar, the proxy and the
// management API call it with addresses and outcomes.
//
// # Per source address: bans
//
// Failed attempts (a wrong digest response, an unknown user, an invalid
// token, a source outside a connection's allow-list: auth.Outcome.Failure)
// are counted per source address in a sliding window (two fixed windows,
// the previous one weighted by how much of it still overlaps). When the
// count reaches MaxFailures the address is banned for BanDuration: every
// request from it is refused (403) or dropped unanswered, until the ban
// ends or an operator lifts it. A first-leg REGISTER without credentials,
// answered with a 401 challenge, is not a failure: a thousand phones
// behind one NAT re-registering at once after an outage, all answering
// their challenges correctly, never count anything. IPv6 sources are
// counted per /64, since one host usually holds a whole /64.
//
// # Per username: slowing, not locking
//
// A second count is kept per claimed username across all addresses. When it
// reaches UserMaxFailures within UserWindow the username is "under attack",
// and from then on a source that itself failed for that username within the
// last UserSlowdown is answered 403 "Too Many Failed Attempts" without its
// credentials being checked. Sources that did not fail for it, such as the
// real user's phone on a clean address, are served as usual: an attacker
// cannot lock a user out, only slow down his own guesses (one per
// UserSlowdown once the username is under attack, however many addresses
// he uses, each address getting one guess per period). A source that keeps
// sending for a username it is being slowed on is also counted against its
// address, at an eighth of a failure per attempt: a cracker hammering at
// full speed is banned within seconds, while a phone with a stale password
// retrying a few times a minute is slowed but its NAT address is not
// banned. A correct answer from a source clears its failures for that
// username.
//
// # Exemptions and memory
//
// Addresses in Exempt (trusted peers, allow-listed networks) are never
// counted, banned or slowed. The tables hold at most MaxTracked addresses,
// MaxTracked usernames and MaxTracked (username, address) pairs; entries
// expire after their windows (Sweep, or Run in the background). When a
// table is full of live entries a new source is evicted from tracking
// before a banned one is: under a flood from more banned addresses than
// MaxTracked, further addresses are not counted (the guard fails open
// rather than grow without bound).
package guard

import (
	"context"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
	"time"
)

// Verdict is what Check decides about a request before authentication.
type Verdict uint8

const (
	// Allow: serve the request.
	Allow Verdict = iota
	// Reject: the source is banned; answer 403 Forbidden.
	Reject
	// Drop: the source is banned; send nothing.
	Drop
	// Throttle: the username is under attack and this source failed for
	// it recently; answer 403 Too Many Failed Attempts without checking
	// its credentials.
	Throttle
)

var verdictNames = [...]string{Allow: "allow", Reject: "reject", Drop: "drop", Throttle: "throttle"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict(?)"
}

// Config configures a Guard. The zero value of each field means its
// default.
type Config struct {
	// MaxFailures from one address within Window ban it. Default 20.
	MaxFailures int
	// Window of the per-address count. Default 1m.
	Window time.Duration
	// BanDuration is how long a ban lasts. Default 15m.
	BanDuration time.Duration
	// Drop makes a banned address get no answer at all; otherwise 403.
	Drop bool
	// UserMaxFailures for one username, across addresses, within
	// UserWindow put it under attack. Default 5.
	UserMaxFailures int
	// UserWindow of the per-username count. Default 1m.
	UserWindow time.Duration
	// UserSlowdown is how long after its last failure a source is slowed
	// for a username under attack. Default 1m.
	UserSlowdown time.Duration
	// LongMaxFailures failed attempts from one address within LongWindow
	// ban it for LongWindow: a slow guesser (one password every few
	// seconds, under MaxFailures per Window) is banned too, as fail2ban
	// set-ups for Asterisk do. Default 50 in 1h; a phone with a stale
	// password retrying every minute or so is not reached in an hour, and
	// never on an address that also succeeds (Success does not clear it,
	// but a real user rarely fails 50 times). LongMaxFailures < 0 disables.
	LongMaxFailures int
	LongWindow      time.Duration
	// Exempt addresses are never counted, banned or slowed.
	Exempt []netip.Prefix
	// ExemptFunc, when set, exempts more addresses: a live set that
	// changes without a restart (the ip connections of the store). It is
	// called on every failure and ban check and must be fast.
	ExemptFunc func(netip.Addr) bool
	// MaxTracked bounds each table (addresses, usernames, pairs). Default
	// 65536.
	MaxTracked int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxFailures     = 20
	DefaultWindow          = time.Minute
	DefaultBanDuration     = 15 * time.Minute
	DefaultUserMaxFailures = 5
	DefaultUserWindow      = time.Minute
	DefaultUserSlowdown    = time.Minute
	DefaultMaxTracked      = 65536
	DefaultLongMaxFailures = 50
	DefaultLongWindow      = time.Hour
)

// Points: a failure weighs failurePoints, an attempt while slowed 1.
const failurePoints = 8

// maxUserLen bounds the usernames kept as keys; longer claims are cut (no
// credential has such a name).
const maxUserLen = 128

const nShards = 16

// Guard counts failures and decides. It is safe for concurrent use.
type Guard struct {
	cfg    Config
	now    func() time.Time
	exempt []netip.Prefix
	seed   maphash.Seed
	ips    [nShards]ipShard
	users  [nShards]userShard
	// lastAttack is the time (unix ns) a username last reached
	// UserMaxFailures: Check skips the username tables when it is old.
	lastAttack atomic.Int64
	// pairs counts (username, address) pairs, so that Success costs
	// nothing while nobody fails.
	pairs    atomic.Int64
	perShard int
}

// New returns a Guard.
func New(cfg Config) *Guard {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.BanDuration <= 0 {
		cfg.BanDuration = DefaultBanDuration
	}
	if cfg.UserMaxFailures <= 0 {
		cfg.UserMaxFailures = DefaultUserMaxFailures
	}
	if cfg.UserWindow <= 0 {
		cfg.UserWindow = DefaultUserWindow
	}
	if cfg.UserSlowdown <= 0 {
		cfg.UserSlowdown = DefaultUserSlowdown
	}
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	if cfg.LongMaxFailures == 0 {
		cfg.LongMaxFailures = DefaultLongMaxFailures
	}
	if cfg.LongWindow <= 0 {
		cfg.LongWindow = DefaultLongWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Guard{cfg: cfg, now: cfg.Now, seed: maphash.MakeSeed()}
	for _, p := range cfg.Exempt {
		g.exempt = append(g.exempt, p.Masked())
	}
	g.perShard = max(cfg.MaxTracked/nShards, 1)
	for i := range g.ips {
		g.ips[i].m = make(map[netip.Prefix]*ipEntry)
		g.users[i].users = make(map[string]*userEntry)
		g.users[i].pairs = make(map[pairKey]int64)
	}
	g.lastAttack.Store(-1 << 62)
	return g
}

// Exempt reports whether addr is never counted, banned or slowed.
func (g *Guard) Exempt(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range g.exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return g.cfg.ExemptFunc != nil && g.cfg.ExemptFunc(addr)
}

// sourceOf is the unit counted for addr: the address itself for IPv4, its
// /64 for IPv6. The zero Prefix for an invalid address.
func sourceOf(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	switch {
	case addr.Is4():
		return netip.PrefixFrom(addr, 32)
	case addr.Is6():
		p, _ := addr.WithZone("").Prefix(64)
		return p
	}
	return netip.Prefix{}
}

// Check decides about a request from addr claiming user ("" for none, e.g.
// a first REGISTER without credentials). It is meant for every request and
// costs a map lookup under a shard lock. A request that is throttled is
// counted against its address (an eighth of a failure), which may ban it.
func (g *Guard) Check(addr netip.Addr, user string) Verdict {
	src := sourceOf(addr)
	if !src.IsValid() || g.Exempt(addr) {
		return Allow
	}
	now := g.now().UnixNano()
	s := g.ipShard(src)
	s.mu.Lock()
	if e := s.m[src]; e != nil && e.ban != nil {
		if now < e.ban.Until.UnixNano() {
			s.mu.Unlock()
			if g.cfg.Drop {
				return Drop
			}
			return Reject
		}
		e.ban = nil // over: counting starts afresh
		e.win = window{}
	}
	s.mu.Unlock()
	if user == "" || now-g.lastAttack.Load() > int64(2*g.cfg.UserWindow+g.cfg.UserSlowdown) {
		return Allow
	}
	if !g.slowed(src, user, now) {
		return Allow
	}
	g.count(src, 1, now, "slowed")
	return Throttle
}

// Failure counts a failed attempt from addr for user ("" when no username
// was claimed); reason is the outcome's name, kept in the ban. It reports
// whether this failure banned the address.
func (g *Guard) Failure(addr netip.Addr, user, reason string) (banned bool) {
	src := sourceOf(addr)
	if !src.IsValid() || g.Exempt(addr) {
		return false
	}
	now := g.now().UnixNano()
	banned = g.count(src, failurePoints, now, reason)
	if user != "" {
		g.userFailure(src, user, now)
	}
	return banned
}

// Sweep drops every entry that holds nothing any more: windows passed,
// bans over.
func (g *Guard) Sweep() {
	now := g.now().UnixNano()
	for i := range g.ips {
		s := &g.ips[i]
		s.mu.Lock()
		g.sweepIPs(s, now)
		s.mu.Unlock()
		us := &g.users[i]
		us.mu.Lock()
		g.sweepUsers(us, now)
		us.mu.Unlock()
	}
}

// Run sweeps every interval until ctx ends.
func (g *Guard) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.Sweep()
		}
	}
}

// Tracked returns how many addresses, usernames and pairs the tables hold.
func (g *Guard) Tracked() (addrs, users, pairs int) {
	for i := range g.ips {
		s := &g.ips[i]
		s.mu.Lock()
		addrs += len(s.m)
		s.mu.Unlock()
		us := &g.users[i]
		us.mu.Lock()
		users += len(us.users)
		pairs += len(us.pairs)
		us.mu.Unlock()
	}
	return addrs, users, pairs
}

// window is a sliding-window counter: the current fixed window's count
// plus the previous one's, weighted by how much of it the sliding window
// still covers.

// SourceOf returns the unit a Guard counts and bans for addr: the address
// itself (a /32) for IPv4, its /64 for IPv6; the zero Prefix for an
// invalid address.
func SourceOf(addr netip.Addr) netip.Prefix { return sourceOf(addr) }
