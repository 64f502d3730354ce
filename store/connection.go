package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CreateConnection stores a new connection. It assigns the ID when c.ID is
// empty (ErrExists when a given one is taken, ErrInvalid when it has a NUL)
// and sets CreatedAt and UpdatedAt when they are zero. It returns the
// connection as stored.
func (db *DB) CreateConnection(c Connection) (Connection, error) {
	if c.ID != "" {
		if err := checkID(c.ID); err != nil {
			return Connection{}, fmt.Errorf("create connection %q: %w", c.ID, err)
		}
	}
	var out Connection
	err := db.update(func(tx *bolt.Tx) error {
		conns := tx.Bucket(bucketConnections)
		now := db.now()
		if c.ID == "" {
			id, err := db.newID(tx, now)
			if err != nil {
				return err
			}
			c.ID = id
		} else if conns.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("create connection %q: %w", c.ID, ErrExists)
		}
		setTimes(&c.CreatedAt, &c.UpdatedAt, now)
		return db.putConnection(conns, &c, &out)
	})
	if err != nil {
		return Connection{}, err
	}
	return out, nil
}

// Connection returns the connection with the ID, or ErrNotFound. It runs
// on every authenticated request (the IP allow-list), so it answers from
// the connection cache when no record was written since the entry was read
// (cache.go). The returned AllowedCIDRs slice is shared: do not modify it.
func (db *DB) Connection(id string) (Connection, error) {
	if c, ok := db.conns.get(id); ok {
		return c, nil
	}
	gen := db.conns.generation()
	var c Connection
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return getConnection(tx.Bucket(bucketConnections), id, &c)
	})
	if err == nil {
		db.conns.put(id, gen, c)
	}
	return c, err
}

// Connections returns a page of connections in ID order, the default
// connection first (it is created first, though its ID does not sort as
// the others do), and the cursor for the next page ("" after the last).
func (db *DB) Connections(p Page) ([]Connection, string, error) {
	limit := p.limit()
	var out []Connection
	err := db.bolt.View(func(tx *bolt.Tx) error {
		conns := tx.Bucket(bucketConnections)
		after := []byte(p.After)
		switch p.After {
		case "":
			var c Connection
			if err := getConnection(conns, DefaultConnectionID, &c); err != nil {
				return err
			}
			out = append(out, c)
		case DefaultConnectionID:
			after = nil
		}
		cur := conns.Cursor()
		for k, v := seekAfter(cur, after); k != nil && len(out) <= limit; k, v = cur.Next() {
			if string(k) == DefaultConnectionID {
				continue
			}
			var c Connection
			if err := decodeConnection(&c, v); err != nil {
				return fmt.Errorf("list connections: %q: %w", k, err)
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(out, limit, func(c *Connection) string { return c.ID })
	return out, next, nil
}

// UpdateConnection applies fn to the stored connection and stores the
// result, in one transaction. UpdatedAt is set to now before fn runs (fn
// may set it itself); ID and CreatedAt are restored after. An error from
// fn aborts the update and is returned as it is.
func (db *DB) UpdateConnection(id string, fn func(*Connection) error) (Connection, error) {
	var out Connection
	err := db.update(func(tx *bolt.Tx) error {
		conns := tx.Bucket(bucketConnections)
		var c Connection
		if err := getConnection(conns, id, &c); err != nil {
			return err
		}
		created := c.CreatedAt
		c.UpdatedAt = db.now()
		if err := fn(&c); err != nil {
			return err
		}
		c.ID, c.CreatedAt = id, created
		return db.putConnection(conns, &c, &out)
	})
	if err != nil {
		return Connection{}, err
	}
	return out, nil
}

// DeleteConnection removes a connection. It returns ErrDefaultConnection
// for the default one, ErrNotFound, and ErrConnectionInUse while
// credentials belong to it.
func (db *DB) DeleteConnection(id string) error {
	if id == DefaultConnectionID {
		return fmt.Errorf("delete connection %q: %w", id, ErrDefaultConnection)
	}
	return db.update(func(tx *bolt.Tx) error {
		conns := tx.Bucket(bucketConnections)
		if conns.Get([]byte(id)) == nil {
			return fmt.Errorf("delete connection %q: %w", id, ErrNotFound)
		}
		prefix := connectionPrefix(id)
		if k, _ := tx.Bucket(bucketCredentialsByConnection).Cursor().Seek(prefix); bytes.HasPrefix(k, prefix) {
			return fmt.Errorf("delete connection %q: %w", id, ErrConnectionInUse)
		}
		var n Number
		inUse := tx.Bucket(bucketNumbers).ForEach(func(_, v []byte) error {
			if decodeNumber(&n, v) == nil && n.ConnectionID == id {
				return fmt.Errorf("delete connection %q: %w: number %s", id, ErrConnectionInUse, n.Number)
			}
			return nil
		})
		if inUse != nil {
			return inUse
		}
		if err := db.del(conns, bucketConnections, []byte(id)); err != nil {
			return fmt.Errorf("store: delete connection %q: %w", id, err)
		}
		return nil
	})
}

func getConnection(conns *bolt.Bucket, id string, c *Connection) error {
	v := conns.Get([]byte(id))
	if v == nil {
		return fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	if err := decodeConnection(c, v); err != nil {
		return fmt.Errorf("connection %q: %w", id, err)
	}
	return nil
}

// putConnection stores c and decodes what it stored into out, so that
// callers get what a later read returns (times in UTC).
func (db *DB) putConnection(conns *bolt.Bucket, c, out *Connection) error {
	v := appendConnection(nil, c)
	if err := db.put(conns, bucketConnections, []byte(c.ID), v); err != nil {
		return fmt.Errorf("store: put connection %q: %w", c.ID, err)
	}
	return decodeConnection(out, v)
}

func setTimes(created, updated *time.Time, now time.Time) {
	if created.IsZero() {
		*created = now
	}
	if updated.IsZero() {
		*updated = *created
	}
}
