// Package lifecycle owns the moment a credential stops being valid. Whether
// it was deleted, disabled, reached its expires_at, or its connection was
// deactivated, one call (Keeper.End) removes its bindings from the location
// table and ends its calls, ringing or answered, so that no device keeps
// receiving calls for a credential that can no longer authenticate. The
// management API calls it when it changes a credential; the Keeper's own
// timer calls it when an expiry passes.
package lifecycle

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// Reason says why a credential stopped being valid, in logs.
type Reason string

const (
	Deleted            Reason = "deleted"
	Disabled           Reason = "disabled"
	Expired            Reason = "expired"
	ConnectionInactive Reason = "connection_inactive"
	// TokensRevoked and OutsideAllowedCIDRs end some bindings of a
	// credential only (Keeper.Prune).
	TokensRevoked       Reason = "tokens_revoked"
	OutsideAllowedCIDRs Reason = "outside_allowed_cidrs"
)

// Bindings removes the bindings of an AOR: *registrar.Location.
type Bindings interface {
	// RemoveWhere removes those drop reports and returns them.
	RemoveWhere(aor string, drop func(store.Binding) bool) []store.Binding
	// Sync makes the removals durable: the bindings are written to the
	// store in batches, and a crash before the batch would bring a removed
	// binding back at the next start.
	Sync() error
}

// Calls ends the calls of a credential: *proxy.Dialogs.
type Calls interface {
	EndCredential(credentialID string) int
}

// ConnectionCalls ends the calls of a connection itself, not of one of
// its credentials: an ip connection's (a carrier's) calls. The proxy
// implements it; EndConnection uses it when the Calls given do.
type ConnectionCalls interface {
	EndConnection(connectionID string) int
}

// Credentials reads a credential back when its expiry is due (it may have
// changed since it was watched), and lists a connection's credentials:
// *store.DB.
type Credentials interface {
	Credential(id string) (store.Credential, error)
	Credentials(f store.CredentialFilter, p store.Page) ([]store.Credential, string, error)
}

// Keeper ends what credentials hold when they stop being valid. Safe for
// concurrent use.
type Keeper struct {
	bindings Bindings
	calls    Calls
	creds    Credentials
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	due     expiries
	wake    chan struct{}
	onEnded []func(store.Credential, Reason, []store.Binding)
}

// New returns a Keeper. calls may be nil (no proxy); now nil is time.Now;
// logger nil discards.
func New(b Bindings, calls Calls, creds Credentials, now func() time.Time, logger *slog.Logger) *Keeper {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Keeper{bindings: b, calls: calls, creds: creds, now: now, log: logger, wake: make(chan struct{}, 1)}
}

// SetCalls sets the calls to end (the proxy is built after the Keeper).
// Call it before serving.
func (k *Keeper) SetCalls(c Calls) { k.calls = c }

// OnEnded adds f to the functions called after End (metrics, webhooks)
// with the credential as it was, why, and the bindings End removed, in
// order, on End's goroutine. Call it before serving.
func (k *Keeper) OnEnded(f func(store.Credential, Reason, []store.Binding)) {
	k.onEnded = append(k.onEnded, f)
}

// End removes the bindings of c and ends its calls, ringing or answered,
// and returns once the removal is durable (an error when the store could
// not write it: the bindings are gone from memory all the same, and the
// next start drops those of an unusable credential anyway). It is
// idempotent: a credential with nothing left costs two lookups.
func (k *Keeper) End(c store.Credential, why Reason) error {
	gone := k.bindings.RemoveWhere(c.Username, func(store.Binding) bool { return true })
	n := len(gone)
	calls := 0
	if k.calls != nil {
		calls = k.calls.EndCredential(c.ID)
	}
	var err error
	if n > 0 {
		if err = k.bindings.Sync(); err != nil {
			err = fmt.Errorf("store the removal of %s's bindings: %w", c.Username, err)
			k.log.Error("credential ended, its bindings not stored", "credential_id", c.ID, "error", err)
		}
	}
	k.log.Info("credential ended", "credential_id", c.ID, "user", c.Username, "reason", string(why),
		"bindings", n, "calls", calls)
	for _, f := range k.onEnded {
		f(c, why, gone)
	}
	return err
}

// Prune removes the bindings of c that drop reports: registrations that
// would no longer authenticate, of a credential that still does (the
// tokens they were made with revoked, their source outside its
// connection's narrowed allowed_cidrs). The device would keep receiving
// calls until its next refresh, up to registrar.max_expires, otherwise.
// Its calls and other bindings stay. It returns once the removal is
// durable, and tells the OnEnded functions with the bindings removed.
func (k *Keeper) Prune(c store.Credential, why Reason, drop func(store.Binding) bool) error {
	gone := k.bindings.RemoveWhere(c.Username, func(b store.Binding) bool { return b.CredentialID == c.ID && drop(b) })
	if len(gone) == 0 {
		return nil
	}
	var err error
	if err = k.bindings.Sync(); err != nil {
		err = fmt.Errorf("store the removal of %s's bindings: %w", c.Username, err)
		k.log.Error("bindings removed, not stored", "credential_id", c.ID, "error", err)
	}
	k.log.Info("bindings removed", "credential_id", c.ID, "user", c.Username, "reason", string(why), "bindings", len(gone))
	for _, f := range k.onEnded {
		f(c, why, gone)
	}
	return err
}

// PruneConnection is Prune for every credential of a connection, and
// returns how many bindings went.
func (k *Keeper) PruneConnection(connectionID string, why Reason, drop func(store.Binding) bool) (int, error) {
	n := 0
	err := k.eachCredential(connectionID, func(c store.Credential) error {
		return k.Prune(c, why, func(b store.Binding) bool {
			if drop(b) {
				n++
				return true
			}
			return false
		})
	})
	return n, err
}

// EndConnection ends every credential of a connection that was
// deactivated, and the calls of the connection itself (an ip
// connection's), and returns how many credentials it ended.
func (k *Keeper) EndConnection(connectionID string) (int, error) {
	if cc, ok := k.calls.(ConnectionCalls); ok {
		if ended := cc.EndConnection(connectionID); ended > 0 {
			k.log.Info("connection's calls ended", "connection_id", connectionID, "calls", ended)
		}
	}
	n := 0
	err := k.eachCredential(connectionID, func(c store.Credential) error {
		if err := k.End(c, ConnectionInactive); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// eachCredential calls f for every credential of a connection, page by
// page, until f fails.
func (k *Keeper) eachCredential(connectionID string, f func(store.Credential) error) error {
	p := store.Page{Limit: 1000}
	for {
		cs, next, err := k.creds.Credentials(store.CredentialFilter{ConnectionID: connectionID}, p)
		if err != nil {
			return fmt.Errorf("list the credentials of connection %s: %w", connectionID, err)
		}
		for _, c := range cs {
			if err := f(c); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		p.After = next
	}
}

// Watch schedules c's expiry, if it has one in the future: when it passes,
// the Keeper reads c back and ends it if it is still expired. Call it for
// every credential created or updated (and for all of them at start).
// An expiry already passed is ended at once.
func (k *Keeper) Watch(c store.Credential) {
	if c.ExpiresAt.IsZero() {
		return
	}
	if c.Expired(k.now()) {
		_ = k.End(c, Expired) // logged by End
		return
	}
	k.mu.Lock()
	heap.Push(&k.due, expiry{at: c.ExpiresAt, id: c.ID})
	first := k.due[0].id == c.ID
	k.mu.Unlock()
	if first {
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
}

// Run ends credentials as their expiries pass, until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		for _, id := range k.popDue() {
			k.expire(id)
		}
		t.Reset(k.untilNext())
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
		case <-t.C:
		}
	}
}

// popDue removes and returns the ids whose expiry has passed.
func (k *Keeper) popDue() []string {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []string
	for len(k.due) > 0 && !now.Before(k.due[0].at) {
		ids = append(ids, heap.Pop(&k.due).(expiry).id)
	}
	return ids
}

func (k *Keeper) untilNext() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.due) == 0 {
		return time.Hour
	}
	return max(k.due[0].at.Sub(k.now()), time.Millisecond)
}

// expire ends the credential id if it is (still) expired: it may have
// been given a later expiry, or deleted, since it was watched.
func (k *Keeper) expire(id string) {
	c, err := k.creds.Credential(id)
	if errors.Is(err, store.ErrNotFound) {
		return // deleted: ended then
	}
	if err != nil {
		k.log.Error("read credential at its expiry", "credential_id", id, "error", err)
		return
	}
	if c.Expired(k.now()) {
		_ = k.End(c, Expired) // logged by End
	}
}

// expiry is one scheduled expiry; expiries is a min-heap by time.
type expiry struct {
	at time.Time
	id string
}

type expiries []expiry

func (e expiries) Len() int           { return len(e) }
func (e expiries) Less(i, j int) bool { return e[i].at.Before(e[j].at) }
func (e expiries) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *expiries) Push(x any)        { *e = append(*e, x.(expiry)) }
func (e *expiries) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}
