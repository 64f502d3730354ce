package cluster

import (
	"encoding/json"
	"strings"
	"testing"
)

// Run skips this node's own messages by their first bytes: they must be
// what write publishes, whatever the node's name, and no other node's.
func TestOwnBindingMessagePrefix(t *testing.T) {
	for _, node := range []string{"edge-1", `odd"name\`, "é"} {
		b := (&Cluster{cfg: Config{Node: node}}).Bindings(nil)
		other := (&Cluster{cfg: Config{Node: node + "x"}}).Bindings(nil)
		msg, err := json.Marshal(bindingBatch{Node: node, Sets: []bindingSet{{Node: node, AOR: "alice"}}})
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
