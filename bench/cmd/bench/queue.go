package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// queueP99 reads sipwarden's sipwarden_sip_queue_delay_seconds from its
// /metrics at httpAddr (the server started with the step: the histogram
// is the step's) and returns the upper bound, in ms, of the bucket that
// holds its 99th percentile: the part of the flows' p99 spent waiting for
// a stateless worker. -1 when it cannot be read or nothing was queued.
func queueP99(ctx context.Context, httpAddr string) float64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return -1
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return -1
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		return -1
	}
	fam := fams["sipwarden_sip_queue_delay_seconds"]
	if fam == nil || len(fam.GetMetric()) == 0 {
		return -1
	}
	h := fam.GetMetric()[0].GetHistogram()
	total := h.GetSampleCount()
	if total == 0 {
		return -1
	}
	want := uint64(math.Ceil(0.99 * float64(total)))
	for _, bk := range h.GetBucket() {
		if bk.GetCumulativeCount() >= want {
			return bk.GetUpperBound() * 1000
		}
	}
	return math.Inf(1)
}

// fmtQueue formats queueP99's figure for the tables.
func fmtQueue(ms float64) string {
	switch {
	case ms < 0:
		return "-"
	case math.IsInf(ms, 1):
		return "> 1000"
	default:
		return fmt.Sprintf("<= %g", ms)
	}
}
