package server

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// GC percent bounds of TuneGC: never collect more often than Go's default,
// never let a small heap grow more than 9-fold.
const (
	minGCPercent = 100
	maxGCPercent = 800
)

// gcSpacing is the time between collections TuneGC aims at under load: the
// headroom it grants is what the process allocates in that time. One
// collection a second marks the live heap (tens of MB for ten thousand
// bindings) once a second, about 1% of a core; more headroom than that buys
// little CPU and costs memory.
const gcSpacing = time.Second

// TuneGC keeps the GC's heap goal near the live heap plus a headroom while
// the live heap is small: a REGISTER or call under load allocates a few KB
// that die at once, and with Go's default (collect when the heap doubles) a
// 40 MB live heap is marked again every few hundred milliseconds at high
// rates. The headroom follows the allocation rate (what is allocated in
// gcSpacing, measured every interval), up to maxHeadroom: an idle or lightly
// loaded node keeps Go's default and its memory; under REGISTER load the
// headroom grows with the rate, so memory follows load (issue 18: 5,000
// REGISTER flows/s had 128 MB of headroom, 210 MB RSS, where 60 MB does)
// and the top rates keep the CPU saving of the full headroom. With a large
// live heap (a million bindings) the percent stays at Go's 100. It checks
// every interval until ctx ends and does nothing when GOGC is set in the
// environment: the operator's choice wins.
func TuneGC(ctx context.Context, maxHeadroom uint64, interval time.Duration, logger *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		logger.Info("GC tuning off: GOGC is set", "gogc", os.Getenv("GOGC"))
		return
	}
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	var r allocRate
	last := -1
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(samples)
		if samples[0].Value.Kind() == metrics.KindUint64 && samples[1].Value.Kind() == metrics.KindUint64 {
			perSec := r.observe(samples[1].Value.Uint64(), time.Now())
			headroom := min(uint64(perSec*gcSpacing.Seconds()), maxHeadroom)
			if p := gcPercent(samples[0].Value.Uint64(), headroom); p != last {
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

// allocRate estimates the allocation rate from the runtime's cumulative
// count of allocated bytes. It rises at once with a burst (the headroom
// must be there before the burst's collections) and decays by half each
// observation after it, so a storm's end does not leave the goal high for
// long, nor do the gaps of bursty load make it oscillate.
type allocRate struct {
	total  uint64
	at     time.Time
	perSec float64
}

// observe records the cumulative total at now and returns the estimate in
// bytes per second.
func (r *allocRate) observe(total uint64, now time.Time) float64 {
	if !r.at.IsZero() && total >= r.total {
		if d := now.Sub(r.at).Seconds(); d > 0 {
			r.perSec = max(float64(total-r.total)/d, r.perSec/2)
		}
	}
	r.total, r.at = total, now
	return r.perSec
}

// gcPercent is the GOGC that puts the heap goal at live + headroom, within
// [minGCPercent, maxGCPercent].
func gcPercent(live, headroom uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	return int(min(max(headroom*100/live, minGCPercent), maxGCPercent))
}
