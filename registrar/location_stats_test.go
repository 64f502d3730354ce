package registrar

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// scanCount counts the table's bindings by transport the slow way.
func scanCount(l *Location) map[string]int {
	out := map[string]int{}
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		for _, e := range s.aors {
			for _, b := range e.bindings {
				tp := b.Transport
				if countIndex(tp) == len(countedTransports)-1 {
					tp = "other"
				}
				out[tp]++
			}
		}
		s.mu.RUnlock()
	}
	return out
}

// TestCountByTransportFollowsEveryChange drives every path that changes
// the table (Update, a failed Update, Restore, Sweep, RemoveBinding,
// RemoveAOR) with random operations and compares the per-shard counters
// with a full scan after each one.
func TestCountByTransportFollowsEveryChange(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := NewLocation(nil, clk.now, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	tps := []string{"udp", "tcp", "tls", "ws", "wss", "sctp"}
	id := 0
	newBinding := func(aor string) store.Binding {
		id++
		return store.Binding{ID: fmt.Sprint(id), AOR: aor, Transport: tps[rng.IntN(len(tps))],
			Expires: clk.now().Add(time.Duration(1+rng.IntN(30)) * time.Second)}
	}
	check := func(step int, op string) {
		t.Helper()
		if got, want := l.CountByTransport(), scanCount(l); !maps.Equal(got, want) {
			t.Fatalf("step %d (%s): got %v, want %v", step, op, got, want)
		}
	}
	var restore []store.Binding
	for i := range 50 {
		restore = append(restore, newBinding(fmt.Sprintf("r%d", i%20)))
	}
	l.Restore(restore)
	check(0, "restore")
	for step := 1; step <= 3000; step++ {
		aor := fmt.Sprintf("u%d", rng.IntN(200))
		var op string
		switch r := rng.IntN(10); {
		case r < 5:
			op = "update"
			n := rng.IntN(4)
			bs := make([]store.Binding, n)
			for i := range bs {
				bs[i] = newBinding(aor)
			}
			if _, _, err := l.Update(aor, set(bs...)); err != nil {
				t.Fatal(err)
			}
		case r < 6:
			op = "failed update"
			_, _, _ = l.Update(aor, func([]store.Binding) ([]store.Binding, error) { return nil, errors.New("no") })
		case r < 7:
			op = "remove aor"
			l.RemoveAOR(aor)
		case r < 8:
			op = "remove binding"
			l.RemoveBinding(fmt.Sprint(rng.IntN(id + 1)))
		default:
			op = "sweep"
			clk.add(time.Duration(rng.IntN(5)) * time.Second)
			l.Sweep(clk.now())
		}
		check(step, op)
	}
	clk.add(time.Hour)
	l.Sweep(clk.now())
	if got := l.CountByTransport(); len(got) != 0 {
		t.Fatalf("after everything expired: got %v, want no bindings", got)
	}
}

// fillLocation makes a table of n single-binding AORs, spread over the
// transports as phones are: mostly UDP.
func fillLocation(b *testing.B, n int) *Location {
	b.Helper()
	l := NewLocation(nil, nil, nil)
	now := time.Now()
	bs := make([]store.Binding, n)
	for i := range bs {
		tp := "udp"
		switch i % 10 {
		case 7, 8:
			tp = "tcp"
		case 9:
			tp = "tls"
		}
		bs[i] = store.Binding{ID: fmt.Sprint(i), AOR: fmt.Sprintf("user%07d", i), Transport: tp,
			Expires: now.Add(time.Hour), RegisteredAt: now}
	}
	if got := l.Restore(bs); got != n {
		b.Fatalf("restored %d, want %d", got, n)
	}
	return l
}

// BenchmarkCountByTransport1M is the cost of one metrics scrape of the
// bindings gauge with a million bindings in the table.
func BenchmarkCountByTransport1M(b *testing.B) {
	l := fillLocation(b, 1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if m := l.CountByTransport(); m["udp"] != 700_000 {
			b.Fatalf("got %v", m)
		}
	}
}

// BenchmarkCountScan1M is what the same scrape costs by scanning the
// table under each shard's read lock (the Count method), for comparison.
func BenchmarkCountScan1M(b *testing.B) {
	l := fillLocation(b, 1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		l.Count(func(_ string, c int) { n += c })
		if n != 1_000_000 {
			b.Fatalf("got %d", n)
		}
	}
}
