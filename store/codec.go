package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// encoder appends the primitives the record layouts in schema.go are made
// of. Every length and integer is a varint (encoding/binary).
type encoder struct {
	b []byte
}

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }

func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, v := range ss {
		e.str(v)
	}
}

func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// time keeps the instant to the nanosecond; the location and the monotonic
// reading are dropped (times decode in UTC). The zero time round-trips.
func (e *encoder) time(t time.Time) {
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

// decoder reads what encoder wrote. It works on a string holding a copy of
// the bbolt value, so that every decoded string is a substring of that one
// allocation and stays valid after the transaction. The first error sticks;
// later reads return zero values.
type decoder struct {
	s   string
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed %s", ErrCorrupt, what)
	}
	d.s = ""
}

func (d *decoder) byte() byte {
	if len(d.s) == 0 {
		d.fail("byte")
		return 0
	}
	v := d.s[0]
	d.s = d.s[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.s = d.s[i+1:]
			return v | uint64(c)<<(7*i)
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	d.fail("varint")
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// count reads a length and checks it against what is left, each element
// taking at least min bytes, so that a corrupt length cannot make a caller
// allocate more than the value could hold.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.s)/min) {
		d.fail("length")
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	v := d.s[:n]
	d.s = d.s[n:]
	return v
}

func (d *decoder) bytes() []byte {
	if s := d.str(); s != "" {
		return []byte(s)
	}
	return nil
}

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = d.str()
	}
	return v
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bool")
	return false
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("uint32")
		return 0
	}
	return uint32(v)
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= uint64(time.Second) {
		d.fail("time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// version reads a record's leading format byte and checks it is one this
// build can read.
func (d *decoder) version(what string, latest byte) byte {
	v := d.byte()
	if d.err == nil && (v == 0 || v > latest) {
		d.err = fmt.Errorf("%w: %s format %d unknown (this build reads up to %d)", ErrCorrupt, what, v, latest)
		d.s = ""
	}
	return v
}

// done reports the first error, or one for bytes left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.s) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.s))
	}
	return d.err
}
