package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the store's file in the data directory.
const FileName = "sipwarden.db"

// Backup writes a consistent copy of the whole database file to w, from
// one read transaction (bbolt's Tx.WriteTo): writers go on meanwhile, and
// the copy is the file as it was when the transaction began. Bindings not
// flushed yet are flushed first, so that the copy holds the location table
// as of the call. size, when not nil, is told the size of the copy before
// it is written. It returns the bytes written.
func (db *DB) Backup(w io.Writer, size func(int64)) (int64, error) {
	if err := db.FlushBindings(); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// CheckFile opens the database file at path read-only, without writing
// to it, and runs Check on it: for a backup before it is kept or
// restored.
func CheckFile(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store: check %q: %w", path, err)
	}
	if err := checkLength(path); err != nil {
		return err
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("check %q: %w", path, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("store: open %q read-only: %w", path, err)
	}
	defer bdb.Close()
	var errs []error
	report := func(err error) {
		if len(errs) < maxCheckErrors {
			errs = append(errs, err)
		}
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			report(fmt.Errorf("store: check: %w", err))
		}
		checkRecords(tx, report)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: check %q: %w", path, err)
	}
	return errors.Join(errs...)
}

// Restore replaces the database file dst with a checked copy of the
// backup src, offline: it returns ErrLocked when a server holds dst. The
// file dst was is kept beside it as dst.pre-restore-<time>; prev names it
// ("" when there was none).
func Restore(src, dst string, now time.Time) (prev string, err error) {
	if err := CheckFile(src); err != nil {
		return "", fmt.Errorf("restore from %q: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", fmt.Errorf("store: restore: %w", err)
	}
	// Hold dst's lock (as a server would) until the copy replaced it.
	if _, err := os.Stat(dst); err == nil {
		held, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: lockTimeout})
		if errors.Is(err, bolterrors.ErrTimeout) {
			return "", fmt.Errorf("restore into %q: %w: stop the server first", dst, ErrLocked)
		}
		if err != nil {
			return "", fmt.Errorf("store: restore: open %q: %w", dst, err)
		}
		defer held.Close()
		prev = dst + ".pre-restore-" + now.UTC().Format("20060102T150405Z")
	}
	tmp := dst + ".restore-tmp"
	if err := copyFile(src, tmp); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("store: restore: %w", err)
	}
	if prev != "" {
		if err := os.Link(dst, prev); err != nil {
			_ = os.Remove(tmp)
			return "", fmt.Errorf("store: restore: keep the old file: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("store: restore: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return prev, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return out.Close()
}
