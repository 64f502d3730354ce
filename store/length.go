package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// ErrCutShort is returned for a bbolt file shorter than its own last
// commit says it is.
var ErrCutShort = errors.New("the file is cut short")

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common): a 16-byte
// page header, then magic, version, page size, flags (4 bytes each), the
// root bucket (16), the freelist page, the high-water page id, the
// transaction id and a checksum (8 each, in the machine's byte order).
// The checksum is FNV-64a over the meta up to itself.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaSize   = 64
	boltSumOffset  = 56
)

// checkLength refuses a bbolt file shorter than its newest valid meta
// page says: bbolt maps the whole file and reads its pages in place, so
// a page past the end of a truncated file is a SIGBUS in the reader, not
// an error. A backup cut short crashed `restore`, and a cut store
// crashed `serve`. A file without a valid meta page, or that does not
// exist, is left to bbolt, which reports it.
func checkLength(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // bbolt's to report (or to create)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	m0, ok0 := readMeta(f, 0)
	second := int64(os.Getpagesize())
	if ok0 {
		second = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, second)
	m := m0
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case !ok0:
		return nil
	}
	if need := m.pgid * uint64(m.pageSize); uint64(st.Size()) < need {
		return fmt.Errorf("store: %q: %w: %d bytes, where its last commit (transaction %d) needs %d",
			path, ErrCutShort, st.Size(), m.txid, need)
	}
	return nil
}

// boltMeta is what checkLength reads of a meta page.
type boltMeta struct {
	pageSize   uint32
	pgid, txid uint64
}

// readMeta reads the meta page at off; false when it is not a valid one.
func readMeta(r io.ReaderAt, off int64) (boltMeta, bool) {
	var b [boltPageHeader + boltMetaSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return boltMeta{}, false
	}
	meta := b[boltPageHeader:]
	e := binary.NativeEndian
	if e.Uint32(meta[0:]) != boltMagic || e.Uint32(meta[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(meta[:boltSumOffset])
	if h.Sum64() != e.Uint64(meta[boltSumOffset:]) {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: e.Uint32(meta[8:]), pgid: e.Uint64(meta[40:]), txid: e.Uint64(meta[48:])}
	return m, m.pageSize >= 512
}
