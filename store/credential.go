package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// CredentialFilter selects credentials in Credentials. Empty fields match
// everything; set fields must all match.
type CredentialFilter struct {
	ConnectionID string
	Tag          string
	Username     string
	Enabled      *bool
}

func (f *CredentialFilter) match(c *Credential) bool {
	return (f.ConnectionID == "" || c.ConnectionID == f.ConnectionID) &&
		(f.Tag == "" || c.Tag == f.Tag) &&
		(f.Username == "" || c.Username == f.Username) &&
		(f.Enabled == nil || c.Enabled == *f.Enabled)
}

// credBuckets are the buckets a credential write touches.
type credBuckets struct {
	creds, names, byConn, conns *bolt.Bucket
}

func credentialBuckets(tx *bolt.Tx) credBuckets {
	return credBuckets{
		creds:  tx.Bucket(bucketCredentials),
		names:  tx.Bucket(bucketCredentialUsernames),
		byConn: tx.Bucket(bucketCredentialsByConnection),
		conns:  tx.Bucket(bucketConnections),
	}
}

// CreateCredential stores a new credential, fsynced before it returns. It
// assigns the ID when c.ID is empty (ErrExists when a given one is taken)
// and sets CreatedAt and UpdatedAt when they are zero. It returns
// ErrUsernameTaken when any credential has the username,
// ErrConnectionNotFound when c.ConnectionID names no connection, and
// ErrInvalid for an empty username. It returns the credential as stored.
func (db *DB) CreateCredential(c Credential) (Credential, error) {
	if err := checkUsername(c.Username); err != nil {
		return Credential{}, fmt.Errorf("create credential: %w", err)
	}
	if c.ID != "" {
		if err := checkID(c.ID); err != nil {
			return Credential{}, fmt.Errorf("create credential %q: %w", c.ID, err)
		}
	}
	var out Credential
	err := db.update(func(tx *bolt.Tx) error { return db.createCredentialTx(tx, c, &out) })
	if err != nil {
		return Credential{}, err
	}
	return out, nil
}

// createCredentialTx is CreateCredential inside tx; c has been checked.
func (db *DB) createCredentialTx(tx *bolt.Tx, c Credential, out *Credential) error {
	b := credentialBuckets(tx)
	if b.conns.Get([]byte(c.ConnectionID)) == nil {
		return fmt.Errorf("create credential %q: connection %q: %w", c.Username, c.ConnectionID, ErrConnectionNotFound)
	}
	if b.names.Get([]byte(c.Username)) != nil {
		return fmt.Errorf("create credential %q: %w", c.Username, ErrUsernameTaken)
	}
	now := db.now()
	if c.ID == "" {
		id, err := db.newID(tx, now)
		if err != nil {
			return err
		}
		c.ID = id
	} else if b.creds.Get([]byte(c.ID)) != nil {
		return fmt.Errorf("create credential %q: %w", c.ID, ErrExists)
	}
	setTimes(&c.CreatedAt, &c.UpdatedAt, now)
	if err := db.put(b.names, bucketCredentialUsernames, []byte(c.Username), []byte(c.ID)); err != nil {
		return fmt.Errorf("store: put username %q: %w", c.Username, err)
	}
	if err := db.put(b.byConn, bucketCredentialsByConnection, connectionKey(c.ConnectionID, c.ID), nil); err != nil {
		return fmt.Errorf("store: put connection index of credential %q: %w", c.ID, err)
	}
	return db.putCredential(b.creds, &c, out)
}

// Credential returns the credential with the ID, or ErrNotFound.
func (db *DB) Credential(id string) (Credential, error) {
	var c Credential
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getCredential(tx.Bucket(bucketCredentials), []byte(id), &c)
	})
	return c, err
}

// CredentialByUsername returns the credential with the username, or
// ErrNotFound. It runs on every REGISTER and challenged request (twice per
// digest flow), so it answers from the credential cache when no record
// was written since the entry was read (cache.go). The returned
// credential's HA1 map and Algorithms slice are shared: do not modify them.
func (db *DB) CredentialByUsername(username string) (Credential, error) {
	if c, ok := db.creds.get(username); ok {
		return c, nil
	}
	gen := db.creds.generation()
	if db.misses.has(username, gen) {
		return Credential{}, errNoUsername
	}
	c, err := db.credentialByUsername(username)
	switch {
	case err == nil:
		db.creds.put(username, gen, c)
	case errors.Is(err, ErrNotFound):
		db.misses.put(username, gen)
	}
	return c, err
}

// errNoUsername is CredentialByUsername's answer from the miss cache: it
// does not name the username, so that it costs no allocation.
var errNoUsername = fmt.Errorf("credential by username: %w", ErrNotFound)

// credentialByUsername reads the credential from bbolt: one read
// transaction, two lookups, and a decode that allocates the strings once.
func (db *DB) credentialByUsername(username string) (Credential, error) {
	tx, err := db.bolt.Begin(false)
	if err != nil {
		return Credential{}, fmt.Errorf("store: credential by username: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	id := tx.Bucket(bucketCredentialUsernames).Get([]byte(username))
	if id == nil {
		return Credential{}, fmt.Errorf("credential with username %q: %w", username, ErrNotFound)
	}
	v := tx.Bucket(bucketCredentials).Get(id)
	if v == nil {
		return Credential{}, fmt.Errorf("username %q: %w: index names missing credential %q", username, ErrCorrupt, id)
	}
	var c Credential
	if err := decodeCredential(&c, v); err != nil {
		return Credential{}, fmt.Errorf("credential %q: %w", id, err)
	}
	return c, nil
}

// Credentials returns a page of the credentials that match f, in ID
// order, and the cursor for the next page ("" after the last). A filter on
// Username or ConnectionID reads only that username's or connection's
// credentials; Tag and Enabled are checked on each credential read.
func (db *DB) Credentials(f CredentialFilter, p Page) ([]Credential, string, error) {
	limit := p.limit()
	var out []Credential
	// add decodes and keeps one credential if it matches; it reports
	// whether the page (plus the one that shows there is more) is full.
	add := func(k, v []byte) (bool, error) {
		var c Credential
		if err := decodeCredential(&c, v); err != nil {
			return false, fmt.Errorf("list credentials: %q: %w", k, err)
		}
		if f.match(&c) {
			out = append(out, c)
		}
		return len(out) > limit, nil
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		creds := tx.Bucket(bucketCredentials)
		switch {
		case f.Username != "":
			id := tx.Bucket(bucketCredentialUsernames).Get([]byte(f.Username))
			if id == nil || (p.After != "" && string(id) <= p.After) {
				return nil
			}
			v := creds.Get(id)
			if v == nil {
				return fmt.Errorf("list credentials: username %q: %w", f.Username, ErrCorrupt)
			}
			_, err := add(id, v)
			return err

		case f.ConnectionID != "":
			prefix := connectionPrefix(f.ConnectionID)
			cur := tx.Bucket(bucketCredentialsByConnection).Cursor()
			var k []byte
			if p.After == "" {
				k, _ = cur.Seek(prefix)
			} else {
				k, _ = seekAfter(cur, connectionKey(f.ConnectionID, p.After))
			}
			for ; bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
				id := k[len(prefix):]
				v := creds.Get(id)
				if v == nil {
					return fmt.Errorf("list credentials: connection index names %q: %w", id, ErrCorrupt)
				}
				if full, err := add(id, v); full || err != nil {
					return err
				}
			}
			return nil

		default:
			cur := creds.Cursor()
			for k, v := seekAfter(cur, []byte(p.After)); k != nil; k, v = cur.Next() {
				if full, err := add(k, v); full || err != nil {
					return err
				}
			}
			return nil
		}
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(out, limit, func(c *Credential) string { return c.ID })
	return out, next, nil
}

// UpdateCredential applies fn to the stored credential and stores the
// result, fsynced, in one transaction. UpdatedAt is set to now before fn
// runs (fn may set it itself); ID, Username and CreatedAt are restored
// after. A changed ConnectionID must name a connection
// (ErrConnectionNotFound). An error from fn aborts the update and is
// returned as it is.
func (db *DB) UpdateCredential(id string, fn func(*Credential) error) (Credential, error) {
	var out Credential
	err := db.update(func(tx *bolt.Tx) error {
		b := credentialBuckets(tx)
		var c Credential
		if err := getCredential(b.creds, []byte(id), &c); err != nil {
			return err
		}
		username, conn, created := c.Username, c.ConnectionID, c.CreatedAt
		c.UpdatedAt = db.now()
		if err := fn(&c); err != nil {
			return err
		}
		c.ID, c.Username, c.CreatedAt = id, username, created
		if c.ConnectionID != conn {
			if b.conns.Get([]byte(c.ConnectionID)) == nil {
				return fmt.Errorf("update credential %q: connection %q: %w", id, c.ConnectionID, ErrConnectionNotFound)
			}
			if err := db.del(b.byConn, bucketCredentialsByConnection, connectionKey(conn, id)); err != nil {
				return fmt.Errorf("store: delete connection index of credential %q: %w", id, err)
			}
			if err := db.put(b.byConn, bucketCredentialsByConnection, connectionKey(c.ConnectionID, id), nil); err != nil {
				return fmt.Errorf("store: put connection index of credential %q: %w", id, err)
			}
		}
		return db.putCredential(b.creds, &c, &out)
	})
	if err != nil {
		return Credential{}, err
	}
	return out, nil
}

// DeleteCredential removes the credential and its index entries, and
// returns it as it was. ErrNotFound when there is none.
func (db *DB) DeleteCredential(id string) (Credential, error) {
	var c Credential
	err := db.update(func(tx *bolt.Tx) error {
		b := credentialBuckets(tx)
		if err := getCredential(b.creds, []byte(id), &c); err != nil {
			return err
		}
		if string(b.names.Get([]byte(c.Username))) == id {
			if err := db.del(b.names, bucketCredentialUsernames, []byte(c.Username)); err != nil {
				return fmt.Errorf("store: delete username %q: %w", c.Username, err)
			}
		}
		if err := db.del(b.byConn, bucketCredentialsByConnection, connectionKey(c.ConnectionID, id)); err != nil {
			return fmt.Errorf("store: delete connection index of credential %q: %w", id, err)
		}
		if err := db.del(b.creds, bucketCredentials, []byte(id)); err != nil {
			return fmt.Errorf("store: delete credential %q: %w", id, err)
		}
		return db.unassignNumbers(tx, id)
	})
	if err != nil {
		return Credential{}, err
	}
	return c, nil
}

func getCredential(creds *bolt.Bucket, id []byte, c *Credential) error {
	v := creds.Get(id)
	if v == nil {
		return fmt.Errorf("credential %q: %w", id, ErrNotFound)
	}
	if err := decodeCredential(c, v); err != nil {
		return fmt.Errorf("credential %q: %w", id, err)
	}
	return nil
}

func (db *DB) putCredential(creds *bolt.Bucket, c, out *Credential) error {
	v := appendCredential(nil, c)
	if err := db.put(creds, bucketCredentials, []byte(c.ID), v); err != nil {
		return fmt.Errorf("store: put credential %q: %w", c.ID, err)
	}
	return decodeCredential(out, v)
}

func checkUsername(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("%w: empty username", ErrInvalid)
	case len(u) > bolt.MaxKeySize:
		return fmt.Errorf("%w: username longer than %d bytes", ErrInvalid, bolt.MaxKeySize)
	}
	return nil
}

// splitConnectionKey splits a credentials_by_connection key.
func splitConnectionKey(k []byte) (conn, cred []byte, ok bool) {
	conn, cred, ok = bytes.Cut(k, []byte{0})
	return conn, cred, ok && len(conn) > 0 && len(cred) > 0
}

// unassignNumbers leaves the numbers of a deleted credential with its
// connection alone (calls to them go to the connection's PBX, if any).
func (db *DB) unassignNumbers(tx *bolt.Tx, credentialID string) error {
	nums := tx.Bucket(bucketNumbers)
	var todo []Number
	err := nums.ForEach(func(k, v []byte) error {
		var n Number
		if err := decodeNumber(&n, v); err != nil {
			return fmt.Errorf("number %q: %w", k, err)
		}
		if n.CredentialID == credentialID {
			todo = append(todo, n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range todo {
		todo[i].CredentialID = ""
		var out Number
		if err := db.putNumber(nums, &todo[i], &out); err != nil {
			return err
		}
	}
	return nil
}
