package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

func cred(conn, user string) store.Credential {
	return store.Credential{
		ConnectionID: conn, Username: user, Enabled: true, Realm: "example.com",
		HA1: map[string]string{"MD5": "0123456789abcdef0123456789abcdef"},
	}
}

func TestCredentialCRUD(t *testing.T) {
	clk := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := open(t, store.Options{Now: clk.now})
	trunk, err := db.CreateConnection(store.Connection{Name: "trunk"})
	if err != nil {
		t.Fatal(err)
	}

	c, err := db.CreateCredential(cred(store.DefaultConnectionID, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !uuidV7.MatchString(c.ID) || !c.CreatedAt.Equal(clk.t) || !c.UpdatedAt.Equal(clk.t) {
		t.Fatalf("created %+v, want a UUIDv7 ID and both times %v", c, clk.t)
	}
	for name, get := range map[string]func() (store.Credential, error){
		"Credential":           func() (store.Credential, error) { return db.Credential(c.ID) },
		"CredentialByUsername": func() (store.Credential, error) { return db.CredentialByUsername("alice") },
	} {
		if got, err := get(); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("%s = %+v, %v; want %+v", name, got, err, c)
		}
	}

	// Records returned are copies.
	c.HA1["MD5"] = "changed"
	if got, _ := db.Credential(c.ID); got.HA1["MD5"] == "changed" {
		t.Fatal("changing a returned record changed the stored one")
	}

	createErrs := []struct {
		name    string
		c       store.Credential
		wantErr error
	}{
		{"username taken", cred(store.DefaultConnectionID, "alice"), store.ErrUsernameTaken},
		{"username taken in another connection", cred(trunk.ID, "alice"), store.ErrUsernameTaken},
		{"no such connection", cred("nope", "bob"), store.ErrConnectionNotFound},
		{"no connection", cred("", "bob"), store.ErrConnectionNotFound},
		{"empty username", cred(store.DefaultConnectionID, ""), store.ErrInvalid},
		{"id taken", func() store.Credential { x := cred(store.DefaultConnectionID, "bob"); x.ID = c.ID; return x }(), store.ErrExists},
	}
	for _, tc := range createErrs {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.CreateCredential(tc.c); !errors.Is(err, tc.wantErr) {
				t.Fatalf("CreateCredential: got %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := db.CredentialByUsername("bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed creates left a credential: got %v, want ErrNotFound", err)
	}

	deleted, err := db.DeleteCredential(c.ID)
	if err != nil || deleted.Username != "alice" || deleted.ID != c.ID {
		t.Fatalf("DeleteCredential = %+v, %v; want alice", deleted, err)
	}
	for name, err := range map[string]error{
		"Credential":           func() error { _, err := db.Credential(c.ID); return err }(),
		"CredentialByUsername": func() error { _, err := db.CredentialByUsername("alice"); return err }(),
		"DeleteCredential":     func() error { _, err := db.DeleteCredential(c.ID); return err }(),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after delete: got %v, want ErrNotFound", name, err)
		}
	}
	// The username is free again.
	if _, err := db.CreateCredential(cred(trunk.ID, "alice")); err != nil {
		t.Fatalf("reusing a deleted credential's username: %v", err)
	}
	mustCheck(t, db)
}

func TestUpdateCredential(t *testing.T) {
	clk := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := open(t, store.Options{Now: clk.now})
	trunk, err := db.CreateConnection(store.Connection{Name: "trunk"})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := db.CreateCredential(cred(store.DefaultConnectionID, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	sentinel := errors.New("refused")

	tests := []struct {
		name    string
		fn      func(*store.Credential) error
		wantErr error
		// edit turns the stored record before the update into the one
		// expected after it.
		edit func(*store.Credential)
	}{
		{"fields change", func(c *store.Credential) error {
			c.Enabled, c.Tag, c.HA1 = false, "t1", map[string]string{"SHA-256": "ff"}
			return nil
		}, nil, func(c *store.Credential) {
			c.Enabled, c.Tag, c.HA1, c.UpdatedAt = false, "t1", map[string]string{"SHA-256": "ff"}, clk.t
		}},
		{"id, username and created at are kept", func(c *store.Credential) error {
			c.ID, c.Username, c.CreatedAt = "x", "mallory", clk.t.Add(time.Hour)
			return nil
		}, nil, func(c *store.Credential) { c.UpdatedAt = clk.t }},
		{"move to another connection", func(c *store.Credential) error { c.ConnectionID = trunk.ID; return nil }, nil,
			func(c *store.Credential) { c.ConnectionID, c.UpdatedAt = trunk.ID, clk.t }},
		{"move to a missing connection", func(c *store.Credential) error { c.ConnectionID = "nope"; return nil },
			store.ErrConnectionNotFound, func(*store.Credential) {}},
		{"fn error aborts", func(c *store.Credential) error { c.Tag = "lost"; return sentinel }, sentinel,
			func(*store.Credential) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := db.Credential(orig.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := before
			tc.edit(&want)
			got, err := db.UpdateCredential(orig.ID, tc.fn)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("UpdateCredential: got %v, want %v", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("UpdateCredential returned %+v, want %+v", got, want)
			}
			if stored, err := db.Credential(orig.ID); err != nil || !reflect.DeepEqual(stored, want) {
				t.Errorf("stored %+v, %v; want %+v", stored, err, want)
			}
			if _, err := db.CredentialByUsername("mallory"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("username index changed: got %v, want ErrNotFound for the new name", err)
			}
			mustCheck(t, db)
		})
	}
	if _, err := db.UpdateCredential("nope", func(*store.Credential) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateCredential(missing): got %v, want ErrNotFound", err)
	}
	// After the move, the credential is listed under the new connection
	// only, and holds that connection, not the old one.
	if err := db.DeleteConnection(trunk.ID); !errors.Is(err, store.ErrConnectionInUse) {
		t.Errorf("DeleteConnection of the new connection: got %v, want ErrConnectionInUse", err)
	}
	if cs, _, _ := db.Credentials(store.CredentialFilter{ConnectionID: store.DefaultConnectionID}, store.Page{}); len(cs) != 0 {
		t.Errorf("old connection still lists %d credentials", len(cs))
	}
}

func TestCreateCredentialConcurrentUsername(t *testing.T) {
	db := open(t, store.Options{})
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = db.CreateCredential(cred(store.DefaultConnectionID, "carol"))
		})
	}
	close(start)
	wg.Wait()
	won, taken := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, store.ErrUsernameTaken):
			taken++
		default:
			t.Errorf("CreateCredential: unexpected error %v", err)
		}
	}
	if won != 1 || taken != n-1 {
		t.Fatalf("%d creates won and %d got ErrUsernameTaken, want 1 and %d", won, taken, n-1)
	}
	if cs, _, err := db.Credentials(store.CredentialFilter{}, store.Page{}); err != nil || len(cs) != 1 {
		t.Fatalf("stored %d credentials, %v; want 1", len(cs), err)
	}
	mustCheck(t, db)
}

// createN creates n credentials user0..user(n-1) in conn and returns
// their IDs in creation order.
func createN(t testing.TB, db *store.DB, conn string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		c, err := db.CreateCredential(cred(conn, fmt.Sprintf("%s-user%d", conn, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	return ids
}

// listAll pages through Credentials and returns the IDs in the order
// listed and the page sizes. between runs after each page.
func listAll(t testing.TB, db *store.DB, f store.CredentialFilter, limit int, between func()) (ids []string, sizes []int) {
	t.Helper()
	after := ""
	for {
		cs, next, err := db.Credentials(f, store.Page{After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(cs))
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		if next == "" {
			return ids, sizes
		}
		if want := cs[len(cs)-1].ID; next != want {
			t.Fatalf("next cursor %q, want the last ID %q", next, want)
		}
		after = next
		if between != nil {
			between()
		}
		if len(sizes) > 10000 {
			t.Fatal("paging does not end")
		}
	}
}

func TestCredentialsPages(t *testing.T) {
	db := open(t, store.Options{})
	want := createN(t, db, store.DefaultConnectionID, 250)
	tests := []struct {
		limit     int
		wantSizes []int
	}{
		{100, []int{100, 100, 50}},
		{0, []int{100, 100, 50}}, // 0 means 100
		{125, []int{125, 125}},   // no empty last page
		{5000, []int{250}},       // capped at 1000
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			got, sizes := listAll(t, db, store.CredentialFilter{}, tc.limit, nil)
			if !slices.Equal(got, want) {
				t.Errorf("listed %d IDs, not the %d created, in creation order", len(got), len(want))
			}
			if !slices.Equal(sizes, tc.wantSizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.wantSizes)
			}
		})
	}
}

func TestCredentialsPagesWithConcurrentInserts(t *testing.T) {
	for _, f := range []store.CredentialFilter{{}, {ConnectionID: store.DefaultConnectionID}} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			db := open(t, store.Options{})
			existing := createN(t, db, store.DefaultConnectionID, 250)

			// Inserts race with the paging from another goroutine, and
			// between pages some land for certain.
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				for i := range 200 {
					if _, err := db.CreateCredential(cred(store.DefaultConnectionID, fmt.Sprintf("racing%d", i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
			page := 0
			got, _ := listAll(t, db, f, 100, func() {
				page++
				for i := range 30 {
					if _, err := db.CreateCredential(cred(store.DefaultConnectionID, fmt.Sprintf("between%d-%d", page, i))); err != nil {
						t.Fatal(err)
					}
				}
			})
			wg.Wait()

			seen := make(map[string]int)
			for i, id := range got {
				seen[id]++
				if i > 0 && id <= got[i-1] {
					t.Fatalf("item %d %q listed after %q: not in ID order", i, id, got[i-1])
				}
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("%q listed %d times", id, n)
				}
			}
			for _, id := range existing {
				if seen[id] != 1 {
					t.Errorf("pre-existing %q listed %d times, want 1", id, seen[id])
				}
			}
			if len(got) < len(existing) || !slices.Equal(got[:len(existing)], existing) {
				t.Error("pre-existing credentials are not listed first, in creation order")
			}
		})
	}
}

func TestCredentialsFilter(t *testing.T) {
	db := open(t, store.Options{})
	trunk, err := db.CreateConnection(store.Connection{Name: "trunk"})
	if err != nil {
		t.Fatal(err)
	}
	// u0..u9: even ones in the default connection, odd ones in trunk;
	// tag "a" for i < 5, "b" after; every third one disabled.
	var all []store.Credential
	for i := range 10 {
		conn := store.DefaultConnectionID
		if i%2 == 1 {
			conn = trunk.ID
		}
		c := cred(conn, fmt.Sprintf("u%d", i))
		c.Tag = map[bool]string{true: "a", false: "b"}[i < 5]
		c.Enabled = i%3 != 0
		c, err := db.CreateCredential(c)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
	}
	yes, no := true, false
	tests := []struct {
		name string
		f    store.CredentialFilter
		want []int
	}{
		{"none", store.CredentialFilter{}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"default connection", store.CredentialFilter{ConnectionID: store.DefaultConnectionID}, []int{0, 2, 4, 6, 8}},
		{"trunk", store.CredentialFilter{ConnectionID: trunk.ID}, []int{1, 3, 5, 7, 9}},
		{"missing connection", store.CredentialFilter{ConnectionID: "nope"}, nil},
		{"tag", store.CredentialFilter{Tag: "a"}, []int{0, 1, 2, 3, 4}},
		{"username", store.CredentialFilter{Username: "u7"}, []int{7}},
		{"missing username", store.CredentialFilter{Username: "zz"}, nil},
		{"enabled", store.CredentialFilter{Enabled: &yes}, []int{1, 2, 4, 5, 7, 8}},
		{"disabled", store.CredentialFilter{Enabled: &no}, []int{0, 3, 6, 9}},
		{"trunk, tag b, enabled", store.CredentialFilter{ConnectionID: trunk.ID, Tag: "b", Enabled: &yes}, []int{5, 7}},
		{"username in another connection", store.CredentialFilter{Username: "u7", ConnectionID: store.DefaultConnectionID}, nil},
		{"username and tag", store.CredentialFilter{Username: "u7", Tag: "b"}, []int{7}},
	}
	for _, tc := range tests {
		var want []string
		for _, i := range tc.want {
			want = append(want, all[i].ID)
		}
		for _, limit := range []int{1, 2, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				got, _ := listAll(t, db, tc.f, limit, nil)
				if !slices.Equal(got, want) {
					t.Errorf("listed %v, want %v", got, want)
				}
			})
		}
	}
	// A cursor past the only match of a username filter ends the list.
	cs, next, err := db.Credentials(store.CredentialFilter{Username: "u7"}, store.Page{After: all[7].ID})
	if err != nil || len(cs) != 0 || next != "" {
		t.Errorf("username filter after its match = %d items, next %q, %v; want none", len(cs), next, err)
	}
}
