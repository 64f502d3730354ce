package store

import (
	"reflect"
	"testing"
	"time"
)

// TestDecodeConnectionFormat1: records written before allowed_cidrs
// existed (format 1) decode with none, and are rewritten in the latest
// format.
func TestDecodeConnectionFormat1(t *testing.T) {
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	e := encoder{}
	e.byte(1)
	e.str("trunk-1")
	e.str("Trunk")
	e.bool(true)
	e.time(t1)
	e.time(t1)
	var c Connection
	if err := decodeConnection(&c, e.b); err != nil {
		t.Fatalf("decode format 1: %v", err)
	}
	want := Connection{ID: "trunk-1", Name: "Trunk", Active: true, CreatedAt: t1, UpdatedAt: t1}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	// Format 1 with trailing bytes is still corrupt.
	if err := decodeConnection(&c, append(e.b, 0)); err == nil {
		t.Fatal("format 1 with a trailing byte decoded")
	}
	// The latest format carries the list.
	want.AllowedCIDRs = []string{"192.0.2.0/24", "2001:db8::/32"}
	v := appendConnection(nil, &want)
	if v[0] != connectionFormat || connectionFormat != 2 {
		t.Fatalf("format byte %d, want 2", v[0])
	}
	if err := decodeConnection(&c, v); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("round trip: got %+v, %v; want %+v", c, err, want)
	}
}
