package server

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// GC percent bounds of tuneGC: never collect more often than Go's default,
// never let a small heap grow more than 9-fold.
const (
	minGCPercent = 100
	maxGCPercent = 800
)

// TuneGC keeps the GC's heap goal near the live heap plus headroom bytes
// while the live heap is small: a REGISTER or call under load allocates a
// few KB that die at once, and with Go's default (collect when the heap
// doubles) a 40 MB live heap is marked again every few milliseconds. The
// GC's cost per byte allocated falls with the percent; the memory it costs
// is bounded by headroom. With a large live heap (a million bindings) the
// percent stays at Go's 100. It checks every interval until ctx ends and
// does nothing when GOGC is set in the environment: the operator's choice
// wins.
func TuneGC(ctx context.Context, headroom uint64, interval time.Duration, logger *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		logger.Info("GC tuning off: GOGC is set", "gogc", os.Getenv("GOGC"))
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := -1
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := gcPercent(sample[0].Value.Uint64(), headroom); p != last {
				debug.SetGCPercent(p)
				last = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gcPercent is the GOGC that puts the heap goal at live + headroom, within
// [minGCPercent, maxGCPercent].
func gcPercent(live, headroom uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	return int(min(max(headroom*100/live, minGCPercent), maxGCPercent))
}
