package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkLookup1M times registrar.Location.Lookup over a table of a
// million AORs (one binding each), random AORs, and reports the latency
// percentiles of single lookups (time.Now around each, its overhead
// included) beside ns/op:
//
//	go test -run '^$' -bench Lookup1M -benchmem ./bench/cmd/scale/
func BenchmarkLookup1M(b *testing.B) {
	const n = 1_000_000
	now := time.Now()
	clock := now
	l := newLocation(n, now, 100*time.Minute, &clock, nil)
	aors := make([]string, 1<<16)
	for i := range aors {
		aors[i] = fmt.Sprintf("user%07d", rand.IntN(n))
	}
	var d []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t := time.Now()
		bs := l.Lookup(aors[i&(len(aors)-1)])
		d = append(d, time.Since(t))
		if len(bs) != 1 {
			b.Fatal("lookup failed")
		}
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(pct(d, 50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(pct(d, 99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(pct(d, 99.9).Nanoseconds()), "p99.9-ns")
}

// BenchmarkSweep1M measures one simulated minute of the sweeper (Sweep once
// a second) over a million bindings of which 1% expire per minute.
func BenchmarkSweep1M(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		b.StopTimer()
		now := time.Now()
		clock := now
		l := newLocation(n, now, 100*time.Minute, &clock, &nopSaver{})
		b.StartTimer()
		removed := 0
		for s := range 60 {
			clock = now.Add(time.Minute + time.Duration(s)*time.Second)
			removed += l.Sweep(clock)
		}
		if removed < n/100-n/1000 {
			b.Fatalf("removed %d, want about %d", removed, n/100)
		}
	}
}

func TestExpirySpread(t *testing.T) {
	now := time.Now()
	const n = 1000
	if got, want := expiry(0, n, now, 100*time.Minute), now.Add(time.Minute); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// 1% per minute: the 10th binding expires one minute after the first.
	if got, want := expiry(10, n, now, 100*time.Minute), now.Add(2*time.Minute); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
