package registrar

import (
	"fmt"

	"github.com/sipwarden/sipwarden/store"
)

// Connections is what the per-connection registration limit reads:
// *store.DB (Connection answers from its cache).
type Connections interface {
	Connection(id string) (store.Connection, error)
	Credentials(f store.CredentialFilter, p store.Page) ([]store.Credential, string, error)
}

// reasonConnectionRegistrations is the reason phrase of a REGISTER over
// its connection's max_registrations.
const reasonConnectionRegistrations = "Too Many Registrations For This Connection"

// maxLimitedCredentials bounds the walk over a limited connection's
// credentials: past it, the ones not walked are not counted.
const maxLimitedCredentials = 10000

// connectionBindings returns the bindings the credential's connection
// holds under AORs other than aor, and its max_registrations; (0, 0) for
// a connection without a limit, which costs one cached read. A limited
// connection's count walks its credentials (a bbolt read) and the
// location table: limits are for trunks with few credentials. Two
// REGISTERs of different AORs racing may both pass at the limit.
func (r *Registrar) connectionBindings(cred store.Credential, aor string) (others, limit int, err error) {
	if r.cfg.Connections == nil {
		return 0, 0, nil
	}
	conn, err := r.cfg.Connections.Connection(cred.ConnectionID)
	if err != nil || conn.MaxRegistrations <= 0 {
		return 0, 0, nil // a connection gone: auth refuses its credentials
	}
	p := store.Page{Limit: 1000}
	for walked := 0; walked < maxLimitedCredentials; {
		cs, next, err := r.cfg.Connections.Credentials(store.CredentialFilter{ConnectionID: conn.ID}, p)
		if err != nil {
			return 0, 0, fmt.Errorf("registration limit of connection %q: %w", conn.ID, err)
		}
		for _, c := range cs {
			if c.Username != aor {
				others += len(r.loc.Lookup(c.Username))
			}
		}
		walked += len(cs)
		if next == "" {
			break
		}
		p.After = next
	}
	return others, conn.MaxRegistrations, nil
}
