package proxy

import (
	"testing"
	"time"
)

// The per-source window: perMinute calls, then refusals until the minute
// passes; an IPv6 /64 counts as one source; a full table refuses new
// sources until windows expire.
func TestRateWindow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := newRateWindow(3, 2)
	for i := range 3 {
		if !r.allow("192.0.2.1:5000", now) {
			t.Fatalf("call %d refused within the limit", i+1)
		}
	}
	if r.allow("192.0.2.1:6000", now) {
		t.Fatal("4th call from the same address allowed")
	}
	if !r.allow("[2001:db8::1]:5000", now) || !r.allow("[2001:db8::2]:5000", now) || !r.allow("[2001:db8::3]:5000", now) {
		t.Fatal("calls from one /64 refused within the limit")
	}
	if r.allow("[2001:db8::4]:5000", now) {
		t.Fatal("the /64's 4th call allowed")
	}
	if r.allow("198.51.100.1:5000", now) {
		t.Fatal("a third source allowed while the table of 2 is full")
	}
	later := now.Add(time.Minute)
	if !r.allow("198.51.100.1:5000", later) || !r.allow("192.0.2.1:5000", later) {
		t.Fatal("calls refused after the window passed")
	}
	if r.allow("not an address", later) {
		t.Fatal("a source that is not an address allowed")
	}
}
