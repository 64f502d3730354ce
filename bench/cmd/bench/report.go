package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// point is the medians of the searches of one scenario, transport and
// server.
type point struct {
	rate, achieved, cpu, p99, rss float64
	redisCPU                      float64  // of cpu, redis-server's (cluster targets)
	each                          []string // best rate of each search
	n                             int      // searches
}

func summarize(searches []search) point {
	var rates, achieved, cpu, p99, rss, redisCPU []float64
	var p point
	for _, s := range searches {
		p.n++
		if s.best == nil {
			rates = append(rates, 0)
			p.each = append(p.each, "none")
			continue
		}
		rates = append(rates, float64(s.best.rate))
		achieved = append(achieved, s.best.achieved)
		cpu = append(cpu, s.best.cpuMSFlow)
		redisCPU = append(redisCPU, s.best.redisCPU)
		p99 = append(p99, float64(s.best.p99))
		rss = append(rss, s.best.rssMB)
		if s.capped {
			p.each = append(p.each, ">="+strconv.Itoa(s.best.rate)+" (max)")
		} else {
			p.each = append(p.each, strconv.Itoa(s.best.rate))
		}
	}
	p.rate, p.achieved, p.cpu, p.p99, p.rss = median(rates), median(achieved), median(cpu), median(p99), median(rss)
	p.redisCPU = median(redisCPU)
	return p
}

func ratio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func orDash(format string, v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func (b *bench) report(scens []*scenario, results map[string][]search, tail, over []overload, truncated bool, took time.Duration) string {
	var w strings.Builder
	host, _ := os.Hostname()
	var names []string
	for _, t := range b.targets {
		names = append(names, t.name())
	}
	fmt.Fprintf(&w, "## Benchmark: %s\n\n", strings.Join(names, " vs "))
	fmt.Fprintf(&w, "%s, %d CPUs shared by sipp and the server, %d users, %v per REGISTER step, %v per calls step, servers alternated per search (%s). ",
		host, runtime.NumCPU(), b.o.users, b.o.duration, b.o.callDur, strings.Join(names, ", "))
	fmt.Fprintf(&w, "A rate passes with zero failed flows, retransmissions <= %.0f%% of flows, p99 < %d ms and >= %.0f%% of the target rate achieved. Medians of %d searches per point; the whole bench took %v.\n\n",
		b.o.maxRetrans*100, b.o.maxP99, b.o.minAchieved*100, b.o.reps, took.Round(time.Second))
	two := len(b.targets) == 2 && names[0] == "sipwarden" && names[1] == "kamailio"
	if slices.Contains(names, "redis") || slices.Contains(names, "redis2") {
		b.clusterReport(&w, scens, results)
	}
	if two {
		fmt.Fprintln(&w, "| scenario | transport | sipwarden max rate/s | Kamailio max rate/s | rate ratio | sipwarden CPU ms/flow | Kamailio CPU ms/flow | CPU ratio | sipwarden p99 ms | Kamailio p99 ms | sipwarden peak MB | Kamailio peak MB | searches sipwarden / Kamailio |")
		fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	} else {
		fmt.Fprintln(&w, "| scenario | transport | server | max rate/s | achieved/s | server CPU ms/flow | p99 ms | peak MB | searches |")
		fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	}
	for _, sc := range scens {
		for _, tr := range b.o.transports {
			if two {
				s := summarize(results[key(sc.name, tr, "sipwarden")])
				k := summarize(results[key(sc.name, tr, "kamailio")])
				fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n",
					sc.title, tr, orDash("%.0f", s.rate), orDash("%.0f", k.rate), ratio(s.rate, k.rate),
					orDash("%.3f", s.cpu), orDash("%.3f", k.cpu), ratio(s.cpu, k.cpu),
					orDash("%.0f", s.p99), orDash("%.0f", k.p99), orDash("%.0f", s.rss), orDash("%.0f", k.rss),
					strings.Join(s.each, ", "), strings.Join(k.each, ", "))
				continue
			}
			for _, name := range names {
				p := summarize(results[key(sc.name, tr, name)])
				fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc.title, tr, name,
					orDash("%.0f", p.rate), orDash("%.0f", p.achieved), orDash("%.3f", p.cpu), orDash("%.0f", p.p99), orDash("%.0f", p.rss), strings.Join(p.each, ", "))
			}
		}
	}
	if truncated {
		fmt.Fprintf(&w, "\nThe %v budget ran out: fewer than %d searches for some points.\n", b.o.budget, b.o.reps)
	}
	if two {
		fmt.Fprintf(&w, "\nRatios are sipwarden/Kamailio (rate: higher is better for sipwarden; CPU: lower is). CPU, p99 and memory are those of the highest passing step of each search; CPU counts every process of the server. Each step runs against a server started for it, so memory is the peak of that step: sipwarden's VmHWM; Kamailio's is the peak of its processes' summed PSS (shared memory counted once, sampled every 100 ms).\n\n")
	} else {
		fmt.Fprintf(&w, "\nCPU, p99 and memory are those of the highest passing step of each search; CPU counts every process of the server (a cluster's nodes and redis-server). Memory: a bbolt node's VmHWM; a cluster's peak summed PSS of its nodes and redis-server, sampled every 100 ms.\n\n")
	}
	w.WriteString(b.tailReport(tail))
	w.WriteString(b.overloadReport(over))
	fmt.Fprintln(&w, "Steps:")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| scenario | transport | server | search | rate | result | achieved/s | retrans | p99 ms | server CPU ms/flow | of which redis-server | sipp CPU ms/flow | server peak MB | UDP drops server/sipp |")
	fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, sc := range scens {
		for _, tr := range b.o.transports {
			for _, name := range names {
				for i, s := range results[key(sc.name, tr, name)] {
					for _, st := range s.steps {
						res := "pass"
						if !st.pass {
							res = "fail: " + st.why
						}
						fmt.Fprintf(&w, "| %s | %s | %s | %d | %d | %s | %.0f | %d | %d | %.3f | %.3f | %.3f | %.0f | %d/%d |\n",
							sc.name, tr, name, i+1, st.rate, res, st.achieved, st.retrans, st.p99, st.cpuMSFlow, st.redisCPU, st.sippCPU, st.rssMB, st.serverDrops, st.otherDrops)
					}
				}
			}
		}
	}
	fmt.Fprintln(&w)
	return w.String()
}

// clusterReport writes the cluster's table (issue 14): each
// configuration's medians beside the bbolt node's, with the ratios.
func (b *bench) clusterReport(w *strings.Builder, scens []*scenario, results map[string][]search) {
	label := map[string]string{
		"sipwarden": "one node on bbolt",
		"redis":     "one node on Redis",
		"redis2":    "two nodes on one Redis (two sipp, users split, rates added)",
	}
	fmt.Fprintln(w, "Cluster (issue 14): the same REGISTER flows; CPU per flow counts every node and redis-server. Ratios are to the bbolt node (rate: higher is better; CPU: lower is). The issue's target: one node on Redis >= 0.8x the bbolt node's rate.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | transport | configuration | max rate/s | rate ratio | CPU ms/flow | of which redis-server | CPU ratio | p99 ms | peak MB | searches |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, sc := range scens {
		for _, tr := range b.o.transports {
			base := summarize(results[key(sc.name, tr, "sipwarden")])
			for _, t := range b.targets {
				p := summarize(results[key(sc.name, tr, t.name())])
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc.title, tr, label[t.name()],
					orDash("%.0f", p.rate), ratio(p.rate, base.rate), orDash("%.3f", p.cpu), orDash("%.3f", p.redisCPU),
					ratio(p.cpu, base.cpu), orDash("%.0f", p.p99), orDash("%.0f", p.rss), strings.Join(p.each, ", "))
			}
		}
	}
	fmt.Fprintln(w)
}

// sustainRuns runs -sustain flows/s for the scenario's duration (-duration
// for register, -call-duration for calls), once per server, scenario and
// transport, and reports the server's memory every 10 s.
func (b *bench) sustainRuns(ctx context.Context, scens []*scenario) error {
	var w strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&w, "## Memory under sustained load\n\n%s, %d CPUs shared by sipp and the server, %d users, %d %s.\n\n",
		host, runtime.NumCPU(), b.o.users, b.o.sustain, "flows/s")
	fmt.Fprintln(&w, "| scenario | transport | server | rate/s | duration | result | achieved/s | flows | retrans | p99 ms | server CPU ms/flow | peak MB | memory every 10 s, MB |")
	fmt.Fprintln(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, sc := range scens {
		for _, tr := range b.o.transports {
			for _, t := range b.targets {
				var mu sync.Mutex
				var series []string
				var nsample int
				every := func(kb int64) {
					mu.Lock()
					defer mu.Unlock()
					if nsample%100 == 0 { // every 10 s at 100 ms
						series = append(series, fmt.Sprintf("%.0f", float64(kb)/1024))
					}
					nsample++
				}
				logf("%s %s %s: sustaining %d/s for %v", t.name(), sc.name, tr, b.o.sustain, sc.duration)
				st, err := b.stepFor(ctx, sc, tr, t, b.o.sustain, sc.duration, 100*time.Millisecond, every)
				if err != nil {
					return err
				}
				res := "pass"
				if !st.pass {
					res = "fail: " + st.why
				}
				mu.Lock()
				fmt.Fprintf(&w, "| %s | %s | %s | %d | %v | %s | %.0f | %d | %d | %d | %.3f | %.0f | %s |\n",
					sc.name, tr, t.name(), b.o.sustain, sc.duration, res, st.achieved, st.flows, st.retrans, st.p99, st.cpuMSFlow, st.rssMB, strings.Join(series, " "))
				mu.Unlock()
			}
		}
	}
	fmt.Fprintln(&w, "\nMemory: sipwarden's VmHWM for the peak, its RSS (PSS) for the series; Kamailio's summed PSS of its processes.")
	fmt.Print(w.String())
	if b.o.out != "" {
		return os.WriteFile(b.o.out, []byte(w.String()), 0o644)
	}
	return nil
}
