package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// overload is one fixed-rate run after the searches (issue 18): a server
// driven past its own maximum (what an operator sees in a re-registration
// storm), or at a share of Kamailio's for the tail.
type overload struct {
	scenario, transport, server string
	max, rate                   int // the median maximum the rate derives from, the rate driven
	st                          step
}

// goodput is the successful flows per second, from the first flow sent
// to the last one ended (retransmissions and timeouts stretch a run past
// its nominal duration).
func (o overload) goodput() float64 {
	if o.st.elapsed <= 0 {
		return 0
	}
	return float64(o.st.ok) / o.st.elapsed.Seconds()
}

// overloadRuns drives each server at -overload times its own median
// highest zero-failure rate of the searches, for -overload-duration, once
// per scenario and transport, against a server started for it.
func (b *bench) overloadRuns(ctx context.Context, scens []*scenario, results map[string][]search) ([]overload, error) {
	own := func(sc *scenario, tr string, t target) float64 {
		return summarize(results[key(sc.name, tr, t.name())]).rate
	}
	return b.fixedRuns(ctx, scens, "overload: its", b.o.overload, own, func(*scenario) time.Duration { return b.o.overloadDur })
}

// fixedRuns runs every server once per scenario and transport at factor
// times the rate base gives (a median maximum; 0: none found, skipped),
// for the duration dur gives.
func (b *bench) fixedRuns(ctx context.Context, scens []*scenario, what string, factor float64,
	base func(*scenario, string, target) float64, dur func(*scenario) time.Duration) ([]overload, error) {
	var out []overload
	for _, sc := range scens {
		for _, tr := range b.o.transports {
			for _, t := range b.targets {
				baseRate := base(sc, tr, t)
				if !(baseRate > 0) {
					logf("%s %s %s %s maximum: none found, skipped", sc.name, tr, t.name(), what)
					continue
				}
				rate := roundRate(int(baseRate * factor))
				logf("%s %s %s %s %.1fx %d = %d %s/s for %v", sc.name, tr, t.name(), what, factor, int(baseRate), rate, sc.unit, dur(sc))
				st, err := b.stepFor(ctx, sc, tr, t, rate, dur(sc), 100*time.Millisecond, nil)
				if err != nil {
					return out, err
				}
				out = append(out, overload{scenario: sc.name, transport: tr, server: t.name(), max: int(baseRate), rate: rate, st: st})
			}
		}
	}
	return out, nil
}

// overloadReport is the overload table: goodput (successful flows per
// second of the run, sipp start to end) against the server's own maximum
// (target: at least 90%), the flows that failed (timed out or
// refused: sipp counts a 503 as a failed flow), p99 of the flows that
// completed, peak memory, and the datagrams the kernel dropped on the
// server's socket (requests lost without an answer).
func (b *bench) overloadReport(runs []overload) string {
	if len(runs) == 0 {
		return ""
	}
	var w strings.Builder
	fmt.Fprintf(&w, "### Overload: each server at %.1fx its own maximum for %v\n\n", b.o.overload, b.o.overloadDur)
	fmt.Fprintln(&w, "| scenario | transport | server | its max/s | driven/s | goodput/s | goodput / max | failed flows | p99 ms | peak MB | UDP drops at the server |")
	fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range runs {
		g := r.goodput()
		fmt.Fprintf(&w, "| %s | %s | %s | %d | %d | %.0f | %.0f%% | %d | %d | %.0f | %d |\n",
			r.scenario, r.transport, r.server, r.max, r.rate, g, 100*g/float64(r.max), r.st.flows-r.st.ok, r.st.p99, r.st.rssMB, r.st.serverDrops)
	}
	fmt.Fprintln(&w)
	return w.String()
}

// tailRuns drives every server at -tail times Kamailio's median maximum,
// one step each per scenario and transport, for the p99 comparison of
// issue 18 (at a rate both sustain, the tail is the servers', not a
// saturated CPU's). Without Kamailio among the servers it does nothing.
func (b *bench) tailRuns(ctx context.Context, scens []*scenario, results map[string][]search) ([]overload, error) {
	if !slices.Contains(b.o.servers, "kamailio") {
		return nil, nil
	}
	kamailio := func(sc *scenario, tr string, _ target) float64 {
		return summarize(results[key(sc.name, tr, "kamailio")]).rate
	}
	return b.fixedRuns(ctx, scens, "tail: Kamailio's", b.o.tail, kamailio, func(sc *scenario) time.Duration { return sc.duration })
}

// tailReport is the table of tailRuns.
func (b *bench) tailReport(runs []overload) string {
	if len(runs) == 0 {
		return ""
	}
	var w strings.Builder
	fmt.Fprintf(&w, "### Tail: both servers at %.1fx Kamailio's maximum\n\n", b.o.tail)
	fmt.Fprintln(&w, "| scenario | transport | server | rate/s | result | p99 ms | of which queued for a worker, p99 ms | server CPU ms/flow | peak MB |")
	fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range runs {
		res := "pass"
		if !r.st.pass {
			res = "fail: " + r.st.why
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %d | %s | %d | %s | %.3f | %.0f |\n",
			r.scenario, r.transport, r.server, r.rate, res, r.st.p99, fmtQueue(r.st.queueP99), r.st.cpuMSFlow, r.st.rssMB)
	}
	fmt.Fprintln(&w)
	return w.String()
}
