package store_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sipwarden/sipwarden/store"
)

// TestIDsAreUUIDv7 decodes the IDs the store makes with google/uuid, an
// implementation independent of ours: version 7, RFC 9562 variant,
// canonical text, and the embedded unix milliseconds those of the store's
// clock, the one that stamps CreatedAt.
func TestIDsAreUUIDv7(t *testing.T) {
	clk := &clock{time.Date(2025, 6, 1, 12, 30, 45, 678_000_000, time.UTC)}
	db := open(t, store.Options{Now: clk.now})
	makers := []struct {
		kind string
		new  func() (string, error)
	}{
		{"connection", func() (string, error) {
			c, err := db.CreateConnection(store.Connection{Name: "c"})
			return c.ID, err
		}},
		{"credential", func() (string, error) {
			c, err := db.CreateCredential(cred(store.DefaultConnectionID, "u"+clk.t.Format("150405.000")))
			return c.ID, err
		}},
		{"api key", func() (string, error) {
			k, err := db.CreateAPIKey(store.APIKey{Name: "k"})
			return k.ID, err
		}},
	}
	for _, step := range []time.Duration{0, 1500 * time.Millisecond, 49 * time.Hour} {
		clk.t = clk.t.Add(step)
		for _, m := range makers {
			id, err := m.new()
			if err != nil {
				t.Fatalf("create %s: %v", m.kind, err)
			}
			u, err := uuid.Parse(id)
			if err != nil {
				t.Fatalf("%s id %q: %v", m.kind, id, err)
			}
			if u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
				t.Errorf("%s id %q: got version %d, variant %v, canonical %q; want 7, %v, the id itself", m.kind, id, u.Version(), u.Variant(), u.String(), uuid.RFC4122)
			}
			sec, nsec := u.Time().UnixTime()
			if got, want := time.Unix(sec, nsec).UnixMilli(), clk.t.UnixMilli(); got != want {
				t.Errorf("%s id %q: embeds %d ms, want the store clock's %d", m.kind, id, got, want)
			}
		}
	}
}
