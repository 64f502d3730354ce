package store

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// CreateNumber assigns a number. n.Number must already be E.164 (the API
// normalises it, package e164); the store only refuses an empty one. It
// returns ErrExists when the number is assigned, ErrConnectionNotFound
// when n.ConnectionID names no connection, ErrCredentialNotFound when
// n.CredentialID names no credential of that connection.
func (db *DB) CreateNumber(n Number) (Number, error) {
	var out Number
	err := db.update(func(tx *bolt.Tx) error {
		nums := tx.Bucket(bucketNumbers)
		if err := checkNumber(tx, &n); err != nil {
			return fmt.Errorf("create number %q: %w", n.Number, err)
		}
		if nums.Get([]byte(n.Number)) != nil {
			return fmt.Errorf("create number %q: %w", n.Number, ErrExists)
		}
		setTimes(&n.CreatedAt, &n.UpdatedAt, db.now())
		return db.putNumber(nums, &n, &out)
	})
	if err != nil {
		return Number{}, err
	}
	return out, nil
}

// Number returns the assignment of the E.164 number, or ErrNotFound.
func (db *DB) Number(number string) (Number, error) {
	var n Number
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getNumber(tx.Bucket(bucketNumbers), number, &n)
	})
	return n, err
}

// NumberFilter selects numbers; empty fields match all.
type NumberFilter struct {
	ConnectionID string
	CredentialID string
}

// Numbers returns a page of numbers in number order and the cursor for
// the next page ("" after the last).
func (db *DB) Numbers(f NumberFilter, p Page) ([]Number, string, error) {
	limit := p.limit()
	var out []Number
	err := db.bolt.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketNumbers).Cursor()
		for k, v := seekAfter(cur, []byte(p.After)); k != nil && len(out) <= limit; k, v = cur.Next() {
			var n Number
			if err := decodeNumber(&n, v); err != nil {
				return fmt.Errorf("list numbers: %q: %w", k, err)
			}
			if f.ConnectionID != "" && n.ConnectionID != f.ConnectionID || f.CredentialID != "" && n.CredentialID != f.CredentialID {
				continue
			}
			out = append(out, n)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(out, limit, func(n *Number) string { return n.Number })
	return out, next, nil
}

// UpdateNumber applies fn to the stored assignment and stores the result
// (the same checks as CreateNumber), in one transaction. Number and
// CreatedAt are restored after fn.
func (db *DB) UpdateNumber(number string, fn func(*Number) error) (Number, error) {
	var out Number
	err := db.update(func(tx *bolt.Tx) error {
		nums := tx.Bucket(bucketNumbers)
		var n Number
		if err := getNumber(nums, number, &n); err != nil {
			return err
		}
		created := n.CreatedAt
		n.UpdatedAt = db.now()
		if err := fn(&n); err != nil {
			return err
		}
		n.Number, n.CreatedAt = number, created
		if err := checkNumber(tx, &n); err != nil {
			return fmt.Errorf("update number %q: %w", number, err)
		}
		return db.putNumber(nums, &n, &out)
	})
	if err != nil {
		return Number{}, err
	}
	return out, nil
}

// DeleteNumber removes an assignment, or returns ErrNotFound.
func (db *DB) DeleteNumber(number string) error {
	return db.update(func(tx *bolt.Tx) error {
		nums := tx.Bucket(bucketNumbers)
		if nums.Get([]byte(number)) == nil {
			return fmt.Errorf("delete number %q: %w", number, ErrNotFound)
		}
		if err := db.del(nums, bucketNumbers, []byte(number)); err != nil {
			return fmt.Errorf("store: delete number %q: %w", number, err)
		}
		return nil
	})
}

// checkNumber verifies the references of n inside tx.
func checkNumber(tx *bolt.Tx, n *Number) error {
	if n.Number == "" {
		return fmt.Errorf("%w: empty number", ErrInvalid)
	}
	if tx.Bucket(bucketConnections).Get([]byte(n.ConnectionID)) == nil {
		return fmt.Errorf("connection %q: %w", n.ConnectionID, ErrConnectionNotFound)
	}
	if n.CredentialID == "" {
		return nil
	}
	var c Credential
	if err := getCredential(tx.Bucket(bucketCredentials), []byte(n.CredentialID), &c); err != nil || c.ConnectionID != n.ConnectionID {
		return fmt.Errorf("credential %q of connection %q: %w", n.CredentialID, n.ConnectionID, ErrCredentialNotFound)
	}
	return nil
}

func getNumber(nums *bolt.Bucket, number string, n *Number) error {
	v := nums.Get([]byte(number))
	if v == nil {
		return fmt.Errorf("number %q: %w", number, ErrNotFound)
	}
	if err := decodeNumber(n, v); err != nil {
		return fmt.Errorf("number %q: %w", number, err)
	}
	return nil
}

func (db *DB) putNumber(nums *bolt.Bucket, n, out *Number) error {
	v := appendNumber(nil, n)
	if err := db.put(nums, bucketNumbers, []byte(n.Number), v); err != nil {
		return fmt.Errorf("store: put number %q: %w", n.Number, err)
	}
	return decodeNumber(out, v)
}

// Assignment is a number as the INVITE path needs it: its connection
// and, when it is assigned to a credential, that credential's ID and
// username (the AOR its devices register).
type Assignment struct {
	Number       string
	ConnectionID string
	CredentialID string
	Username     string
}

// routingIndex is an in-memory copy of what the INVITE path looks up on
// every call from a carrier: numbers and the addresses of active ip
// connections. It is rebuilt from bbolt, whole, by the first lookup after
// a record write (the connection cache's generation, cache.go): writes
// are rare and a rebuild reads the numbers and connections once.
type routingIndex struct {
	gen     uint64
	numbers map[string]Assignment
	// patterns are the assignments whose Number ends in "*", longest
	// prefix first.
	patterns []Assignment
	peers    []peer
	// webhooks: some active connection has a webhook URL.
	webhooks bool
}

type peer struct {
	prefix netip.Prefix
	conn   Connection
}

type routingCache struct {
	cur atomic.Pointer[routingIndex] // read without a lock: every INVITE and REGISTER
	mu  sync.Mutex                   // one rebuild at a time
}

// routing returns the current index, rebuilding it when a write
// committed since it was built.
func (db *DB) routing() (*routingIndex, error) {
	gen := db.conns.generation()
	if r := db.route.cur.Load(); r != nil && r.gen == gen {
		return r, nil
	}
	db.route.mu.Lock()
	defer db.route.mu.Unlock()
	if r := db.route.cur.Load(); r != nil && r.gen == gen {
		return r, nil
	}
	r := &routingIndex{gen: gen, numbers: map[string]Assignment{}}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		creds := tx.Bucket(bucketCredentials)
		err := tx.Bucket(bucketNumbers).ForEach(func(k, v []byte) error {
			var n Number
			if err := decodeNumber(&n, v); err != nil {
				return fmt.Errorf("number %q: %w", k, err)
			}
			a := Assignment{Number: n.Number, ConnectionID: n.ConnectionID, CredentialID: n.CredentialID}
			if n.CredentialID != "" {
				var c Credential
				if getCredential(creds, []byte(n.CredentialID), &c) == nil {
					a.Username = c.Username
				}
			}
			if strings.HasSuffix(n.Number, "*") {
				r.patterns = append(r.patterns, a)
				return nil
			}
			r.numbers[n.Number] = a
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
			var c Connection
			if err := decodeConnection(&c, v); err != nil {
				return fmt.Errorf("connection %q: %w", k, err)
			}
			// Inactive ones count: they still get the events of what
			// their deactivation ended (its calls' hang-ups, its
			// bindings' removals).
			if c.WebhookEventURL != "" {
				r.webhooks = true
			}
			if c.Kind != ConnectionIP || !c.Active {
				return nil
			}
			for _, s := range c.AllowedCIDRs {
				if p, err := netip.ParsePrefix(s); err == nil {
					r.peers = append(r.peers, peer{prefix: p.Masked(), conn: c})
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: build routing index: %w", err)
	}
	slices.SortStableFunc(r.patterns, func(a, b Assignment) int { return len(b.Number) - len(a.Number) })
	db.route.cur.Store(r)
	return r, nil
}

// AssignedNumber returns the assignment of an E.164 number from memory
// (rebuilt after a write): the number's own, else that of the longest
// pattern ("+1555123*") it matches; false when none or the index cannot
// be read (logged).
func (db *DB) AssignedNumber(number string) (Assignment, bool) {
	r, err := db.routing()
	if err != nil {
		db.log.Error("number lookup", "error", err)
		return Assignment{}, false
	}
	if a, ok := r.numbers[number]; ok {
		return a, true
	}
	for _, a := range r.patterns { // longest prefix first
		if strings.HasPrefix(number, a.Number[:len(a.Number)-1]) {
			return a, true
		}
	}
	return Assignment{}, false
}

// PeerConnection returns the active ip connection one of whose
// addresses (AllowedCIDRs) contains addr, from memory; the most specific
// prefix wins when several do.
func (db *DB) PeerConnection(addr netip.Addr) (Connection, bool) {
	r, err := db.routing()
	if err != nil {
		db.log.Error("peer lookup", "error", err)
		return Connection{}, false
	}
	addr = addr.Unmap()
	best := -1
	for i := range r.peers {
		if r.peers[i].prefix.Contains(addr) && (best < 0 || r.peers[i].prefix.Bits() > r.peers[best].prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return Connection{}, false
	}
	return r.peers[best].conn, true
}

// AnyWebhooks reports, from memory, whether some active connection has a
// webhook URL: when none has, the SIP path makes no webhook event at all.
func (db *DB) AnyWebhooks() bool {
	r, err := db.routing()
	return err == nil && r.webhooks
}
