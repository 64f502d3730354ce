package cluster

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// Run skips this node's own messages by their first bytes: they must be
// what write publishes, whatever the node's name, and no other node's.
func TestOwnBindingMessagePrefix(t *testing.T) {
	for _, node := range []string{"edge-1", `odd"name\`, "é"} {
		b := (&Cluster{cfg: Config{Node: node}}).Bindings(nil)
		other := (&Cluster{cfg: Config{Node: node + "x"}}).Bindings(nil)
		msg, err := json.Marshal(bindingBatch{Node: node, Sets: []bindingChange{{AOR: "alice"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.HasPrefix(string(msg), b.own); !got {
			t.Errorf("node %q: got own prefix %q not on %s, want it", node, b.own, msg)
		}
		if got := strings.HasPrefix(string(msg), other.own); got {
			t.Errorf("node %q: another node's prefix %q on %s", node, other.own, msg)
		}
	}
}

func ids(bs []store.Binding) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

// diff names the bindings added or changed and the IDs removed; then
// lets a later change replace an earlier one's for the same ID.
func TestChangeDiffThen(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	a := store.Binding{ID: "a", Expires: exp}
	b := store.Binding{ID: "b", Expires: exp}
	b2 := store.Binding{ID: "b", Expires: exp.Add(time.Minute)}
	c := store.Binding{ID: "c", Expires: exp}

	ch := diff([]store.Binding{a, b}, []store.Binding{b2, c})
	if got, want := ids(ch.up), []string{"b", "c"}; !slices.Equal(got, want) {
		t.Errorf("diff up: got %v, want %v", got, want)
	}
	if got, want := ch.del, []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("diff del: got %v, want %v", got, want)
	}
	if ch := diff([]store.Binding{a, b}, []store.Binding{a, b}); len(ch.up)+len(ch.del) != 0 {
		t.Errorf("diff of a set with itself: got %+v, want nothing", ch)
	}

	// b refreshed, then removed; a removed, then added again; c added.
	got := change{up: []store.Binding{b2}, del: []string{"a"}}.then(change{up: []store.Binding{a, c}, del: []string{"b"}})
	if g, want := ids(got.up), []string{"a", "c"}; !slices.Equal(g, want) {
		t.Errorf("then up: got %v, want %v", g, want)
	}
	if want := []string{"b"}; !slices.Equal(got.del, want) {
		t.Errorf("then del: got %v, want %v", got.del, want)
	}
	// The earlier change is left as it was: a batch may be writing it.
	earlier := change{up: []store.Binding{a}}
	_ = earlier.then(change{del: []string{"a"}})
	if len(earlier.up) != 1 || earlier.del != nil {
		t.Errorf("then modified the earlier change: %+v", earlier)
	}
}
