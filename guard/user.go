package guard

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
)

// Per claimed username: the counts that put a username under attack and
// the (username, source) pairs that are slowed while it is.

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

func (g *Guard) userShard(user string) *userShard {
	return &g.users[maphash.String(g.seed, user)%nShards]
}

// Attacked reports whether some username may be under attack, so that a
// caller can skip extracting the claimed username when none is.
func (g *Guard) Attacked() bool {
	return g.now().UnixNano()-g.lastAttack.Load() <= int64(2*g.cfg.UserWindow+g.cfg.UserSlowdown)
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

// userFailure counts a failed attempt for user from src: towards putting
// the username under attack, and as a failing (username, source) pair.
func (g *Guard) userFailure(src netip.Prefix, user string, now int64) {
	if len(user) > maxUserLen {
		user = user[:maxUserLen]
	}
	us := g.userShard(user)
	us.mu.Lock()
	defer us.mu.Unlock()
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
		// Assigning through k would also store k's strings as the key
		// (Go updates a string-keyed map's key on assignment): user may
		// be a part of a whole request's text (package sipparse), which
		// the map would then keep alive. The key stored is a copy.
		k.user = strings.Clone(k.user)
		us.pairs[k] = now
	} else {
		if len(us.pairs) >= g.perShard {
			g.evictPairs(us, now)
		}
		if len(us.pairs) >= g.perShard {
			return
		}
		k.user = strings.Clone(user)
		us.pairs[k] = now
		g.pairs.Add(1)
	}
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
