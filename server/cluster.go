package server

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/admission"
	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/guard"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/metrics"
	"github.com/sipwarden/sipwarden/proxy"
	"github.com/sipwarden/sipwarden/registrar"
	"github.com/sipwarden/sipwarden/reply"
	"github.com/sipwarden/sipwarden/store"
)

// A cluster node's REGISTER is answered once its binding set is in Redis
// (cluster/bindings_commit.go).
var _ registrar.Durable = (*cluster.Bindings)(nil)

// clusterWorkersPerCPU is how many stateless REGISTER workers a cluster
// node runs per core (a single node: one). A REGISTER's wait for its
// binding to be in Redis is deferred to the end of its worker's round
// (registrar.Deferrer), where the round's REGISTERs wait together; with
// more workers than that needs, each takes one REGISTER per round, and
// neither the waits nor the answers' sendmmsg batches are shared. At a
// fixed 10,000 REGISTER flows/s over UDP a node with 8 per core spent
// 0.098-0.101 ms of CPU per flow, with 64 per core 0.105-0.106, with 2
// per core 0.099-0.100 but retransmissions in one run of two (docs/bench.md,
// cluster).
const clusterWorkersPerCPU = 8

// clusterCountsWorkersPerCPU is the same with cluster.nonce_counts:
// cluster, where a REGISTER also waits for its nonce count in Redis while
// its worker handles it (a wait not deferred): with 16 per core those
// waits, not the CPU, capped a node at about 10,000 REGISTER flows/s with
// CPU to spare. A worker is a goroutine: 128 of them cost about a
// megabyte.
const clusterCountsWorkersPerCPU = 64

// openCluster connects to the cluster's Redis when cluster.redis_url is
// set, waiting while it does not answer with /readyz telling why, and
// shares the guard's bans through it.
func (n *Node) openCluster(ctx context.Context) error {
	cc := n.cfg.Cluster
	if !cc.Enabled() {
		return nil
	}
	c, err := cluster.Open(ctx, cluster.Config{
		URL: cc.RedisURL, Node: cc.NodeName, Advertise: cc.Advertise, Timeout: cc.Timeout.D(),
		Logger: n.log.With("component", "cluster"),
	}, func(reason string) { n.obs.ready.NotReady("cluster", "redis: "+reason) })
	if err != nil {
		return err
	}
	n.obs.ready.Ready("cluster")
	n.cl = c
	n.closer = append(n.closer, func() {
		c.Leave(context.Background()) // after runCtx's cancel: presence stopped
		if err := c.Close(); err != nil {
			n.log.Error("close redis client", "error", err)
		}
	})
	n.records = c.Records(n.db, n.appliedElsewhere)
	n.records.OnReseeded(n.reseeded)
	seeded, err := n.records.Join(ctx)
	if err != nil {
		return fmt.Errorf("join the cluster's records: %w", err)
	}
	if seeded {
		n.log.Info("this node's records seeded the cluster's redis", "node", cc.NodeName)
	}
	n.db.SetReplicator(n.records)
	var sipAddrs []string
	addrs := n.bindingAddrs()
	for _, tp := range []string{"udp", "tcp", "tls", "ws", "wss"} {
		if a := addrs[tp]; a != "" {
			sipAddrs = append(sipAddrs, a)
		}
	}
	if err := c.Announce(ctx, sipAddrs); err != nil {
		return fmt.Errorf("announce this node: %w", err)
	}
	gc := n.cfg.Guard
	n.bans = c.Bans(n.guard, cluster.BanConfig{
		MaxFailures: gc.MaxFailures, Window: gc.Window.D(), BanDuration: gc.BanDuration.D(),
	})
	return nil
}

// clusterNonces returns a cluster node's nonces and counts, with the
// shared nonce key: auth.nonce_key when set (every node must then have
// the same), else the first node's.
//
// With cluster.nonce_counts: node (the default) the node issues nonces in
// an epoch of its own, drawn at each start (digest.NewNonces), and keeps
// their counts in memory, exactly as a single node does: authentication
// needs no Redis round trip. A nonce of another node (or of this one
// before a restart) has another epoch: a correct answer to it is stale,
// challenged again with stale=true (RFC 7616 section 3.3), so an answer
// accepted by one node and replayed to another is refused, and a client
// that moves between nodes pays one more challenge. With cluster: the
// nodes share the epoch and check every count in Redis (cluster.Nonces).
func (n *Node) clusterNonces(ctx context.Context, key []byte) (auth.Nonces, auth.Counter, error) {
	// The realm first: the nonces and every stored HA1 are for one.
	if err := n.cl.SameSetting(ctx, cluster.SettingRealm, n.cfg.SIP.Realm); err != nil {
		return nil, nil, fmt.Errorf("config: sip.realm: %w", err)
	}
	key, err := n.cl.Secret(ctx, cluster.SecretNonceKey, key, n.cfg.Auth.NonceKey != "")
	if err != nil {
		if n.cfg.Auth.NonceKey != "" {
			return nil, nil, fmt.Errorf("config: auth.nonce_key: %w", err)
		}
		return nil, nil, err
	}
	n.nonceKey = key
	lifetime := n.cfg.Auth.NonceLifetime.D()
	if n.cfg.Cluster.NonceCounts == config.NonceCountsCluster {
		cn, err := n.cl.Nonces(ctx, key, lifetime, nil)
		if err != nil {
			return nil, nil, err
		}
		return cn, cn, nil
	}
	dn, err := digest.NewNonces(key, lifetime, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("nonces: %w", err)
	}
	return dn, auth.LocalCounts(digest.NewCountsFor(dn, n.cfg.Auth.MaxNonceCounts, nil)), nil
}

// sharedJWTSeed returns the cluster's Ed25519 JWT seed: the first node's
// own (so that the tokens it issued before joining stay valid).
func (n *Node) sharedJWTSeed(ctx context.Context) func(seed []byte) ([]byte, error) {
	if n.cl == nil {
		return nil
	}
	return func(seed []byte) ([]byte, error) {
		got, err := n.cl.Secret(ctx, cluster.SecretJWTKey, seed, false)
		if err == nil {
			n.jwtSeed = got // stored again if Redis loses it (reseeded)
		}
		return got, err
	}
}

// clusterMember reports the addresses of the cluster's other live nodes
// (their advertise and listener IPs, from the table the presence loop
// refreshes every second): the first test a relay must pass before its
// mark is checked (ownFlows.relayed, relayMarks). An address alone
// proves nothing over UDP.
func (n *Node) clusterMember(addr netip.Addr) bool {
	return n.cl != nil && n.cl.Member(addr)
}

// clusterAttempt counts a failed authentication in the cluster's shared
// window too.
func (n *Node) clusterAttempt(at auth.Attempt) {
	if !at.Outcome.Failure() {
		return
	}
	if ap, err := netip.ParseAddrPort(at.Source); err == nil {
		n.bans.Failure(ap.Addr())
	}
}

// runCluster runs the shared bans and the watch on Redis behind /readyz.
func (n *Node) runCluster(ctx context.Context) {
	if n.cl == nil {
		return
	}
	go n.bans.Run(ctx)
	go n.records.Run(ctx)
	go n.shared.Run(ctx)
	go n.cl.RunPresence(ctx)
	calls := n.callList()
	go n.cl.RunCalls(ctx, calls.snapshot, calls.endOwn)
	n.cl.OnRecovered(func() { go n.records.CatchUp(ctx) })
	go n.cl.Watch(ctx, time.Second, func(err error) {
		if err != nil {
			n.obs.ready.NotReady("cluster", "redis: "+err.Error())
			return
		}
		n.obs.ready.Ready("cluster")
	})
}

// clusterBans serves the API's bans from the cluster (api.Bans): lifting
// through any node lifts on all.
type clusterBans struct{ b *cluster.Bans }

func (c clusterBans) Bans() []guard.Ban                  { return c.b.List() }
func (c clusterBans) Lift(addr netip.Addr) (bool, error) { return c.b.Lift(addr) }

// appliedElsewhere acts on this node on what writes through other nodes
// did to credentials: a deleted or disabled one's bindings and calls here
// end, a new or changed one's expiry is watched.
func (n *Node) appliedElsewhere(eff store.Effect) {
	if n.keeper == nil {
		return // still starting: nothing is bound yet
	}
	for _, c := range eff.Deleted {
		if err := n.keeper.End(c, lifecycle.Deleted); err != nil {
			n.log.Error("end a credential deleted through another node", "user", c.Username, "error", err)
		}
	}
	for _, c := range eff.Written {
		if !c.Enabled {
			// Disabled elsewhere: its calls through this node end too.
			if err := n.keeper.End(c, lifecycle.Disabled); err != nil {
				n.log.Error("end a credential disabled through another node", "user", c.Username, "error", err)
			}
			continue
		}
		n.keeper.Watch(c) // ends it at once when expired
	}
}

// clusterGate answers REGISTER and out-of-dialog INVITE 503 with
// Retry-After while Redis is known to be down (a command failed, or the
// watch's last ping): their state could be neither checked nor stored.
// Requests inside a dialog go on: they need nothing from Redis. Service
// resumes when the watch sees Redis answer (within a second).
func (n *Node) clusterGate(next admission.Handler) admission.Handler {
	replies := reply.Builder{Server: n.cfg.SIP.UserAgent}
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !n.cl.Down() || !needsRedis(req) {
			next(req, tx)
			return
		}
		n.obs.m.Rejected(metrics.RejectCluster)
		res := replies.New(req, 503, "Service Unavailable")
		res.AppendHeader(sip.NewHeader("Retry-After", "5"))
		if err := tx.Respond(res); err != nil {
			n.log.Debug("send refusal", "source", req.Source(), "status", 503, "error", err)
		}
	}
}

func needsRedis(req *sip.Request) bool {
	switch req.Method {
	case sip.REGISTER:
		return true
	case sip.INVITE:
		to := req.To()
		return to == nil || !to.Params.Has("tag")
	}
	return false
}

// loadBindings returns the bindings to restore at start: from bbolt, or
// in a cluster from Redis only (a binding deleted through another node
// while this one was down must not come back from its file).
func (n *Node) loadBindings(ctx context.Context, now time.Time) ([]store.Binding, error) {
	if n.shared != nil {
		bs, err := n.shared.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("load bindings from redis: %w", err)
		}
		return bs, nil
	}
	bs, err := n.db.LoadBindings(now)
	if err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	return bs, nil
}

// locator is the location table as the proxy sees it. In a cluster: UDP
// bindings are reached straight from any node; a binding over a
// connection (TCP, TLS, WebSocket) is reached through the node holding it
// (its LocalAddr is one of that node's listeners): the INVITE goes to
// that node's cluster.advertise with the AOR as Request-URI, marked
// relayed (relayParam), and that node sends it down its own flows only.
// That node trusts the relay when it comes over UDP from a live node
// (clusterMember) with a valid mark (relayMarks). A call to an AOR with devices on several nodes rings
// them all: the ones this node reaches, and one relayed branch per other
// node holding some of its connections (RFC 3261 16.6: each is a branch
// of this node's fork). A connection binding of a dead node is left out.
func (n *Node) locator() proxy.Locator {
	if n.cl == nil {
		return n.loc
	}
	own := map[string]bool{}
	for _, a := range n.bindingAddrs() {
		own[a] = true
	}
	return ownFlows{loc: n.loc, own: own, peer: n.cl.PeerAt, member: n.clusterMember, domain: n.cfg.SIP.Domain,
		marks: newRelayMarks(n.nonceKey)} // the key is known: newAuth ran before
}

// relayParam marks the Request-URI of a request a node relays to the node
// holding some of the AOR's connections: that node delivers it down its
// own connections only, so that a relayed request is never relayed again
// nor rings a UDP device the relaying node rang itself. Its value is a
// mark signed with the cluster's key (relayMarks).
const relayParam = "sw-relayed"

type ownFlows struct {
	loc    *registrar.Location
	own    map[string]bool
	peer   func(localAddr string) (advertise string, ok bool)
	member func(netip.Addr) bool // a live node's address; nil: none
	domain string
	marks  relayMarks
}

// LookupFor is Lookup, except for a request another node of the cluster
// relayed (proxy.RequestLocator): that one gets only the bindings over
// this node's own connections.
func (o ownFlows) LookupFor(req *sip.Request, aor string) []store.Binding {
	if o.relayed(req) {
		return o.held(aor)
	}
	return o.lookup(aor, req)
}

// relayed reports whether req was relayed by a live node: over UDP, from
// a node's address, to the cluster's domain, with a valid mark for this
// call to its Request-URI's user (the address alone is forged too easily
// over UDP: relayMarks).
func (o ownFlows) relayed(req *sip.Request) bool {
	if req == nil || !strings.EqualFold(req.Transport(), "udp") || !strings.EqualFold(req.Recipient.Host, o.domain) {
		return false
	}
	v, ok := req.Recipient.UriParams.Get(relayParam)
	if !ok {
		return false
	}
	ap, err := netip.ParseAddrPort(req.Source())
	return err == nil && o.member != nil && o.member(ap.Addr().Unmap()) && o.marks.valid(relayOf(req, req.Recipient.User, o.domain), v)
}

// relayOf is what the mark of req's relay to aor at domain binds.
func relayOf(req *sip.Request, aor, domain string) relayed {
	r := relayed{aor: aor, host: domain}
	if req == nil {
		return r
	}
	if id := req.CallID(); id != nil {
		r.callID = id.Value()
	}
	if f := req.From(); f != nil {
		r.fromTag, _ = f.Params.Get("tag")
	}
	return r
}

// held returns aor's bindings over this node's own connections.
func (o ownFlows) held(aor string) []store.Binding {
	bs := o.loc.Lookup(aor)
	var out []store.Binding
	for _, b := range bs {
		if b.Transport != "udp" && b.LocalAddr != "" && o.own[b.LocalAddr] {
			out = append(out, b)
		}
	}
	return out
}

// Lookup is lookup without a request: its relays' marks name no call,
// and the node relayed to takes them for no call.
func (o ownFlows) Lookup(aor string) []store.Binding { return o.lookup(aor, nil) }

// lookup returns aor's bindings this node reaches itself, and for each
// other live node holding some of its connections one binding that
// relays req there, marked (relayMarks).
func (o ownFlows) lookup(aor string, req *sip.Request) []store.Binding {
	bs := o.loc.Lookup(aor)
	var (
		out  []store.Binding
		seen map[string]bool
	)
	for i, b := range bs {
		if o.reachable(b) {
			if out != nil {
				out = append(out, b)
			}
			continue
		}
		if out == nil {
			out = append(make([]store.Binding, 0, len(bs)), bs[:i]...)
		}
		adv, ok := "", false
		if o.peer != nil {
			adv, ok = o.peer(b.LocalAddr)
		}
		if !ok || seen[adv] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[adv] = true
		hop := b
		hop.Contact = "sip:" + aor + "@" + o.domain + ";" + relayParam + "=" + o.marks.sign(relayOf(req, aor, o.domain))
		hop.Source, hop.Transport, hop.LocalAddr = adv, "udp", ""
		out = append(out, hop)
	}
	if out == nil {
		return bs // all reachable here
	}
	return out
}

func (o ownFlows) reachable(b store.Binding) bool {
	return b.Transport == "udp" || b.LocalAddr == "" || o.own[b.LocalAddr]
}

// reseeded puts back into Redis, after it came back empty and this node
// seeded it again with its records, what else it lost that this node
// holds: the JWT seed, the bans, the whole location table.
func (n *Node) reseeded() {
	if n.loc == nil || n.shared == nil {
		return // still starting: nothing bound
	}
	if n.jwtSeed != nil {
		if _, err := n.cl.Secret(context.Background(), cluster.SecretJWTKey, n.jwtSeed, false); err != nil {
			n.log.Warn("jwt key not stored again", "error", err)
		}
	}
	// The nonce key too: a node starting now must sign with the running
	// nodes' key (with nonce_counts: cluster, Nonces.follow stores it
	// again as well, when it finds the epoch gone).
	if n.nonceKey != nil {
		if _, err := n.cl.Secret(context.Background(), cluster.SecretNonceKey, n.nonceKey, false); err != nil {
			n.log.Warn("nonce key not stored again", "error", err)
		}
	}
	if err := n.cl.SameSetting(context.Background(), cluster.SettingRealm, n.cfg.SIP.Realm); err != nil {
		n.log.Warn("realm not stored again", "error", err)
	}
	n.bans.Reshare()
	byAOR := map[string][]store.Binding{}
	for _, b := range n.loc.Bindings("") {
		byAOR[b.AOR] = append(byAOR[b.AOR], b)
	}
	for aor, bs := range byAOR {
		n.shared.SaveBindings(aor, nil, bs)
	}
	n.log.Warn("bindings written to redis again", "aors", len(byAOR))
}
