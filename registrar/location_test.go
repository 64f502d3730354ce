package registrar

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/sipwarden/sipwarden/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder is a BindingSaver that keeps the last saved set per AOR, as
// the store does, and the set it replaced.
type recorder struct {
	mu    sync.Mutex
	last  map[string][]store.Binding
	prev  map[string][]store.Binding
	saves int
}

func (r *recorder) SaveBindings(aor string, prev, bs []store.Binding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last, r.prev = map[string][]store.Binding{}, map[string][]store.Binding{}
	}
	r.prev[aor] = prev
	r.saves++
	if len(bs) == 0 {
		delete(r.last, aor)
		return
	}
	r.last[aor] = bs
}

func set(bs ...store.Binding) func([]store.Binding) ([]store.Binding, error) {
	return func([]store.Binding) ([]store.Binding, error) { return bs, nil }
}

// newExpiringLocation returns a Location on a fake clock saving to a
// recorder, and the IDs of the bindings it reported expired.
func newExpiringLocation() (*Location, *fakeClock, *recorder, *[]string) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rec := &recorder{}
	l := NewLocation(rec, clk.now, nil)
	expired := new([]string)
	l.OnExpire(func(b store.Binding) { *expired = append(*expired, b.ID) })
	return l, clk, rec, expired
}

func TestLocationUpdateLookupExpire(t *testing.T) {
	l, clk, rec, exp := newExpiringLocation()
	now := clk.now()
	_, _, err := l.Update("alice", set(
		store.Binding{ID: "a1", AOR: "alice", Expires: now.Add(10 * time.Second)},
		store.Binding{ID: "a2", AOR: "alice", Expires: now.Add(60 * time.Second)},
	))
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = l.Update("bob", set(store.Binding{ID: "b1", AOR: "bob", Expires: now.Add(30 * time.Second)}))

	if got := len(l.Lookup("alice")); got != 2 {
		t.Fatalf("alice bindings: got %d, want 2", got)
	}
	clk.add(10 * time.Second)
	// Due but not swept: Lookup already hides it.
	if got := l.Lookup("alice"); len(got) != 1 || got[0].ID != "a2" {
		t.Fatalf("after expiry: got %v, want [a2]", got)
	}
	if n := l.Sweep(clk.now()); n != 1 {
		t.Fatalf("Sweep removed %d, want 1", n)
	}
	if len(*exp) != 1 || (*exp)[0] != "a1" {
		t.Errorf("OnExpire got %v, want [a1]", *exp)
	}
	if got := rec.last["alice"]; len(got) != 1 || got[0].ID != "a2" {
		t.Errorf("saved set: got %v, want [a2]", got)
	}
	if got := idsOf(rec.prev["alice"]); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("the set the sweep replaced: got %v, want [a1 a2] (the expired one with it)", got)
	}
	clk.add(50 * time.Second)
	if n := l.Sweep(clk.now()); n != 2 {
		t.Fatalf("second Sweep removed %d, want 2", n)
	}
	if len(l.Bindings("")) != 0 || len(rec.last) != 0 {
		t.Errorf("table or store not empty: %v %v", l.Bindings(""), rec.last)
	}
}

func TestLocationUpdateErrorChangesNothing(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rec := &recorder{}
	l := NewLocation(rec, clk.now, nil)
	b := store.Binding{ID: "x", AOR: "a", Expires: clk.now().Add(time.Minute)}
	_, _, _ = l.Update("a", set(b))
	_, _, err := l.Update("a", func([]store.Binding) ([]store.Binding, error) { return nil, fmt.Errorf("no") })
	if err == nil {
		t.Fatal("Update returned no error")
	}
	if got := l.Lookup("a"); len(got) != 1 || got[0].ID != "x" {
		t.Errorf("got %v, want the binding untouched", got)
	}
}

func TestLocationRemove(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rec := &recorder{}
	l := NewLocation(rec, clk.now, nil)
	exp := clk.now().Add(time.Hour)
	_, _, _ = l.Update("a", set(store.Binding{ID: "1", AOR: "a", Expires: exp}, store.Binding{ID: "2", AOR: "a", Expires: exp}))
	_, _, _ = l.Update("b", set(store.Binding{ID: "3", AOR: "b", Expires: exp}))
	if b, ok := l.RemoveBinding("2"); !ok || b.ID != "2" {
		t.Fatalf("RemoveBinding: got %v %v", b, ok)
	}
	if _, ok := l.RemoveBinding("2"); ok {
		t.Fatal("RemoveBinding removed a binding twice")
	}
	if gone := l.RemoveAOR("b"); len(gone) != 1 || gone[0].AOR != "b" {
		t.Fatalf("RemoveAOR: got %v, want b's one binding", gone)
	}
	all := l.Bindings("")
	if len(all) != 1 || all[0].ID != "1" {
		t.Errorf("left: got %v, want [1]", all)
	}
	if _, ok := rec.last["b"]; ok || len(rec.last["a"]) != 1 {
		t.Errorf("store: got %v", rec.last)
	}
	if got := idsOf(rec.prev["a"]); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("the set RemoveBinding replaced: got %v, want [1 2]", got)
	}
	if got := idsOf(rec.prev["b"]); !slices.Equal(got, []string{"3"}) {
		t.Errorf("the set RemoveAOR replaced: got %v, want [3]", got)
	}
	if l.Sweep(exp) != 1 {
		t.Error("the heap lost track of a remaining binding")
	}
}

func TestLocationRestoreDropsExpired(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := NewLocation(nil, clk.now, nil)
	now := clk.now()
	n := l.Restore([]store.Binding{
		{ID: "old", AOR: "a", Expires: now.Add(-time.Second)},
		{ID: "new", AOR: "a", Expires: now.Add(time.Minute), RegisteredAt: now},
		{ID: "first", AOR: "a", Expires: now.Add(time.Minute), RegisteredAt: now.Add(-time.Hour)},
	})
	if n != 2 {
		t.Fatalf("Restore kept %d, want 2", n)
	}
	got := l.Lookup("a")
	if len(got) != 2 || got[0].ID != "first" || got[1].ID != "new" {
		t.Errorf("got %v, want [first new] in registration order", got)
	}
}

// The sweeper must remove exactly the due bindings among many AORs with
// random expiries and random refreshes (heap bookkeeping).
func TestLocationSweepManyRandom(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rec := &recorder{}
	l := NewLocation(rec, clk.now, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]time.Time{}
	for i := 0; i < 5000; i++ {
		aor := fmt.Sprintf("u%d", rng.IntN(2000))
		exp := clk.now().Add(time.Duration(1+rng.IntN(300)) * time.Second)
		_, _, _ = l.Update(aor, set(store.Binding{ID: aor, AOR: aor, Expires: exp}))
		want[aor] = exp
	}
	for step := 0; step < 310; step += 7 {
		// Refreshes between sweeps, to later and to earlier expiries: an
		// entry whose heap place is stale (location.go, aorEntry.due)
		// must neither go early nor stay late.
		for range 200 {
			aor := fmt.Sprintf("u%d", rng.IntN(2000))
			if _, ok := want[aor]; !ok || !want[aor].After(clk.now()) {
				continue
			}
			exp := clk.now().Add(time.Duration(1+rng.IntN(300)) * time.Second)
			_, _, _ = l.Update(aor, set(store.Binding{ID: aor, AOR: aor, Expires: exp}))
			want[aor] = exp
		}
		prev := clk.now()
		clk.add(7 * time.Second)
		due := 0
		for _, exp := range want {
			if exp.After(prev) && !exp.After(clk.now()) {
				due++
			}
		}
		saves := rec.saves
		if n := l.Sweep(clk.now()); n != due {
			t.Fatalf("t+%ds: Sweep removed %d, want %d", step+7, n, due)
		}
		// One binding per AOR: a save per removal, none for a set that
		// did not change (an entry met early, refreshed since).
		if n := rec.saves - saves; n != due {
			t.Fatalf("t+%ds: Sweep saved %d sets, want %d", step+7, n, due)
		}
		for aor, exp := range want {
			live := len(l.Lookup(aor)) == 1
			if live != exp.After(clk.now()) {
				t.Fatalf("t+%ds %s: live=%v, expiry %v", step+7, aor, live, exp.Sub(clk.now()))
			}
		}
	}
	clk.add(10 * time.Minute)
	l.Sweep(clk.now())
	if got := len(l.Bindings("")); got != 0 {
		t.Errorf("after all expiries: %d bindings left", got)
	}
}

func TestLocationConcurrent(t *testing.T) {
	l := NewLocation(&recorder{}, nil, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				aor := fmt.Sprintf("u%d", i%50)
				_, _, _ = l.Update(aor, set(store.Binding{ID: aor, AOR: aor, Expires: time.Now().Add(time.Minute)}))
				l.Lookup(aor)
				if i%97 == 0 {
					l.RemoveAOR(aor)
					l.Sweep(time.Now())
				}
			}
		}(g)
	}
	wg.Wait()
	if n := len(l.Bindings("")); n > 50 {
		t.Errorf("got %d bindings, want at most 50", n)
	}
}

func BenchmarkLocationLookup(b *testing.B) {
	l := NewLocation(nil, nil, nil)
	exp := time.Now().Add(time.Hour)
	for i := 0; i < 100_000; i++ {
		aor := fmt.Sprintf("user%d", i)
		_, _, _ = l.Update(aor, set(store.Binding{ID: aor, AOR: aor, Expires: exp}))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if len(l.Lookup("user4242")) != 1 {
			b.Fatal("lookup failed")
		}
	}
}

func BenchmarkLocationUpdate(b *testing.B) {
	l := NewLocation(&recorder{}, nil, nil)
	exp := time.Now().Add(time.Hour)
	aors := make([]string, 10_000)
	for i := range aors {
		aors[i] = fmt.Sprintf("user%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		aor := aors[i%len(aors)]
		i++
		_, _, _ = l.Update(aor, func(cur []store.Binding) ([]store.Binding, error) {
			return []store.Binding{{ID: aor, AOR: aor, Expires: exp}}, nil
		})
	}
}

// RemoveFlow takes only the bindings of aor that came over that flow:
// another transport, another source (the browser's next WebSocket) and
// other AORs stay, in the table and in the store.
func TestLocationRemoveFlow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rec := &recorder{}
	l := NewLocation(rec, clk.now, nil)
	exp := clk.now().Add(time.Hour)
	_, _, _ = l.Update("a", set(
		store.Binding{ID: "1", AOR: "a", Transport: "ws", Source: "127.0.0.1:1000", Expires: exp},
		store.Binding{ID: "2", AOR: "a", Transport: "ws", Source: "127.0.0.1:2000", Expires: exp},
		store.Binding{ID: "3", AOR: "a", Transport: "tcp", Source: "127.0.0.1:1000", Expires: exp}))
	_, _, _ = l.Update("b", set(store.Binding{ID: "4", AOR: "b", Transport: "ws", Source: "127.0.0.1:1000", Expires: exp}))
	if n := l.RemoveFlow("a", "ws", "127.0.0.1:1000"); n != 1 {
		t.Fatalf("RemoveFlow: got %d, want 1", n)
	}
	if n := l.RemoveFlow("a", "ws", "127.0.0.1:1000"); n != 0 {
		t.Fatalf("RemoveFlow again: got %d, want 0", n)
	}
	if n := l.RemoveFlow("nobody", "ws", "127.0.0.1:1000"); n != 0 {
		t.Fatalf("RemoveFlow of an unknown AOR: got %d, want 0", n)
	}
	var ids []string
	for _, b := range l.Bindings("") {
		ids = append(ids, b.ID)
	}
	if fmt.Sprint(ids) != "[2 3 4]" {
		t.Errorf("left: got %v, want [2 3 4]", ids)
	}
	if len(rec.last["a"]) != 2 || len(rec.last["b"]) != 1 {
		t.Errorf("store: got %v", rec.last)
	}
	if n := l.RemoveFlow("b", "ws", "127.0.0.1:1000"); n != 1 || len(l.Lookup("b")) != 0 {
		t.Errorf("RemoveFlow of the last binding: got %d, left %v", n, l.Lookup("b"))
	}
	if _, ok := rec.last["b"]; ok {
		t.Error("store still holds b")
	}
}

func idsOf(bs []store.Binding) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

// Merge applies another node's change: the upserts replace their IDs,
// the removals go, what it does not name stays (another node's device
// registered at the same moment); nothing is saved; a removal of an
// expired binding is reported as its expiry.
func TestLocationMerge(t *testing.T) {
	l, clk, rec, exp := newExpiringLocation()
	now := clk.now()
	at := func(id string, reg, exp time.Duration) store.Binding {
		return store.Binding{ID: id, AOR: "alice", RegisteredAt: now.Add(reg), Expires: now.Add(exp)}
	}
	_, _, _ = l.Update("alice", set(at("mine", 0, time.Hour), at("short", -time.Minute, time.Second)))
	saves := rec.saves
	l.Merge("alice", []store.Binding{at("theirs", -2*time.Minute, time.Hour), at("gone", 0, -time.Second)}, nil)
	if got := idsOf(l.Lookup("alice")); !slices.Equal(got, []string{"theirs", "short", "mine"}) {
		t.Errorf("after an upsert: got %v, want [theirs short mine] (registration order, the expired upsert dropped)", got)
	}
	clk.add(2 * time.Second) // short has expired, not swept yet
	refreshed := at("mine", 0, 2*time.Hour)
	l.Merge("alice", []store.Binding{refreshed}, []string{"short", "unknown"})
	got := l.Lookup("alice")
	if ids := idsOf(got); !slices.Equal(ids, []string{"theirs", "mine"}) {
		t.Fatalf("after a refresh and removals: got %v, want [theirs mine]", ids)
	}
	if !got[1].Expires.Equal(refreshed.Expires) {
		t.Errorf("mine expires at %v, want the refresh's %v", got[1].Expires, refreshed.Expires)
	}
	if !slices.Equal(*exp, []string{"short"}) {
		t.Errorf("OnExpire got %v, want [short] (removed by the other node's sweep)", *exp)
	}
	l.Merge("alice", nil, []string{"theirs", "mine"})
	if got := l.Lookup("alice"); got != nil {
		t.Errorf("after removing all: got %v, want none", got)
	}
	if rec.saves != saves || len(l.Bindings("")) != 0 {
		t.Errorf("Merge saved (%d saves, want %d) or left bindings %v", rec.saves, saves, l.Bindings(""))
	}
	if n := l.Sweep(clk.now().Add(3 * time.Hour)); n != 0 {
		t.Errorf("Sweep removed %d after Merge emptied the AOR, want 0 (the heap kept in step)", n)
	}
}

// TestRemoveBindingHooks: an operator's removal is reported as a removal;
// of a binding that expired but was not swept yet, as its expiry (which
// the sweeper would have reported, and now no longer will).
func TestRemoveBindingHooks(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := NewLocation(nil, clk.now, nil)
	var removed, expired []string
	l.OnRemove(func(b store.Binding) { removed = append(removed, b.ID) })
	l.OnExpire(func(b store.Binding) { expired = append(expired, b.ID) })
	_, _, _ = l.Update("a", set(store.Binding{ID: "live", AOR: "a", Expires: clk.now().Add(time.Hour)}))
	_, _, _ = l.Update("b", set(store.Binding{ID: "late", AOR: "b", Expires: clk.now().Add(time.Second)}))
	clk.add(2 * time.Second)
	if _, ok := l.RemoveBinding("live"); !ok {
		t.Fatal("live binding not removed")
	}
	if _, ok := l.RemoveBinding("late"); !ok {
		t.Fatal("expired binding not removed")
	}
	if len(removed) != 1 || removed[0] != "live" || len(expired) != 1 || expired[0] != "late" {
		t.Fatalf("removed %v, expired %v; want [live] and [late]", removed, expired)
	}
	if n := l.Sweep(clk.now()); n != 0 {
		t.Fatalf("Sweep removed %d after RemoveBinding, want 0", n)
	}
}

// keyRecorder records the AOR strings handed to SaveBindings.
type keyRecorder struct{ keys []string }

func (k *keyRecorder) SaveBindings(aor string, _, _ []store.Binding) { k.keys = append(k.keys, aor) }

// The AOR a saver receives may be kept until its next write (the bbolt
// store's pending sets, a cluster node's queue); the one Update, the
// removals and the sweep are given may be a part of a whole request's
// text (package sipparse). The saver must get the table's own copy, never
// the caller's string: at 10,000 REGISTERs a second the store's pending
// keys kept a second of requests alive, 7 MB of the live heap.
func TestSaverKeysAreOwned(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	rec := &keyRecorder{}
	l := NewLocation(rec, clk.now, nil)
	text := "REGISTER sip:example.com SIP/2.0\r\nTo: <sip:alice@example.com>\r\n"
	inText := func(s string) bool {
		start := uintptr(unsafe.Pointer(unsafe.StringData(text)))
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return p >= start && p < start+uintptr(len(text))
	}
	aor := func() string { i := strings.Index(text, "alice"); return text[i : i+5] }
	now := clk.now()
	own := strings.Clone("alice")
	bind := func(id string) store.Binding {
		return store.Binding{ID: id, AOR: own, Source: id, Expires: now.Add(time.Minute)}
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"first update", func() { _, _, _ = l.Update(aor(), set(bind("a1"))) }},
		{"refresh", func() { _, _, _ = l.Update(aor(), set(bind("a1"), bind("a2"))) }},
		{"removal of one", func() { l.RemoveFlow(aor(), "", "a1") }}, // a2 stays
		{"update to none", func() { _, _, _ = l.Update(aor(), set()) }},
		{"update to none of nothing", func() { _, _, _ = l.Update(aor(), set()) }},
		{"bound again", func() { _, _, _ = l.Update(aor(), set(bind("a3"))) }},
		{"removal of the AOR", func() { l.RemoveAOR(aor()) }},
	}
	for _, st := range steps {
		before := len(rec.keys)
		st.do()
		for _, k := range rec.keys[before:] {
			if k != "alice" {
				t.Fatalf("%s: saved under %q, want alice", st.name, k)
			}
			if inText(k) {
				t.Errorf("%s: the saver got the caller's string, a part of the request's text", st.name)
			}
		}
		if len(rec.keys) == before {
			t.Fatalf("%s: nothing saved", st.name)
		}
	}
}
