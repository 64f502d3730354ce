package store

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SaveBindings records bs as the complete binding set of aor, to be
// committed by the next flush; an empty or nil bs deletes the AOR. It
// copies bs and never waits for the disk: it takes a mutex held only for a
// map assignment, so the registrar may call it with its own locks held.
// Saves of one AOR coalesce: the latest wins. The bindings are stored
// under aor, and LoadBindings returns them with AOR set to it.
//
// An AOR bbolt cannot store as a key (empty, or over 32 KiB) is logged and
// dropped, as are saves after Close.
func (db *DB) SaveBindings(aor string, bs []Binding) {
	if aor == "" || len(aor) > bolt.MaxKeySize {
		db.log.Error("bindings not persisted: aor is not a valid key", "aor_bytes", len(aor))
		return
	}
	var set []Binding
	if len(bs) > 0 {
		set = slices.Clone(bs)
	}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		db.log.Warn("bindings not persisted: store closed", "aor", aor)
		return
	}
	db.pending[aor] = set
	db.mu.Unlock()
}

// FlushBindings commits the pending bindings now, in one transaction, and
// returns when they are on disk. On failure they stay pending (unless a
// newer save replaced them) for the next flush.
func (db *DB) FlushBindings() error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	return db.flushBindingsLocked()
}

func (db *DB) flushBindingsLocked() error {
	db.mu.Lock()
	batch := db.pending
	if len(batch) == 0 {
		db.mu.Unlock()
		return nil
	}
	// Sized for as many AORs as the last interval had: a map grown from
	// empty to ten thousand entries every interval rehashed itself a
	// dozen times (1.7% of the CPU at 10,000 REGISTERs a second).
	db.pending = make(map[string][]Binding, len(batch))
	db.mu.Unlock()

	start := time.Now()
	err := db.writeBindings(batch)
	d := time.Since(start)
	if err != nil {
		db.mu.Lock()
		for aor, set := range batch {
			if _, newer := db.pending[aor]; !newer {
				db.pending[aor] = set
			}
		}
		db.mu.Unlock()
		err = fmt.Errorf("store: flush bindings of %d aors: %w", len(batch), err)
	}
	if db.onFlush != nil {
		db.onFlush(len(batch), d, err)
	}
	return err
}

// writeBindings encodes the batch before it takes bbolt's writer lock, and
// writes in key order, which is the cheapest order for a B+tree.
func (db *DB) writeBindings(batch map[string][]Binding) error {
	aors := slices.Sorted(maps.Keys(batch))
	vals := make([][]byte, len(aors))
	// Values are encoded one after another into chunks: bbolt keeps the
	// slices until the commit, and a sub-slice stays valid when append
	// moves the chunk. A new chunk starts when the one filling has less
	// room left than a set usually takes, so that a big batch is not
	// copied over and over into one growing buffer, nor each chunk once
	// more by the set that overflows it (a chunk started only once full
	// was: every 64 KB of a flush moved to a 128 KB copy).
	const chunk, room = 64 << 10, 4 << 10
	var buf []byte
	for i, aor := range aors {
		if set := batch[aor]; len(set) > 0 {
			if cap(buf)-len(buf) < room {
				buf = make([]byte, 0, chunk)
			}
			start := len(buf)
			buf = appendBindings(buf, aor, set)
			vals[i] = buf[start:len(buf):len(buf)]
		}
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBindings)
		// Pages split at 90% instead of bbolt's 50%: a batch is written in
		// key order, and at 50% a large one (a start-up restore of a
		// million AORs, a re-registration storm) leaves every page half
		// empty: the file, and the pages the restore maps, twice the data.
		b.FillPercent = 0.9
		for i, aor := range aors {
			var err error
			if vals[i] == nil {
				err = b.Delete([]byte(aor))
			} else {
				err = b.Put([]byte(aor), vals[i])
			}
			if err != nil {
				return fmt.Errorf("store: put bindings of %q: %w", aor, err)
			}
		}
		return nil
	})
}

func (db *DB) flushLoop(interval time.Duration) {
	defer close(db.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			if err := db.FlushBindings(); err != nil {
				db.log.Error("binding flush failed; retrying next interval", "error", err)
			}
		}
	}
}

// LoadBindings returns every stored binding that expires after now,
// grouped by AOR (AORs in byte order, each set in the order it was saved),
// after committing what is pending. Expired bindings are deleted from the
// store, and so is an AOR whose value cannot be decoded (logged): bindings
// are soft state, and one bad record must not stop a start.
func (db *DB) LoadBindings(now time.Time) ([]Binding, error) {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	if err := db.flushBindingsLocked(); err != nil {
		return nil, fmt.Errorf("load bindings: %w", err)
	}
	readAhead(db.path)
	// Read in a read-only transaction, so that credential writes are not
	// held up, then fix up in a write transaction; flushMu keeps binding
	// writes out in between.
	var (
		out   []Binding
		fixes []bindingFix
	)
	// Transports, listener addresses and User-Agents repeat across
	// bindings: one copy of each (up to 4096 distinct values) for all.
	in := newInterner(4096)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBindings)
		// Pre-sized from the AOR count, at least one binding each: growing
		// a slice of a million bindings by append cost more than twice the time.
		out = make([]Binding, 0, b.Stats().KeyN)
		cur := b.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			start := len(out)
			var err error
			out, err = decodeBindings(out, v, in)
			if err != nil {
				db.log.Error("dropping undecodable bindings", "aor", string(k), "error", err)
				fixes = append(fixes, bindingFix{aor: string(k)})
				out = out[:start]
				continue
			}
			n := start
			for i := start; i < len(out); i++ {
				if out[i].Expires.After(now) {
					out[n] = out[i]
					n++
				}
			}
			if n < len(out) {
				f := bindingFix{aor: string(k)}
				if n > start {
					f.val = appendBindings(nil, f.aor, out[start:n])
				}
				fixes = append(fixes, f)
				clear(out[n:])
				out = out[:n]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: load bindings: %w", err)
	}
	if len(fixes) > 0 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketBindings)
			for _, f := range fixes {
				var err error
				if f.val == nil {
					err = b.Delete([]byte(f.aor))
				} else {
					err = b.Put([]byte(f.aor), f.val)
				}
				if err != nil {
					return fmt.Errorf("store: drop expired bindings of %q: %w", f.aor, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load bindings: %w", err)
		}
	}
	return out, nil
}

// bindingFix is what LoadBindings writes back for an AOR: the unexpired
// remainder of its set, or nil to delete it.
type bindingFix struct {
	aor string
	val []byte
}

// readAhead reads the file once, sequentially, so that the scan in
// LoadBindings finds its pages in the page cache. bbolt maps the file with
// MADV_RANDOM, which turns a scan of a file not yet cached into one disk
// read per page: a million bindings (a 600 MB file) loaded in 11.5s from
// a cold cache, and in 1.9s with this read first. When the file is cached
// already, the read is lost in the noise of the load (0.75s). Errors are
// ignored: the scan works without it.
func readAhead(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
	}
}
