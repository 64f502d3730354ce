package store

import (
	"bytes"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Replication: several nodes sharing the records (connections,
// credentials and their indexes, numbers, API keys) through a networked
// copy (package cluster keeps it in Redis). Each node keeps its bbolt file
// as a local replica, so that reads, and the REGISTER path above all, stay
// in memory and on disk; every record write goes through the copy first:
//
//  1. Replicator.Lock before the write transaction: the node holds the
//     cluster's write lock and its replica is up to date, so that the
//     transaction's checks (a username taken, a connection in use) see
//     every node's writes;
//  2. the transaction writes bbolt, and the store records each put and
//     delete (put, del below);
//  3. Replicator.Commit inside the transaction, before bbolt commits: the
//     copy has the changes, or the transaction is rolled back and the
//     caller gets the error (an API 201 means the copy has it);
//  4. the unlock function returned by Lock, told whether bbolt committed.
//
// The other nodes apply the changes (ApplyReplica) as they learn of them,
// or reload everything (ReplaceReplica) when they missed some.

// Change is one put or delete of a record write.
type Change struct {
	Bucket string `json:"b"`
	Key    []byte `json:"k"`
	Value  []byte `json:"v,omitempty"`
	Delete bool   `json:"d,omitempty"`
}

// Replicator is the networked copy of the records.
type Replicator interface {
	// Lock returns once this node may write records: it holds the
	// cluster's write lock and its replica is up to date. unlock is
	// called after the transaction, with whether bbolt committed it.
	Lock() (unlock func(committed bool), err error)
	// Commit stores the changes of a transaction in the copy; an error
	// rolls the transaction back.
	Commit(changes []Change) error
}

// replicated are the buckets a Replicator copies. Bindings are not among
// them (they are written in batches of their own), nor meta (the ID clock
// is per node; UUIDv7 IDs do not collide).
var replicated = [][]byte{
	bucketConnections, bucketCredentials, bucketCredentialUsernames,
	bucketCredentialsByConnection, bucketAPIKeys, bucketNumbers,
}

// ReplicatedBuckets returns the names of the buckets a Replicator copies.
func ReplicatedBuckets() []string {
	out := make([]string, len(replicated))
	for i, b := range replicated {
		out[i] = string(b)
	}
	return out
}

func isReplicated(name string) bool {
	return slices.ContainsFunc(replicated, func(b []byte) bool { return string(b) == name })
}

// SetReplicator makes every later record write go through r first. Call
// it before serving, once the replica is in sync (ReplaceReplica).
func (db *DB) SetReplicator(r Replicator) { db.repl = r }

// put writes k=v in the bucket called name, recording the change.
func (db *DB) put(b *bolt.Bucket, name, k, v []byte) error {
	if err := b.Put(k, v); err != nil {
		return err
	}
	if db.txLog != nil {
		*db.txLog = append(*db.txLog, Change{Bucket: string(name), Key: bytes.Clone(k), Value: bytes.Clone(v)})
	}
	return nil
}

// del deletes k from the bucket called name, recording the change.
func (db *DB) del(b *bolt.Bucket, name, k []byte) error {
	if err := b.Delete(k); err != nil {
		return err
	}
	if db.txLog != nil {
		*db.txLog = append(*db.txLog, Change{Bucket: string(name), Key: bytes.Clone(k), Delete: true})
	}
	return nil
}

// Effect is what applying another node's writes did to the credentials,
// for the node to act on (end what a deleted credential held, watch a
// new expiry).
type Effect struct {
	// Deleted are the credentials removed, as they were.
	Deleted []Credential
	// Written are the credentials created or changed, as they are now.
	Written []Credential
}

// ApplyReplica applies changes another node made (in one transaction,
// fsynced), without passing them to the Replicator.
func (db *DB) ApplyReplica(changes []Change) (eff Effect, err error) {
	defer db.conns.invalidate()
	defer db.creds.invalidate()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, c := range changes {
			if !isReplicated(c.Bucket) {
				return fmt.Errorf("apply replica: bucket %q: %w", c.Bucket, ErrInvalid)
			}
			b := tx.Bucket([]byte(c.Bucket))
			if c.Delete {
				if c.Bucket == string(bucketCredentials) {
					var old Credential
					if getCredential(b, c.Key, &old) == nil {
						eff.Deleted = append(eff.Deleted, old)
					}
				}
				if err := b.Delete(c.Key); err != nil {
					return fmt.Errorf("apply replica: %w", err)
				}
				continue
			}
			if err := b.Put(c.Key, c.Value); err != nil {
				return fmt.Errorf("apply replica: %w", err)
			}
			if c.Bucket == string(bucketCredentials) {
				var now Credential
				if decodeCredential(&now, c.Value) == nil {
					eff.Written = append(eff.Written, now)
				}
			}
		}
		return nil
	})
	if err != nil {
		return Effect{}, err
	}
	return eff, nil
}

// ReplicaSnapshot returns every record of the replicated buckets: bucket
// name -> key -> value.
func (db *DB) ReplicaSnapshot() (map[string]map[string][]byte, error) {
	out := map[string]map[string][]byte{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range replicated {
			m := map[string][]byte{}
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				m[string(k)] = bytes.Clone(v)
				return nil
			}); err != nil {
				return err
			}
			out[string(name)] = m
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replica snapshot: %w", err)
	}
	return out, nil
}

// ReplaceReplica replaces the replicated buckets with snap (bucket name ->
// key -> value; a bucket missing from snap is emptied), in one
// transaction. Values are checked to decode first: a corrupt copy changes
// nothing.
func (db *DB) ReplaceReplica(snap map[string]map[string][]byte) (eff Effect, err error) {
	for name, m := range snap {
		if !isReplicated(name) {
			return Effect{}, fmt.Errorf("replace replica: bucket %q: %w", name, ErrInvalid)
		}
		for k, v := range m {
			if err := checkRecord(name, v); err != nil {
				return Effect{}, fmt.Errorf("replace replica: %s %q: %w", name, k, err)
			}
		}
	}
	defer db.conns.invalidate()
	defer db.creds.invalidate()
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range replicated {
			m := snap[string(name)]
			b := tx.Bucket(name)
			var gone [][]byte
			if err := b.ForEach(func(k, v []byte) error {
				if _, ok := m[string(k)]; !ok {
					gone = append(gone, bytes.Clone(k))
					if string(name) == string(bucketCredentials) {
						var old Credential
						if decodeCredential(&old, v) == nil {
							eff.Deleted = append(eff.Deleted, old)
						}
					}
				}
				return nil
			}); err != nil {
				return err
			}
			for _, k := range gone {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			for k, v := range m {
				if old := b.Get([]byte(k)); old != nil && bytes.Equal(old, v) {
					continue
				}
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
				if string(name) == string(bucketCredentials) {
					var now Credential
					if decodeCredential(&now, v) == nil {
						eff.Written = append(eff.Written, now)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return Effect{}, fmt.Errorf("replace replica: %w", err)
	}
	return eff, nil
}

// checkRecord checks that v decodes as a record of the bucket called name.
func checkRecord(name string, v []byte) error {
	switch name {
	case string(bucketConnections):
		var c Connection
		return decodeConnection(&c, v)
	case string(bucketCredentials):
		var c Credential
		return decodeCredential(&c, v)
	case string(bucketNumbers):
		var n Number
		return decodeNumber(&n, v)
	case string(bucketAPIKeys):
		var k APIKey
		return decodeAPIKey(&k, v)
	}
	return nil // the indexes: any bytes
}
