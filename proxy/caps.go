package proxy

import (
	"net/netip"
	"slices"
	"sync"
)

// callCaps counts the calls (INVITEs forwarded and not yet failed, and
// the dialogs their 2xx established) of each caller credential and each
// source address, so that one account or one address cannot hold every
// call the server can carry (issue 15: 40 ringing calls of one user used
// to take every in-flight slot). A count is taken when an INVITE is
// forwarded and given back when it fails, or when the dialog of its 2xx
// ends.
type callCaps struct {
	perCred, perSrc int // 0: no cap
	mu              sync.Mutex
	cred            map[string]int
	src             map[netip.Addr]int
	conn            map[string]int
}

// capHold is one call's count; release gives it back once.
type capHold struct {
	caps  *callCaps
	cred  string
	src   netip.Addr
	conns []string // connections counted
	once  sync.Once
}

// The reason phrases of a refusal name the limit (503, RFC 3261 21.5.4).
const (
	reasonCredentialCalls = "Too Many Calls For This Credential"
	reasonSourceCalls     = "Too Many Calls From This Address"
	reasonConnectionCalls = "Too Many Calls For This Connection"
)

func newCallCaps(perCred, perSrc int) *callCaps {
	return &callCaps{perCred: perCred, perSrc: perSrc, cred: map[string]int{}, src: map[netip.Addr]int{}, conn: map[string]int{}}
}

// connCap is a connection a call counts against, with its max_calls.
type connCap struct {
	id  string
	max int // 0: no cap, not counted
}

// acquire takes a count for a call of credential cred ("" for a trusted
// peer) from src (invalid: not counted) on the connections it concerns
// (the caller's and the callee's: a trunk's calls both ways count against
// its max_calls; one without a cap is not counted), or returns the reason
// phrase of the cap it would pass.
func (c *callCaps) acquire(cred string, src netip.Addr, conns ...connCap) (*capHold, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cred != "" && c.perCred > 0 && c.cred[cred] >= c.perCred {
		return nil, reasonCredentialCalls
	}
	var counted []string
	for _, cc := range conns {
		if cc.max <= 0 || cc.id == "" || slices.Contains(counted, cc.id) {
			continue
		}
		if c.conn[cc.id] >= cc.max {
			return nil, reasonConnectionCalls
		}
		counted = append(counted, cc.id)
	}
	if src.IsValid() && c.perSrc > 0 && c.src[src] >= c.perSrc {
		return nil, reasonSourceCalls
	}
	if cred != "" {
		c.cred[cred]++
	}
	for _, id := range counted {
		c.conn[id]++
	}
	if src.IsValid() {
		c.src[src]++
	}
	return &capHold{caps: c, cred: cred, src: src, conns: counted}, ""
}

// release gives the count back; safe on nil and more than once.
func (h *capHold) release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		c := h.caps
		c.mu.Lock()
		defer c.mu.Unlock()
		if h.cred != "" {
			if c.cred[h.cred]--; c.cred[h.cred] <= 0 {
				delete(c.cred, h.cred)
			}
		}
		for _, id := range h.conns {
			if c.conn[id]--; c.conn[id] <= 0 {
				delete(c.conn, id)
			}
		}
		if h.src.IsValid() {
			if c.src[h.src]--; c.src[h.src] <= 0 {
				delete(c.src, h.src)
			}
		}
	})
}
