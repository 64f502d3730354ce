package store_test

import (
	"errors"
	"testing"

	"github.com/sipwarden/sipwarden/store"
)

// fakeRepl records what a store hands its Replicator.
type fakeRepl struct {
	commits  [][]store.Change
	fail     error
	unlocked []bool
}

func (f *fakeRepl) Lock() (func(bool), error) {
	return func(c bool) { f.unlocked = append(f.unlocked, c) }, nil
}

func (f *fakeRepl) Commit(cs []store.Change) error {
	if f.fail != nil {
		return f.fail
	}
	f.commits = append(f.commits, cs)
	return nil
}

func TestReplicaWritesGoThroughReplicator(t *testing.T) {
	a, b := open(t, store.Options{}), open(t, store.Options{})
	r := &fakeRepl{}
	a.SetReplicator(r)
	c, err := a.CreateCredential(cred(store.DefaultConnectionID, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.commits) != 1 || len(r.commits[0]) != 3 {
		t.Fatalf("commits %+v, want one of 3 changes (record, username, connection index)", r.commits)
	}
	// The other node applies them and sees alice at once (caches
	// invalidated).
	if _, err := b.CredentialByUsername("alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b before: %v, want not found", err)
	}
	eff, err := b.ApplyReplica(r.commits[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.Written) != 1 || eff.Written[0].Username != "alice" || len(eff.Deleted) != 0 {
		t.Errorf("effect %+v, want alice written", eff)
	}
	if got, err := b.CredentialByUsername("alice"); err != nil || got.ID != c.ID {
		t.Fatalf("b after: got %+v %v, want %s", got, err, c.ID)
	}
	// A failing copy rolls the write back: nothing stored, error returned.
	boom := errors.New("redis down")
	r.fail = boom
	if _, err := a.CreateCredential(cred(store.DefaultConnectionID, "bob")); !errors.Is(err, boom) {
		t.Fatalf("create with the copy failing: got %v, want %v", err, boom)
	}
	if _, err := a.CredentialByUsername("bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob after a failed copy: %v, want not found", err)
	}
	if got := r.unlocked; len(got) != 2 || !got[0] || got[1] {
		t.Errorf("unlock(committed): got %v, want [true false]", got)
	}
	r.fail = nil
	if _, err := a.DeleteCredential(c.ID); err != nil {
		t.Fatal(err)
	}
	eff, err = b.ApplyReplica(r.commits[len(r.commits)-1])
	if err != nil || len(eff.Deleted) != 1 || eff.Deleted[0].Username != "alice" {
		t.Fatalf("apply the delete: %+v %v", eff, err)
	}
	if _, err := b.CredentialByUsername("alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b after the delete: %v, want not found", err)
	}
	// A snapshot of a replaces b's records wholesale.
	if _, err := a.CreateCredential(cred(store.DefaultConnectionID, "carol")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateCredential(cred(store.DefaultConnectionID, "dave")); err != nil {
		t.Fatal(err)
	}
	snap, err := a.ReplicaSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	eff, err = b.ReplaceReplica(snap)
	if err != nil || len(eff.Deleted) != 1 || eff.Deleted[0].Username != "dave" {
		t.Fatalf("replace: %+v %v, want dave deleted", eff, err)
	}
	if len(eff.Written) != 1 || eff.Written[0].Username != "carol" {
		t.Errorf("replace: written %+v, want carol", eff.Written)
	}
	if _, err := b.CredentialByUsername("carol"); err != nil {
		t.Errorf("carol after replace: %v", err)
	}
	if _, err := b.CredentialByUsername("dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("dave after replace: %v, want not found", err)
	}
	// A corrupt copy changes nothing.
	snap["credentials"]["x"] = []byte{0xff}
	if _, err := b.ReplaceReplica(snap); err == nil {
		t.Error("a corrupt snapshot was accepted")
	}
}
