package proxy

import (
	"net/netip"
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
	caps *callCaps
	cred string
	src  netip.Addr
	conn string
	once sync.Once
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

// acquire takes a count for a call of credential cred ("" for a trusted
// peer) from src (invalid: not counted) on connection conn, whose own cap
// is connMax (0: none; the connection is counted only when it has one),
// or returns the reason phrase of the cap it would pass.
func (c *callCaps) acquire(cred string, src netip.Addr, conn string, connMax int) (*capHold, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if connMax <= 0 {
		conn = ""
	}
	if cred != "" && c.perCred > 0 && c.cred[cred] >= c.perCred {
		return nil, reasonCredentialCalls
	}
	if conn != "" && c.conn[conn] >= connMax {
		return nil, reasonConnectionCalls
	}
	if src.IsValid() && c.perSrc > 0 && c.src[src] >= c.perSrc {
		return nil, reasonSourceCalls
	}
	if cred != "" {
		c.cred[cred]++
	}
	if conn != "" {
		c.conn[conn]++
	}
	if src.IsValid() {
		c.src[src]++
	}
	return &capHold{caps: c, cred: cred, src: src, conn: conn}, ""
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
		if h.conn != "" {
			if c.conn[h.conn]--; c.conn[h.conn] <= 0 {
				delete(c.conn, h.conn)
			}
		}
		if h.src.IsValid() {
			if c.src[h.src]--; c.src[h.src] <= 0 {
				delete(c.src, h.src)
			}
		}
	})
}
