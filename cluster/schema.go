package cluster

// Every key and channel the cluster keeps in Redis.
const (
	prefix = "sipwarden:"
	// keySecret + name: a shared secret, hex (nonce_key, jwt_ed25519,
	// and with cluster.nonce_counts: cluster nonce_epoch). No expiry.
	keySecret = prefix + "secret:"
	// keySetting + name: a setting every node must share (SameSetting).
	keySetting = prefix + "setting:"
	// keyNC + nonce: the highest nonce count accepted for the nonce,
	// decimal; expires with the nonce (PXAT). Only with
	// cluster.nonce_counts: cluster.
	keyNC = prefix + "nc:"
	// keyFail + source + ":" + window number: failed attempts from the
	// source (an IPv4 address or an IPv6 /64) in one fixed window;
	// expires two windows after it starts.
	keyFail = prefix + "fail:"
	// keyBan + source: a live ban, JSON (banRecord); expires with it.
	keyBan = prefix + "ban:"
	// keyBanIndex: a sorted set of the sources of the bans under keyBan,
	// scored by their end (Unix ms), so that a node reloads the bans
	// without scanning the keyspace (a SCAN every 5 s per node walked
	// every binding and nonce-count key: 28% of redis-server's CPU under
	// REGISTER load).
	keyBanIndex = prefix + "banindex"
	// chanBans carries banMessage JSON: bans decided and lifted.
	chanBans = prefix + "bans"
)

// The shared records (records.go).
const (
	// keyRec + bucket: a hash holding the store bucket of that name, key
	// -> value, byte for byte (the store's binary encoding).
	keyRec = prefix + "rec:"
	// keyRecVersion: the number of record writes so far, decimal.
	keyRecVersion = prefix + "recversion"
	// keyRecLock: the cluster's record write lock, a token (the holder's
	// node name, "/", random hex);
	// expires after recLockTTL.
	keyRecLock = prefix + "reclock"
	// chanRecords carries recordMessage JSON: one write's changes.
	chanRecords = prefix + "records"
)

// The shared bindings (bindings.go).
const (
	// keyBinds + AOR: a hash of the AOR's bindings, ID -> store.Binding
	// JSON; expires with its latest binding (an expired field is dropped
	// when read). (Before hashes, keyBind + AOR held the whole set as one
	// string: a set another node wrote at the same moment replaced it.)
	keyBinds = prefix + "binds:"
	// chanBindings carries bindingBatch JSON: the changes one node made
	// to its AORs' bindings, written in one batch.
	chanBindings = prefix + "bindings"
)

// The nodes (nodes.go).
const (
	// keyNodes: a hash, node name -> nodeInfo JSON (its advertised
	// address and SIP listener addresses).
	keyNodes = prefix + "nodes"
	// keyAlive + node: set while the node runs; expires after aliveTTL.
	keyAlive = prefix + "alive:"
	// chanNodes carries the name of a node that announced itself: the
	// others read the nodes again at once rather than at their next tick.
	chanNodes = prefix + "nodes"
)

// The calls (calls.go).
const (
	// keyCalls + node: the node's live calls, JSON (the API's call list);
	// expires after aliveTTL unless renewed.
	keyCalls = prefix + "calls:"
	// chanCallEnd carries callEnd JSON: a call to end, by the node
	// relaying it.
	chanCallEnd = prefix + "callend"
)
