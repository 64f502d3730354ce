package server

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/wsgate"
)

// wsFlows remembers which AORs registered over each open WebSocket
// connection, so that its bindings go when it closes. A browser's Contact
// host is a random ".invalid" (RFC 7118 section 5): nothing but that
// connection reaches it, and it registers again over its next one.
type wsFlows struct {
	loc    *registrar.Location
	open   func(transport, source string) bool // the connection is still open
	log    *slog.Logger
	mu     sync.Mutex
	byFlow map[flowKey]map[string]struct{} // AORs registered over each flow
}

type flowKey struct{ transport, source string }

// maxAORsPerFlow bounds what one connection can make us remember; a
// connection that registers more AORs (each authenticated) loses the
// automatic removal of the extra ones, which then expire on their own.
const maxAORsPerFlow = 64

func newWSFlows(loc *registrar.Location, open func(transport, source string) bool, logger *slog.Logger) *wsFlows {
	return &wsFlows{loc: loc, open: open, log: logger, byFlow: map[flowKey]map[string]struct{}{}}
}

// registered is the registrar's OnEvent hook: a REGISTER over ws or wss
// that added or refreshed bindings ties its AOR to the connection.
func (f *wsFlows) registered(ev registrar.Event) {
	if (ev.Transport != "ws" && ev.Transport != "wss") || ev.Status != 200 || ev.Added+ev.Refreshed == 0 {
		return
	}
	k := flowKey{ev.Transport, ev.Source}
	f.mu.Lock()
	aors := f.byFlow[k]
	if aors == nil {
		aors = map[string]struct{}{}
		f.byFlow[k] = aors
	}
	if len(aors) < maxAORsPerFlow {
		aors[ev.AOR] = struct{}{}
	}
	f.mu.Unlock()
	// The connection may have closed while the REGISTER was answered,
	// before its AOR was remembered here.
	if !f.open(ev.Transport, ev.Source) {
		f.closed(ev.Transport, ev.Source)
	}
}

// closed is the gates' OnClosed hook: the connection's bindings go.
func (f *wsFlows) closed(transport, source string) {
	k := flowKey{transport, source}
	f.mu.Lock()
	aors := f.byFlow[k]
	delete(f.byFlow, k)
	f.mu.Unlock()
	for aor := range aors {
		if n := f.loc.RemoveFlow(aor, transport, source); n > 0 {
			f.log.Info("bindings removed: websocket closed", "aor", aor, "source", source, "transport", transport, "count", n)
		}
	}
}

// watchWebSockets ties the WebSocket gates' closed connections to the
// location table.
func (n *Node) watchWebSockets() {
	l := n.lis
	if l.ws == nil && l.wss == nil {
		return
	}
	open := func(transport, source string) bool {
		g := l.ws
		if transport == "wss" {
			g = l.wss
		}
		if g == nil {
			return false
		}
		_, ok := g.Handshake(source)
		return ok
	}
	n.flows = newWSFlows(n.loc, open, n.log.With("component", "websocket"))
	n.reg.OnEvent(n.flows.registered)
	closed := func(transport string, hs wsgate.Handshake) { n.flows.closed(transport, hs.Remote) }
	l.wsClosed.Store(&closed)
}

// wsRefused counts the WebSocket gates' refusals by metric reason.
func (o *observer) wsRefused(r wsgate.Reason) {
	switch r {
	case wsgate.RefusedSubprotocol:
		o.m.WebSocketRefused(metrics.WSSubprotocol)
	case wsgate.RefusedOrigin:
		o.m.WebSocketRefused(metrics.WSOrigin)
	case wsgate.RefusedPending, wsgate.RefusedPendingPerIP:
		o.m.WebSocketRefused(metrics.WSPending)
	case wsgate.ClosedTooLarge:
		o.m.WebSocketRefused(metrics.WSMessageSize)
	default:
		o.m.WebSocketRefused(metrics.WSHandshake)
	}
}

// publicTargets finds the connection that made a target public
// (store.Connection.PublicTargets) for the proxy's anonymous calls. A
// username is looked up through its credential (cached by the store), and
// counts only when its own connection lists it; a number is searched
// among the connections (anonymous calls are rate-limited per source).
type publicTargets struct{ db *store.DB }

func (p publicTargets) PublicTarget(target string) (string, bool) {
	if cred, err := p.db.CredentialByUsername(target); err == nil {
		conn, err := p.db.Connection(cred.ConnectionID)
		if err != nil || !conn.Active || !slices.Contains(conn.PublicTargets, target) || !cred.Enabled {
			return "", false
		}
		return conn.ID, true
	}
	page := store.Page{Limit: 1000}
	for range 1000 { // at most a million connections
		cs, next, err := p.db.Connections(page)
		if err != nil {
			return "", false
		}
		for _, c := range cs {
			if c.Active && slices.Contains(c.PublicTargets, target) {
				return c.ID, true
			}
		}
		if next == "" {
			break
		}
		page.After = next
	}
	return "", false
}
