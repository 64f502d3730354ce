package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// CreateAPIKey stores a key, fsynced before it returns. It assigns the ID
// when k.ID is empty (ErrExists when a given one is taken) and sets
// CreatedAt when it is zero. It returns the key as stored.
func (db *DB) CreateAPIKey(k APIKey) (APIKey, error) {
	if k.ID != "" {
		if err := checkID(k.ID); err != nil {
			return APIKey{}, fmt.Errorf("create api key %q: %w", k.ID, err)
		}
	}
	if k.Scope != "" && k.Scope != ScopeAdmin && k.Scope != ScopeRead {
		return APIKey{}, fmt.Errorf("create api key: %w: scope %q", ErrInvalid, k.Scope)
	}
	var out APIKey
	err := db.update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketAPIKeys)
		now := db.now()
		if k.ID == "" {
			id, err := db.newID(tx, now)
			if err != nil {
				return err
			}
			k.ID = id
		} else if keys.Get([]byte(k.ID)) != nil {
			return fmt.Errorf("create api key %q: %w", k.ID, ErrExists)
		}
		if k.CreatedAt.IsZero() {
			k.CreatedAt = now
		}
		if k.Scope == "" {
			k.Scope = ScopeAdmin
		}
		v := appendAPIKey(nil, &k)
		if err := db.put(keys, bucketAPIKeys, []byte(k.ID), v); err != nil {
			return fmt.Errorf("store: put api key %q: %w", k.ID, err)
		}
		return decodeAPIKey(&out, v)
	})
	if err != nil {
		return APIKey{}, err
	}
	return out, nil
}

// APIKey returns the key with the ID, or ErrNotFound.
func (db *DB) APIKey(id string) (APIKey, error) {
	var k APIKey
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAPIKeys).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("api key %q: %w", id, ErrNotFound)
		}
		if err := decodeAPIKey(&k, v); err != nil {
			return fmt.Errorf("api key %q: %w", id, err)
		}
		return nil
	})
	return k, err
}

// APIKeys returns every key in ID order. There are few.
func (db *DB) APIKeys() ([]APIKey, error) {
	var out []APIKey
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAPIKeys).ForEach(func(id, v []byte) error {
			var k APIKey
			if err := decodeAPIKey(&k, v); err != nil {
				return fmt.Errorf("api key %q: %w", id, err)
			}
			out = append(out, k)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteAPIKey removes a key, fsynced before it returns. ErrNotFound when
// there is none.
func (db *DB) DeleteAPIKey(id string) error {
	return db.update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketAPIKeys)
		if keys.Get([]byte(id)) == nil {
			return fmt.Errorf("delete api key %q: %w", id, ErrNotFound)
		}
		if err := db.del(keys, bucketAPIKeys, []byte(id)); err != nil {
			return fmt.Errorf("store: delete api key %q: %w", id, err)
		}
		return nil
	})
}
