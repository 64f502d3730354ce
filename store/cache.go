package store

import (
	"strings"
	"sync"
	"sync/atomic"
)

// recordCache keeps records read by a key (credentials by username,
// connections by ID), so that the REGISTER path does not open a bbolt read
// transaction and decode a record per request: a digest flow reads the
// credential twice and, for its IP allow-list, its connection once. An
// entry is valid only while no record write committed since it was read:
// every write bumps the generation (DB.update), and an entry read under an
// older generation is read again. Readers take the generation before
// reading bbolt, so a write racing with a read leaves an entry that is
// already stale. Only found records are kept, so the cache is bounded by
// the records that exist; invalidate drops it all when it has grown past
// the limit.
type recordCache[T any] struct {
	gen     atomic.Uint64
	mu      sync.RWMutex
	entries map[string]cacheEntry[T]
}

type cacheEntry[T any] struct {
	gen uint64
	v   T
}

// maxCacheEntries bounds a cache; past it, a write clears it.
const maxCacheEntries = 1 << 20

func (c *recordCache[T]) generation() uint64 { return c.gen.Load() }

func (c *recordCache[T]) get(key string) (T, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || e.gen != c.gen.Load() {
		var zero T
		return zero, false
	}
	return e.v, true
}

// put stores a record read under generation gen. The caller must not
// modify v's maps and slices afterwards: they are shared with every reader
// (the store never modifies a decoded record in place either).
func (c *recordCache[T]) put(key string, gen uint64, v T) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[string]cacheEntry[T])
	}
	if len(c.entries) < maxCacheEntries {
		// A copy: key may be a part of a whole request's text (package
		// sipparse), which the map would keep alive.
		c.entries[strings.Clone(key)] = cacheEntry[T]{gen: gen, v: v}
	}
	c.mu.Unlock()
}

// invalidate makes every entry stale.
func (c *recordCache[T]) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	if len(c.entries) >= maxCacheEntries {
		c.entries = nil
	}
	c.mu.Unlock()
}

// missCache remembers usernames that have no credential, so that a
// REGISTER for an unknown user costs what one for a known user does (a
// map lookup) instead of a bbolt read transaction: the ~20 microseconds
// between them told a prober which usernames exist (issue 15). An entry
// is valid only under the credential cache's generation it was read in
// (a credential created since makes it stale). Its size is bounded:
// usernames are chosen by whoever sends a REGISTER, so when it is full it
// starts over.
type missCache struct {
	mu      sync.RWMutex
	entries map[string]uint64 // username -> generation
}

// maxMisses bounds the miss cache.
const maxMisses = 1 << 16

func (c *missCache) has(username string, gen uint64) bool {
	c.mu.RLock()
	g, ok := c.entries[username]
	c.mu.RUnlock()
	return ok && g == gen
}

func (c *missCache) put(username string, gen uint64) {
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= maxMisses {
		c.entries = make(map[string]uint64)
	}
	c.entries[strings.Clone(username)] = gen // as in recordCache.put
	c.mu.Unlock()
}
