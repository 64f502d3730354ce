package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// update runs fn in a read-write transaction, as bbolt's Update does, and
// reports the commit to Options.OnCommit. A transaction that fn rolls back
// by returning an error (a taken username, a missing record) is no commit
// and is not reported. With a Replicator (replica.go) the writes go to it
// before bbolt commits, under its lock.
func (db *DB) update(fn func(tx *bolt.Tx) error) error {
	// Any record write invalidates the record caches (cache.go), after
	// the commit, whatever it changed: writes are rare.
	defer db.conns.invalidate()
	defer db.creds.invalidate()
	if db.repl != nil {
		unlock, err := db.repl.Lock()
		if err != nil {
			return err
		}
		committed := false
		defer func() { unlock(committed) }()
		inner := fn
		fn = func(tx *bolt.Tx) error {
			var log []Change
			db.txLog = &log
			defer func() { db.txLog = nil }()
			if err := inner(tx); err != nil {
				return err
			}
			if len(log) == 0 {
				return nil
			}
			return db.repl.Commit(log)
		}
		err = db.commit(fn)
		committed = err == nil
		return err
	}
	return db.commit(fn)
}

func (db *DB) commit(fn func(tx *bolt.Tx) error) error {
	if db.onCommit == nil {
		return db.bolt.Update(fn)
	}
	start := time.Now()
	var fnErr error
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if fnErr == nil {
		db.onCommit(time.Since(start), err)
	}
	return err
}
