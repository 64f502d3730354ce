package guard

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Per source address: the failure windows and the bans they lead to.

type ipShard struct {
	mu sync.Mutex
	m  map[netip.Prefix]*ipEntry
	_  [40]byte // keep shards on separate cache lines
}

type ipEntry struct {
	win      window
	long     window // failures only, over Config.LongWindow
	failures int    // counted since the entry was made
	last     int64
	ban      *Ban
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

func (g *Guard) ipShard(src netip.Prefix) *ipShard {
	a := src.Addr().As16()
	h := uint64(a[15]) ^ uint64(a[14])<<8 ^ uint64(a[13])<<16 ^ uint64(a[7])<<24 ^ uint64(a[6])<<32
	return &g.ips[h%nShards]
}

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
		// The long window is kept: a guesser resuming after its ban is
		// banned again within a few failures.
		e.ban, e.win, e.failures = nil, window{}, 1
	}
	long := 0
	if points == failurePoints && g.cfg.LongMaxFailures > 0 {
		long = e.long.add(now, int64(g.cfg.LongWindow), 1)
	}
	n, w, d := g.cfg.MaxFailures, g.cfg.Window, g.cfg.BanDuration
	switch {
	case e.win.add(now, int64(g.cfg.Window), points) >= g.cfg.MaxFailures*failurePoints:
	case g.cfg.LongMaxFailures > 0 && long >= g.cfg.LongMaxFailures:
		n, w, d = g.cfg.LongMaxFailures, g.cfg.LongWindow, g.cfg.LongWindow
	default:
		return false
	}
	t := time.Unix(0, now).UTC()
	e.ban = &Ban{
		Source:   src,
		Reason:   banReason(n, w, reason),
		Since:    t,
		Until:    t.Add(d),
		Failures: e.failures,
	}
	return true
}

func banReason(n int, w time.Duration, last string) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("failed attempts reached ")
	b.WriteString(strconv.Itoa(n))
	b.WriteString(" within ")
	b.WriteString(w.String())
	if last != "" {
		b.WriteString(" (last: ")
		b.WriteString(last)
		b.WriteString(")")
	}
	return b.String()
}

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

func (g *Guard) sweepIPs(s *ipShard, now int64) int {
	n := 0
	short, long := 2*int64(g.cfg.Window), 2*int64(max(g.cfg.Window, g.cfg.LongWindow))
	for k, e := range s.m {
		idle := short
		if e.long.cur+e.long.prev > 0 {
			idle = long // its failures still count in the long window
		}
		if (e.ban == nil || now >= e.ban.Until.UnixNano()) && now-e.last >= idle {
			delete(s.m, k)
			n++
		}
	}
	return n
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

// Impose bans b.Source until b.Until, as another node of a cluster decided
// (package cluster): no failure is counted. A live ban already held is
// kept when it lasts longer. Exempt sources are not banned; it reports
// whether the ban is held now. Addresses beyond MaxTracked are refused as
// in Failure (fail open).
func (g *Guard) Impose(b Ban) bool {
	src := b.Source.Masked()
	if !src.IsValid() || src != sourceOf(src.Addr()) || g.Exempt(src.Addr()) {
		return false
	}
	now := g.now().UnixNano()
	if b.Until.UnixNano() <= now {
		return false
	}
	s := g.ipShard(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[src]
	if e == nil {
		if len(s.m) >= g.perShard {
			g.evictIPs(s, now)
		}
		if len(s.m) >= g.perShard {
			return false
		}
		e = &ipEntry{}
		s.m[src] = e
	}
	e.last = now
	if e.ban != nil && e.ban.Until.After(b.Until) {
		return true
	}
	b.Source = src
	e.ban = &b
	return true
}
