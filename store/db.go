// Package store keeps sipwarden's records (connections, credentials,
// bindings, API keys) in a bbolt file. Credentials and connections are
// committed and fsynced before a call returns; bindings are written through
// in group commits by a background flusher and restored at start.
//
// A DB is safe for concurrent use. Records returned are copies: callers may
// keep and modify them.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Options configures a DB. The zero value is the production setting.
type Options struct {
	// BindingFlushInterval is how often pending bindings are committed, in
	// one transaction. Zero means 1s.
	BindingFlushInterval time.Duration
	// Logger receives what cannot be returned: binding flush failures and
	// bindings dropped by SaveBindings. Nil discards.
	Logger *slog.Logger
	// Now is the clock for timestamps and IDs. Nil means time.Now.
	Now func() time.Time
	// NoSync skips fsync on commit. For tests only: by default every write
	// of a credential, connection or API key is on disk when it returns.
	NoSync bool
	// OnBindingFlush, when set, is called after each binding flush that had
	// something to write, with the number of AORs written, how long the
	// commit took and its error (nil on success). It runs on the flushing
	// goroutine and must not call the DB.
	OnBindingFlush func(n int, d time.Duration, err error)
	// OnCommit, when set, is called after each synchronous commit of a
	// credential, connection or API key, with how long the transaction
	// took (fsync included) and the commit's error. It runs on the
	// caller's goroutine and must not call the DB.
	OnCommit func(d time.Duration, err error)
}

// lockTimeout is how long Open waits for the file lock before ErrLocked.
const lockTimeout = time.Second

// initialMmapSize is address space, not memory: the file is mapped with
// this much room to grow. bbolt re-maps as the file grows, and before each
// re-map copies every node a write transaction has touched out of the map,
// and waits for read transactions to end. Without the room, the first
// flush of a million bindings spent a third of its 10s doing that.
// 32-bit builds keep bbolt's default.
const initialMmapSize = (strconv.IntSize / 64) << 30

// DB is an open store.
type DB struct {
	bolt    *bolt.DB
	path    string
	log     *slog.Logger
	now     func() time.Time
	onFlush func(int, time.Duration, error)
	ids     idGen
	creds   recordCache[Credential] // by username
	misses  missCache               // usernames without a credential
	conns   recordCache[Connection] // by ID
	route   routingCache            // numbers and ip connections, number.go

	mu      sync.Mutex           // guards pending and closed
	pending map[string][]Binding // AOR -> latest set; nil set deletes
	closed  bool

	// flushMu makes binding writes happen one at a time, so that a flush
	// never commits an older set over a newer one.
	flushMu sync.Mutex

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	onCommit func(time.Duration, error) // Options.OnCommit; see update

	// repl copies record writes to a cluster (replica.go); txLog collects
	// the writes of the record transaction in progress for it (nil
	// outside one, or without repl). Record transactions are bbolt's
	// write transactions, one at a time.
	repl  Replicator
	txLog *[]Change
}

// Open opens the database at path, creating the file (mode 0600) and its
// directory (0700) when missing, and the buckets, the schema version and
// the default connection when absent. It returns ErrLocked when another
// process holds the file for more than a second, and ErrSchemaTooNew for a
// file written by a newer build.
func Open(path string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory of %q: %w", path, err)
	}
	if err := checkLength(path); err != nil {
		return nil, err
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, InitialMmapSize: initialMmapSize})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %q: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	bdb.NoSync = opts.NoSync

	db := &DB{
		bolt:    bdb,
		path:    path,
		log:     opts.Logger,
		now:     opts.Now,
		onFlush: opts.OnBindingFlush,
		pending: make(map[string][]Binding),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	db.onCommit = opts.OnCommit
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	if db.now == nil {
		db.now = time.Now
	}
	if err := bdb.Update(db.init); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	interval := opts.BindingFlushInterval
	if interval <= 0 {
		interval = time.Second
	}
	go db.flushLoop(interval)
	return db, nil
}

// init creates what a new file lacks and refuses a newer schema.
func (db *DB) init(tx *bolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if v := meta.Get(keySchemaVersion); v != nil {
			ver, err := decodeUint64(v, "schema version")
			if err != nil {
				return err
			}
			if ver > schemaVersion {
				return fmt.Errorf("%w: file has version %d, this build %d: run a newer sipwarden", ErrSchemaTooNew, ver, schemaVersion)
			}
			// Older versions would be migrated here; 1 is the first.
		}
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("store: create bucket %q: %w", name, err)
		}
	}
	if err := tx.Bucket(bucketMeta).Put(keySchemaVersion, encodeUint64(schemaVersion)); err != nil {
		return fmt.Errorf("store: put schema version: %w", err)
	}
	conns := tx.Bucket(bucketConnections)
	if conns.Get([]byte(DefaultConnectionID)) == nil {
		now := db.now()
		c := Connection{ID: DefaultConnectionID, Name: "default", Active: true, CreatedAt: now, UpdatedAt: now}
		if err := conns.Put([]byte(c.ID), appendConnection(nil, &c)); err != nil {
			return fmt.Errorf("store: put default connection: %w", err)
		}
	}
	if v := tx.Bucket(bucketMeta).Get(keyIDClock); v != nil {
		last, err := decodeUint64(v, "id clock")
		if err != nil {
			return err
		}
		db.ids.advance(last)
	}
	return nil
}

// newID makes an ID inside the write transaction tx and stores the
// generator's state with it.
func (db *DB) newID(tx *bolt.Tx, now time.Time) (string, error) {
	id, last := db.ids.next(now)
	if err := tx.Bucket(bucketMeta).Put(keyIDClock, encodeUint64(last)); err != nil {
		return "", fmt.Errorf("store: put id clock: %w", err)
	}
	return id, nil
}

// Path returns the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Close stops the binding flusher, commits the bindings still pending and
// closes the file. Calls after the first return its result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		close(db.stop)
		<-db.done
		var errs []error
		if err := db.FlushBindings(); err != nil {
			errs = append(errs, fmt.Errorf("store: close: %w", err))
		}
		if err := db.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: close %q: %w", db.path, err))
		}
		db.closeErr = errors.Join(errs...)
	})
	return db.closeErr
}

// maxCheckErrors bounds what Check reports about a badly damaged file.
const maxCheckErrors = 100

// Check verifies the file (bbolt's page-level consistency check) and the
// store's own invariants: every value decodes, every credential is indexed
// by username and by connection and its connection exists, every index
// entry points to a credential that agrees, the default connection and the
// schema version are present. It returns every problem found, joined.
func (db *DB) Check() error {
	var errs []error
	report := func(err error) {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err)
		}
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			report(fmt.Errorf("store: check: %w", err))
		}
		checkRecords(tx, report)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	return errors.Join(errs...)
}

func checkRecords(tx *bolt.Tx, report func(error)) {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			report(fmt.Errorf("store: check: bucket %q missing", name))
			return
		}
	}
	if v := tx.Bucket(bucketMeta).Get(keySchemaVersion); v == nil {
		report(fmt.Errorf("store: check: schema version missing"))
	} else if _, err := decodeUint64(v, "schema version"); err != nil {
		report(fmt.Errorf("store: check: %w", err))
	}
	if v := tx.Bucket(bucketMeta).Get(keyIDClock); v != nil {
		if _, err := decodeUint64(v, "id clock"); err != nil {
			report(fmt.Errorf("store: check: %w", err))
		}
	}
	conns := tx.Bucket(bucketConnections)
	if conns.Get([]byte(DefaultConnectionID)) == nil {
		report(fmt.Errorf("store: check: default connection missing"))
	}
	_ = conns.ForEach(func(k, v []byte) error {
		var c Connection
		if err := decodeConnection(&c, v); err != nil {
			report(fmt.Errorf("store: check: connection %q: %w", k, err))
		} else if c.ID != string(k) {
			report(fmt.Errorf("store: check: connection %q: %w: holds id %q", k, ErrCorrupt, c.ID))
		}
		return nil
	})
	creds := tx.Bucket(bucketCredentials)
	names := tx.Bucket(bucketCredentialUsernames)
	byConn := tx.Bucket(bucketCredentialsByConnection)
	_ = creds.ForEach(func(k, v []byte) error {
		var c Credential
		switch err := decodeCredential(&c, v); {
		case err != nil:
			report(fmt.Errorf("store: check: credential %q: %w", k, err))
		case c.ID != string(k):
			report(fmt.Errorf("store: check: credential %q: %w: holds id %q", k, ErrCorrupt, c.ID))
		case string(names.Get([]byte(c.Username))) != c.ID:
			report(fmt.Errorf("store: check: credential %q: %w: username %q not indexed to it", k, ErrCorrupt, c.Username))
		case byConn.Get(connectionKey(c.ConnectionID, c.ID)) == nil:
			report(fmt.Errorf("store: check: credential %q: %w: not indexed under connection %q", k, ErrCorrupt, c.ConnectionID))
		case conns.Get([]byte(c.ConnectionID)) == nil:
			report(fmt.Errorf("store: check: credential %q: %w: connection %q missing", k, ErrCorrupt, c.ConnectionID))
		}
		return nil
	})
	_ = names.ForEach(func(k, v []byte) error {
		var c Credential
		if cv := creds.Get(v); cv == nil || decodeCredential(&c, cv) != nil || c.Username != string(k) {
			report(fmt.Errorf("store: check: username %q: %w: index points to credential %q, which does not have it", k, ErrCorrupt, v))
		}
		return nil
	})
	_ = byConn.ForEach(func(k, _ []byte) error {
		conn, cred, ok := splitConnectionKey(k)
		var c Credential
		if cv := creds.Get(cred); !ok || cv == nil || decodeCredential(&c, cv) != nil || c.ConnectionID != string(conn) {
			report(fmt.Errorf("store: check: connection index key %q: %w: no such credential in that connection", k, ErrCorrupt))
		}
		return nil
	})
	_ = tx.Bucket(bucketBindings).ForEach(func(k, v []byte) error {
		if bs, err := decodeBindings(nil, v, nil); err != nil {
			report(fmt.Errorf("store: check: bindings of %q: %w", k, err))
		} else if len(bs) == 0 || bs[0].AOR != string(k) {
			report(fmt.Errorf("store: check: bindings of %q: %w: empty or saved under another aor", k, ErrCorrupt))
		}
		return nil
	})
	_ = tx.Bucket(bucketNumbers).ForEach(func(k, v []byte) error {
		var n Number
		switch err := decodeNumber(&n, v); {
		case err != nil:
			report(fmt.Errorf("store: check: number %q: %w", k, err))
		case n.Number != string(k):
			report(fmt.Errorf("store: check: number %q: %w: holds number %q", k, ErrCorrupt, n.Number))
		case conns.Get([]byte(n.ConnectionID)) == nil:
			report(fmt.Errorf("store: check: number %q: %w: connection %q missing", k, ErrCorrupt, n.ConnectionID))
		}
		return nil
	})
	_ = tx.Bucket(bucketAPIKeys).ForEach(func(k, v []byte) error {
		var a APIKey
		if err := decodeAPIKey(&a, v); err != nil {
			report(fmt.Errorf("store: check: api key %q: %w", k, err))
		} else if a.ID != string(k) {
			report(fmt.Errorf("store: check: api key %q: %w: holds id %q", k, ErrCorrupt, a.ID))
		}
		return nil
	})
}

// Page selects one page of a list. Lists are in ID order, which for IDs
// the store made is creation order, so a record created while a client
// pages appears after every record that existed before it.
type Page struct {
	// After is the cursor a previous call returned; empty for the first
	// page.
	After string
	// Limit is the page size: 0 means 100, more than 1000 means 1000.
	Limit int
}

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return defaultPageLimit
	case p.Limit > maxPageLimit:
		return maxPageLimit
	}
	return p.Limit
}

// seekAfter positions c on the first key after after (the first key when
// after is empty).
func seekAfter(c *bolt.Cursor, after []byte) (k, v []byte) {
	if len(after) == 0 {
		return c.First()
	}
	k, v = c.Seek(after)
	if k != nil && string(k) == string(after) {
		k, v = c.Next()
	}
	return k, v
}

// page trims items gathered up to limit+1 to limit, and returns the cursor
// for the next page: the last item's ID when there is more, else "".
func page[T any](items []T, limit int, id func(*T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, id(&items[limit-1])
}
