package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/cluster"

	"github.com/sipwarden/sipwarden/cluster/redistest"
	"github.com/sipwarden/sipwarden/store"
)

// Flush writes everything queued, in more than one batch when the queue
// is long, and Load reads it all back.
func TestBindingsFlushLoad(t *testing.T) {
	r := redistest.Start(t)
	c := open(t, r, "a")
	b := c.Bindings(func(string, []store.Binding, []string) {})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	const n = 2500 // three batches
	for i := range n {
		aor := fmt.Sprintf("user%05d", i)
		b.SaveBindings(aor, nil, []store.Binding{{ID: "b" + aor, AOR: aor, Contact: "<sip:" + aor + "@192.0.2.1>", Transport: "udp", Expires: exp}})
	}
	b.SaveBindings("gone", nil, nil) // a deletion in the same flush
	ctx := context.Background()
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d bindings, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, x := range got {
		if x.ID != "b"+x.AOR || !x.Expires.Equal(exp) {
			t.Errorf("got %+v, want ID b%s expiring at %v", x, x.AOR, exp)
		}
		seen[x.AOR] = true
	}
	if len(seen) != n {
		t.Errorf("got %d AORs, want %d", len(seen), n)
	}
	if ttl := r.Do("PTTL sipwarden:binds:user00042"); ttl == ":-1" || ttl == ":-2" {
		t.Errorf("PTTL: got %s, want the binding's expiry", ttl)
	}
}

// openTimeout is open with the cluster's command timeout set.
func openTimeout(t *testing.T, r *redistest.Server, node string, timeout time.Duration) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cluster.Open(ctx, cluster.Config{URL: r.URL(), Node: node, Advertise: "127.0.0.1:5060", Timeout: timeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runBindings runs b until the test ends.
func runBindings(t *testing.T, b *cluster.Bindings) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func oneBinding(aor string) []store.Binding {
	return []store.Binding{{ID: "b" + aor, AOR: aor, Contact: "sip:" + aor + "@192.0.2.1", Transport: "udp", Expires: time.Now().Add(time.Hour)}}
}

// TestBindingsStoredGroupCommit: Stored returns once Redis holds the
// set (read back right then), and REGISTERs waiting at the same time
// share pipelines: 200 saves waited for concurrently take far fewer
// batches (one PUBLISH each) than saves.
func TestBindingsStoredGroupCommit(t *testing.T) {
	r := redistest.Start(t)
	b := open(t, r, "a").Bindings(func(string, []store.Binding, []string) {})
	runBindings(t, b)
	ctx := context.Background()
	b.SaveBindings("alice", nil, oneBinding("alice"))
	if err := b.Stored(ctx, b.Ticket()); err != nil {
		t.Fatalf("Stored: %v", err)
	}
	if got := r.Do("EXISTS sipwarden:binds:alice"); got != ":1" {
		t.Fatalf("right after Stored, EXISTS: got %s, want :1", got)
	}
	before := r.Calls("publish")
	const n = 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			aor := fmt.Sprintf("u%03d", i)
			b.SaveBindings(aor, nil, oneBinding(aor))
			err := b.Stored(ctx, b.Ticket())
			if err == nil && r.Do("EXISTS sipwarden:binds:"+aor) != ":1" {
				err = fmt.Errorf("not in redis when Stored returned")
			}
			if err != nil {
				mu.Lock()
				failed = append(failed, aor+": "+err.Error())
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d saves: %v", len(failed), n, failed)
	}
	batches := r.Calls("publish") - before
	t.Logf("%d saves waited for at once went in %d batches", n, batches)
	if batches < 1 || batches > n/2 {
		t.Errorf("got %d batches for %d concurrent saves, want between 1 and %d (shared pipelines)", batches, n, n/2)
	}
}

// TestBindingsStoredRedisFrozen: with redis-server frozen (SIGSTOP),
// Stored fails within about the command timeout with ErrUnavailable,
// never nil; once it runs again (SIGCONT) the sets queued meanwhile are
// written by the writer's retry, with no restart, and a new save is
// stored.
func TestBindingsStoredRedisFrozen(t *testing.T) {
	r := redistest.Start(t)
	const timeout = 200 * time.Millisecond
	b := openTimeout(t, r, "a", timeout).Bindings(func(string, []store.Binding, []string) {})
	runBindings(t, b)
	ctx := context.Background()
	b.SaveBindings("before", nil, oneBinding("before"))
	if err := b.Stored(ctx, b.Ticket()); err != nil {
		t.Fatalf("Stored before the freeze: %v", err)
	}
	r.Pause()
	for _, aor := range []string{"frozen1", "frozen2"} {
		b.SaveBindings(aor, nil, oneBinding(aor))
		start := time.Now()
		err := b.Stored(ctx, b.Ticket())
		if !errors.Is(err, cluster.ErrUnavailable) {
			r.Resume()
			t.Fatalf("Stored of %s with redis frozen: got %v, want ErrUnavailable", aor, err)
		}
		if d := time.Since(start); d > 3*timeout {
			t.Errorf("Stored of %s took %v with redis frozen, want about the timeout (%v)", aor, d, timeout)
		}
	}
	if b.NotStored() < 2 {
		t.Errorf("NotStored: got %d, want at least 2", b.NotStored())
	}
	r.Resume()
	wait(t, "a save stored after redis runs again", 10*time.Second, func() bool {
		b.SaveBindings("after", nil, oneBinding("after"))
		return b.Stored(ctx, b.Ticket()) == nil
	})
	for _, aor := range []string{"before", "frozen1", "frozen2", "after"} {
		if got := r.Do("EXISTS sipwarden:binds:" + aor); got != ":1" {
			t.Errorf("%s: EXISTS got %s, want :1", aor, got)
		}
	}
}

// TestBindingsStoredLargeQueue: with more sets queued than one batch
// takes, the waiters of the first saves are released as their batch is
// written, and a set saved again while queued is written as of its last
// save.
func TestBindingsStoredLargeQueue(t *testing.T) {
	r := redistest.Start(t)
	// Three batches of 1,000 within the timeout, even under -race on a
	// loaded machine: this test is about order, not time.
	b := openTimeout(t, r, "a", 10*time.Second).Bindings(func(string, []store.Binding, []string) {})
	for i := range 2500 {
		aor := fmt.Sprintf("q%04d", i)
		b.SaveBindings(aor, nil, oneBinding(aor))
	}
	first := b.Ticket()
	newer := oneBinding("q0000")
	newer[0].ID = "newer"
	b.SaveBindings("q0000", oneBinding("q0000"), newer) // replaces bq0000
	runBindings(t, b)
	ctx := context.Background()
	if err := b.Stored(ctx, first); err != nil {
		t.Fatalf("Stored(%d): %v", first, err)
	}
	if err := b.Stored(ctx, b.Ticket()); err != nil {
		t.Fatalf("Stored(last): %v", err)
	}
	got, err := b.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2500 {
		t.Fatalf("got %d bindings, want 2500", len(got))
	}
	for _, x := range got {
		if x.AOR == "q0000" && x.ID != "newer" {
			t.Errorf("q0000: got binding %s, want the last save's (newer)", x.ID)
		}
	}
}

// TestBindingsSubscribeBeforeLoad: a node starting subscribes before it
// loads; a set another node writes after that, before the node runs, is
// applied once it runs (it used to subscribe only in Run, and such a set
// was missed until the device registered again).
func TestBindingsSubscribeBeforeLoad(t *testing.T) {
	r := redistest.Start(t)
	writer := open(t, r, "a").Bindings(func(string, []store.Binding, []string) {})
	applied := make(chan string, 16)
	starting := open(t, r, "b").Bindings(func(aor string, _ []store.Binding, _ []string) { applied <- aor })
	ctx := context.Background()
	if err := starting.Subscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := starting.Load(ctx); err != nil {
		t.Fatal(err)
	}
	writer.SaveBindings("late", nil, oneBinding("late"))
	if err := writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	runBindings(t, starting)
	select {
	case aor := <-applied:
		if aor != "late" {
			t.Errorf("applied %q, want late", aor)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the set written between the load and Run was not applied")
	}
}

// TestBindingsTwoNodesOneAOR: two nodes changing one AOR at once keep
// each other's bindings (in Redis, and in what each applies of the
// other's); a removal takes only the binding it names; the hash expires
// with its latest binding, whichever node wrote it.
func TestBindingsTwoNodesOneAOR(t *testing.T) {
	r := redistest.Start(t)
	type applied struct {
		up  []string
		del []string
	}
	got := map[string]chan applied{"a": make(chan applied, 16), "b": make(chan applied, 16)}
	bind := map[string]*cluster.Bindings{}
	for _, node := range []string{"a", "b"} {
		bind[node] = open(t, r, node).Bindings(func(aor string, up []store.Binding, del []string) {
			var a applied
			for _, b := range up {
				a.up = append(a.up, b.ID)
			}
			a.del = del
			got[node] <- a
		})
		if err := bind[node].Subscribe(context.Background()); err != nil {
			t.Fatal(err)
		}
		runBindings(t, bind[node])
	}
	next := func(node string) applied {
		t.Helper()
		select {
		case a := <-got[node]:
			return a
		case <-time.After(3 * time.Second):
			t.Fatalf("node %s applied nothing", node)
			return applied{}
		}
	}
	ctx := context.Background()
	soon, late := time.Now().Add(time.Minute), time.Now().Add(time.Hour)
	fromA := store.Binding{ID: "fromA", AOR: "alice", Expires: late}
	fromB := store.Binding{ID: "fromB", AOR: "alice", Expires: soon}
	// Neither node has seen the other's binding when it saves its own.
	bind["a"].SaveBindings("alice", nil, []store.Binding{fromA})
	bind["b"].SaveBindings("alice", nil, []store.Binding{fromB})
	for _, node := range []string{"a", "b"} {
		if err := bind[node].Stored(ctx, bind[node].Ticket()); err != nil {
			t.Fatal(err)
		}
	}
	if a := next("a"); !slices.Equal(a.up, []string{"fromB"}) || a.del != nil {
		t.Errorf("node a applied %+v, want b's upsert of fromB only", a)
	}
	if a := next("b"); !slices.Equal(a.up, []string{"fromA"}) || a.del != nil {
		t.Errorf("node b applied %+v, want a's upsert of fromA only", a)
	}
	loaded, err := bind["a"].Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var loadedIDs []string
	for _, b := range loaded {
		loadedIDs = append(loadedIDs, b.ID)
	}
	slices.Sort(loadedIDs)
	if !slices.Equal(loadedIDs, []string{"fromA", "fromB"}) {
		t.Errorf("redis holds %v, want both nodes' bindings", loadedIDs)
	}
	// b wrote last, with the earlier expiry: the hash keeps a's.
	if pt := r.Do("PEXPIRETIME sipwarden:binds:alice"); pt != fmt.Sprintf(":%d", late.UnixMilli()) {
		t.Errorf("PEXPIRETIME: got %s, want :%d (the latest binding's)", pt, late.UnixMilli())
	}
	// a's device unregisters: b's stays.
	bind["a"].SaveBindings("alice", []store.Binding{fromA, fromB}, []store.Binding{fromB})
	if err := bind["a"].Stored(ctx, bind["a"].Ticket()); err != nil {
		t.Fatal(err)
	}
	if a := next("b"); a.up != nil || !slices.Equal(a.del, []string{"fromA"}) {
		t.Errorf("node b applied %+v, want the removal of fromA only", a)
	}
	if vs := r.HVals("sipwarden:binds:alice"); len(vs) != 1 || !strings.Contains(vs[0], `"id":"fromB"`) {
		t.Errorf("redis holds %q, want fromB only", vs)
	}
	// The last one goes: so does the key.
	bind["b"].SaveBindings("alice", []store.Binding{fromB}, nil)
	if err := bind["b"].Stored(ctx, bind["b"].Ticket()); err != nil {
		t.Fatal(err)
	}
	if got := r.Do("EXISTS sipwarden:binds:alice"); got != ":0" {
		t.Errorf("EXISTS after the last removal: got %s, want :0", got)
	}
}

// TestBindingsStoredCancelAndStop: a wait ends with ErrUnavailable when
// its context does, while the batch is held up (redis-server frozen), and
// once Run has ended a wait returns at once with ErrUnavailable instead of
// waiting for a writer that is gone.
func TestBindingsStoredCancelAndStop(t *testing.T) {
	r := redistest.Start(t)
	b := openTimeout(t, r, "a", 10*time.Second).Bindings(func(string, []store.Binding, []string) {})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	defer func() { stop(); <-done }()

	r.Pause()
	b.SaveBindings("held", nil, oneBinding("held"))
	wctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	err := b.Stored(wctx, b.Ticket())
	cancel()
	r.Resume()
	if !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("Stored with its context ended: got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Stored with a 100 ms context took %v", d)
	}
	if err := b.Stored(context.Background(), b.Ticket()); err != nil {
		t.Fatalf("Stored once redis runs again: %v", err)
	}

	stop()
	<-done
	b.SaveBindings("late", nil, oneBinding("late"))
	ended := make(chan error, 1)
	go func() { ended <- b.Stored(context.Background(), b.Ticket()) }()
	select {
	case err := <-ended:
		if !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("Stored after Run ended: got %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stored after Run ended still waits after 5 s")
	}
}
