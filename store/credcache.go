package store

import (
	"sync"
	"sync/atomic"
)

// credCache keeps the credentials read by username, so that the REGISTER
// path does not open a bbolt read transaction and decode the record twice
// per digest flow. An entry is valid only while no record write committed
// since it was read: every write bumps the generation (DB.update), and an
// entry read under an older generation is read again. Readers take the
// generation before reading bbolt, so a write racing with a read leaves an
// entry that is already stale. Only found credentials are kept, so the
// cache is bounded by the credentials that exist; invalidate drops it all
// when it has grown past the limit.
type credCache struct {
	gen     atomic.Uint64
	mu      sync.RWMutex
	entries map[string]credEntry
}

type credEntry struct {
	gen  uint64
	cred Credential
}

// maxCredCache bounds the cache; past it, a write clears it.
const maxCredCache = 1 << 20

func (c *credCache) generation() uint64 { return c.gen.Load() }

func (c *credCache) get(username string) (Credential, bool) {
	c.mu.RLock()
	e, ok := c.entries[username]
	c.mu.RUnlock()
	if !ok || e.gen != c.gen.Load() {
		return Credential{}, false
	}
	return e.cred, true
}

// put stores a credential read under generation gen. The caller must not
// modify c's maps and slices afterwards: they are shared with every reader
// (the store never modifies a decoded record in place either).
func (c *credCache) put(username string, gen uint64, cred Credential) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[string]credEntry)
	}
	if len(c.entries) < maxCredCache {
		c.entries[username] = credEntry{gen: gen, cred: cred}
	}
	c.mu.Unlock()
}

// invalidate makes every entry stale.
func (c *credCache) invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	if len(c.entries) >= maxCredCache {
		c.entries = nil
	}
	c.mu.Unlock()
}
