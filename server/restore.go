package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// restorable keeps the stored bindings whose credential can still
// authenticate: it exists (with the id the binding names), is enabled, has
// not expired, and its connection is active. A crash between a change
// that ended a credential and the write of its binding removals would
// otherwise bring its registrations back, and calls to it would ring the
// phone of a deleted user (issue 15). Bindings without a credential id
// (an external issuer's token for a user without a credential) are kept.
//
// The AORs left with no binding are cleared in the store too, so that the
// next start does not read them again.
func restorable(db *store.DB, bs []store.Binding, now time.Time) ([]store.Binding, int, error) {
	usable := map[string]bool{}
	active := map[string]bool{}
	keptAOR := map[string]bool{}
	droppedAOR := map[string]bool{}
	kept := bs[:0]
	for _, b := range bs {
		if b.CredentialID == "" {
			kept = append(kept, b)
			continue
		}
		ok, seen := usable[b.CredentialID]
		if !seen {
			c, err := db.Credential(b.CredentialID)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return nil, 0, fmt.Errorf("credential %s of a stored binding: %w", b.CredentialID, err)
			default:
				a, seenConn := active[c.ConnectionID]
				if !seenConn {
					conn, err := db.Connection(c.ConnectionID)
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						return nil, 0, fmt.Errorf("connection %s of a stored binding: %w", c.ConnectionID, err)
					}
					a = err == nil && conn.Active
					active[c.ConnectionID] = a
				}
				ok = a && c.Enabled && !c.Expired(now) && c.Username == b.AOR
			}
			usable[b.CredentialID] = ok
		}
		if ok {
			kept = append(kept, b)
			keptAOR[b.AOR] = true
		} else {
			droppedAOR[b.AOR] = true
		}
	}
	dropped := len(bs) - len(kept)
	for aor := range droppedAOR {
		if !keptAOR[aor] {
			db.SaveBindings(aor, nil)
		}
	}
	if len(droppedAOR) > 0 {
		if err := db.FlushBindings(); err != nil {
			return nil, 0, fmt.Errorf("clear the bindings of unusable credentials: %w", err)
		}
	}
	return kept, dropped, nil
}

// withoutWebSocketBindings drops the stored bindings made over ws and wss
// and clears them from the store. A browser's Contact host is a random
// ".invalid" (RFC 7118 section 5): only the WebSocket it registered over
// reaches it, and no WebSocket outlives the process, so such a binding
// read at start can never be reached (the browser registers again over
// its next WebSocket). They are removed when their WebSocket closes, but
// a kill, or a shutdown that closes the store before the WebSockets, left
// them stored: restored, they listed as live registrations and took a
// slot of registrar.max_contacts until they expired. For a single node
// only: in a cluster, Redis holds the live WebSockets of the other nodes.
func withoutWebSocketBindings(db *store.DB, bs []store.Binding) ([]store.Binding, int, error) {
	touched := map[string]bool{}
	for _, b := range bs {
		if b.Transport == "ws" || b.Transport == "wss" {
			touched[b.AOR] = true
		}
	}
	if len(touched) == 0 {
		return bs, 0, nil
	}
	rest := map[string][]store.Binding{}
	kept := bs[:0]
	for _, b := range bs {
		if b.Transport == "ws" || b.Transport == "wss" {
			continue
		}
		kept = append(kept, b)
		if touched[b.AOR] {
			rest[b.AOR] = append(rest[b.AOR], b)
		}
	}
	dropped := len(bs) - len(kept)
	for aor := range touched {
		db.SaveBindings(aor, rest[aor])
	}
	if err := db.FlushBindings(); err != nil {
		return nil, 0, fmt.Errorf("clear the bindings of closed websockets: %w", err)
	}
	return kept, dropped, nil
}
