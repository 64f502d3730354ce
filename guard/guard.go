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
	"slices"
	"strings"
	"sync"
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
	// Exempt addresses are never counted, banned or slowed.
	Exempt []netip.Prefix
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

type ipShard struct {
	mu sync.Mutex
	m  map[netip.Prefix]*ipEntry
	_  [40]byte // keep shards on separate cache lines
}

type ipEntry struct {
	win      window
	failures int // counted since the entry was made
	last     int64
	ban      *Ban
}

type userShard struct {
	mu    sync.Mutex
	users map[string]*userEntry
	pairs map[pairKey]int64 // last failure, unix ns
	_     [40]byte
}

type userEntry struct {
	win  window
	last int64
}

type pairKey struct {
	user string
	src  netip.Prefix
}

// Ban is one banned source, as the management API lists it.
type Ban struct {
	// Source is the banned address: one IPv4 address (a /32) or an IPv6
	// /64.
	Source netip.Prefix
	// Reason says why, e.g. "20 failed attempts within 1m0s (last: mismatch)".
	Reason   string
	Since    time.Time
	Until    time.Time
	Failures int
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
	return false
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

func (g *Guard) ipShard(src netip.Prefix) *ipShard {
	a := src.Addr().As16()
	h := uint64(a[15]) ^ uint64(a[14])<<8 ^ uint64(a[13])<<16 ^ uint64(a[7])<<24 ^ uint64(a[6])<<32
	return &g.ips[h%nShards]
}

func (g *Guard) userShard(user string) *userShard {
	return &g.users[maphash.String(g.seed, user)%nShards]
}

// Attacked reports whether some username may be under attack, so that a
// caller can skip extracting the claimed username when none is.
func (g *Guard) Attacked() bool {
	return g.now().UnixNano()-g.lastAttack.Load() <= int64(2*g.cfg.UserWindow+g.cfg.UserSlowdown)
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

func (g *Guard) slowed(src netip.Prefix, user string, now int64) bool {
	if len(user) > maxUserLen {
		user = user[:maxUserLen]
	}
	us := g.userShard(user)
	us.mu.Lock()
	defer us.mu.Unlock()
	u := us.users[user]
	if u == nil || u.win.estimate(now, int64(g.cfg.UserWindow)) < g.cfg.UserMaxFailures {
		return false
	}
	last, ok := us.pairs[pairKey{user, src}]
	return ok && now-last < int64(g.cfg.UserSlowdown)
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
	if user == "" {
		return banned
	}
	if len(user) > maxUserLen {
		user = user[:maxUserLen]
	}
	us := g.userShard(user)
	us.mu.Lock()
	u := us.users[user]
	if u == nil && len(us.users) >= g.perShard {
		g.evictUsers(us, now)
	}
	if u == nil && len(us.users) < g.perShard {
		u = &userEntry{}
		us.users[strings.Clone(user)] = u
	}
	if u != nil {
		u.last = now
		if u.win.add(now, int64(g.cfg.UserWindow), 1) >= g.cfg.UserMaxFailures {
			g.lastAttack.Store(now)
		}
	}
	k := pairKey{user, src}
	if _, ok := us.pairs[k]; ok {
		us.pairs[k] = now
	} else {
		if len(us.pairs) >= g.perShard {
			g.evictPairs(us, now)
		}
		if len(us.pairs) >= g.perShard {
			us.mu.Unlock()
			return banned
		}
		k.user = strings.Clone(user)
		us.pairs[k] = now
		g.pairs.Add(1)
	}
	us.mu.Unlock()
	return banned
}

// Success records a correct answer from addr for user: the source is no
// longer a failing one for that username.
func (g *Guard) Success(addr netip.Addr, user string) {
	if g.pairs.Load() == 0 || user == "" {
		return
	}
	src := sourceOf(addr)
	if len(user) > maxUserLen {
		user = user[:maxUserLen]
	}
	us := g.userShard(user)
	us.mu.Lock()
	if _, ok := us.pairs[pairKey{user, src}]; ok {
		delete(us.pairs, pairKey{user, src})
		g.pairs.Add(-1)
	}
	us.mu.Unlock()
}

// count adds points to src's window and bans it at the threshold.
func (g *Guard) count(src netip.Prefix, points int, now int64, reason string) (banned bool) {
	s := g.ipShard(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[src]
	if e == nil {
		if len(s.m) >= g.perShard {
			g.evictIPs(s, now)
		}
		if len(s.m) >= g.perShard {
			return false // full of live bans: fail open
		}
		e = &ipEntry{}
		s.m[src] = e
	}
	e.last = now
	if points == failurePoints {
		e.failures++
	}
	if e.ban != nil {
		if now < e.ban.Until.UnixNano() {
			return false
		}
		e.ban, e.win, e.failures = nil, window{}, 1
	}
	if e.win.add(now, int64(g.cfg.Window), points) < g.cfg.MaxFailures*failurePoints {
		return false
	}
	t := time.Unix(0, now).UTC()
	e.ban = &Ban{
		Source:   src,
		Reason:   banReason(g.cfg.MaxFailures, g.cfg.Window, reason),
		Since:    t,
		Until:    t.Add(g.cfg.BanDuration),
		Failures: e.failures,
	}
	return true
}

func banReason(n int, w time.Duration, last string) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("failed attempts reached ")
	b.WriteString(itoa(n))
	b.WriteString(" within ")
	b.WriteString(w.String())
	if last != "" {
		b.WriteString(" (last: ")
		b.WriteString(last)
		b.WriteString(")")
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

// evictIPs makes room in a full shard: it drops every entry that is over
// (no live ban, window passed) and, when none is, the first entry without
// a live ban among a few visited. The caller holds s.mu.
func (g *Guard) evictIPs(s *ipShard, now int64) {
	if g.sweepIPs(s, now) > 0 {
		return
	}
	visited := 0
	for k, e := range s.m {
		if e.ban == nil || now >= e.ban.Until.UnixNano() {
			delete(s.m, k)
			return
		}
		if visited++; visited >= 64 {
			return
		}
	}
}

func (g *Guard) evictUsers(s *userShard, now int64) {
	if g.sweepUsers(s, now) > 0 {
		return
	}
	for k := range s.users { // any: map order is random
		delete(s.users, k)
		return
	}
}

func (g *Guard) evictPairs(s *userShard, now int64) {
	if g.sweepUsers(s, now) > 0 {
		return
	}
	for k := range s.pairs {
		delete(s.pairs, k)
		g.pairs.Add(-1)
		return
	}
}

// sweepIPs drops the entries of s that hold nothing any more and returns
// how many. The caller holds s.mu.
func (g *Guard) sweepIPs(s *ipShard, now int64) int {
	n := 0
	idle := 2 * int64(g.cfg.Window)
	for k, e := range s.m {
		if (e.ban == nil || now >= e.ban.Until.UnixNano()) && now-e.last >= idle {
			delete(s.m, k)
			n++
		}
	}
	return n
}

func (g *Guard) sweepUsers(s *userShard, now int64) int {
	n := 0
	idle := 2 * int64(g.cfg.UserWindow)
	for k, u := range s.users {
		if now-u.last >= idle {
			delete(s.users, k)
			n++
		}
	}
	for k, last := range s.pairs {
		if now-last >= int64(g.cfg.UserSlowdown) {
			delete(s.pairs, k)
			g.pairs.Add(-1)
			n++
		}
	}
	return n
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

// Banned reports whether addr is banned now, and until when.
func (g *Guard) Banned(addr netip.Addr) (until time.Time, banned bool) {
	src := sourceOf(addr)
	if !src.IsValid() {
		return time.Time{}, false
	}
	s := g.ipShard(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[src]; e != nil && e.ban != nil && g.now().Before(e.ban.Until) {
		return e.ban.Until, true
	}
	return time.Time{}, false
}

// Bans lists the live bans, oldest first.
func (g *Guard) Bans() []Ban {
	now := g.now()
	var out []Ban
	for i := range g.ips {
		s := &g.ips[i]
		s.mu.Lock()
		for _, e := range s.m {
			if e.ban != nil && now.Before(e.ban.Until) {
				out = append(out, *e.ban)
			}
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Ban) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return a.Source.Addr().Compare(b.Source.Addr())
	})
	return out
}

// Lift ends the ban of the source holding addr (its /64 for IPv6) and
// forgets its failures. It reports whether there was a live ban.
func (g *Guard) Lift(addr netip.Addr) bool {
	src := sourceOf(addr)
	if !src.IsValid() {
		return false
	}
	s := g.ipShard(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[src]
	if e == nil || e.ban == nil {
		return false
	}
	live := g.now().Before(e.ban.Until)
	delete(s.m, src)
	return live
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
type window struct {
	start     int64 // start of the current fixed window, unix ns
	cur, prev int
}

func (w *window) roll(now, size int64) {
	switch d := now - w.start; {
	case w.start == 0 || d >= 2*size || d < 0:
		w.start, w.cur, w.prev = now, 0, 0
	case d >= size:
		w.start, w.prev, w.cur = w.start+size, w.cur, 0
	}
}

// add counts n at now and returns the estimate.
func (w *window) add(now, size int64, n int) int {
	w.roll(now, size)
	w.cur += n
	return w.estimateRolled(now, size)
}

func (w *window) estimate(now, size int64) int {
	w.roll(now, size)
	return w.estimateRolled(now, size)
}

func (w *window) estimateRolled(now, size int64) int {
	left := size - (now - w.start) // part of the previous window still covered
	return w.cur + int(int64(w.prev)*left/size)
}
