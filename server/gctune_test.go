package server

import (
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, maxGCPercent},
		{8 * mb, maxGCPercent},   // 1600% asked, capped
		{32 * mb, 400},           // 32 MB live + 128 MB
		{64 * mb, 200},           // 64 + 128
		{128 * mb, minGCPercent}, // 128 + 128: Go's default
		{700 * mb, minGCPercent}, // a million bindings: never under 100
	} {
		if got := gcPercent(c.live, 128*mb); got != c.want {
			t.Errorf("gcPercent(%d MB) = %d, want %d", c.live/mb, got, c.want)
		}
	}
}

func TestAllocRate(t *testing.T) {
	const mb = 1 << 20
	t0 := time.Unix(1000, 0)
	var r allocRate
	if got := r.observe(500*mb, t0); got != 0 {
		t.Fatalf("first observation = %v, want 0 (no interval yet)", got)
	}
	steps := []struct {
		total uint64
		want  float64 // MB/s
	}{
		{560 * mb, 60},  // 60 MB in 1 s
		{580 * mb, 30},  // 20 MB/s measured: halves from 60, not down to 20
		{590 * mb, 15},  // 10 MB/s measured: halves again
		{790 * mb, 200}, // a burst shows at once
		{790 * mb, 100}, // idle: decays
		{10 * mb, 100},  // counter below the last (cannot happen; kept, not trusted)
	}
	for i, s := range steps {
		got := r.observe(s.total, t0.Add(time.Duration(i+1)*time.Second)) / mb
		if got != s.want {
			t.Errorf("step %d: %v MB/s, want %v", i, got, s.want)
		}
	}
}
