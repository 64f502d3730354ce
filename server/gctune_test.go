package server

import "testing"

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
