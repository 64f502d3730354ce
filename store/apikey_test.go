package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

func TestAPIKeys(t *testing.T) {
	clk := &clock{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := open(t, store.Options{Now: clk.now})
	if keys, err := db.APIKeys(); err != nil || len(keys) != 0 {
		t.Fatalf("APIKeys on a new store = %v, %v; want none", keys, err)
	}
	a, err := db.CreateAPIKey(store.APIKey{Name: "admin", Hash: []byte("hash-a")})
	if err != nil {
		t.Fatal(err)
	}
	if !uuidV7.MatchString(a.ID) || !a.CreatedAt.Equal(clk.t) {
		t.Fatalf("created %+v, want a UUIDv7 ID and CreatedAt %v", a, clk.t)
	}
	b, err := db.CreateAPIKey(store.APIKey{ID: "ci", Name: "ci", Hash: []byte("hash-b"), CreatedAt: clk.t.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.APIKey(a.ID); err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("APIKey = %+v, %v; want %+v", got, err, a)
	}
	if keys, err := db.APIKeys(); err != nil || !reflect.DeepEqual(keys, []store.APIKey{a, b}) {
		t.Fatalf("APIKeys = %+v, %v; want both in ID order", keys, err)
	}

	tests := []struct {
		name    string
		do      func() error
		wantErr error
	}{
		{"duplicate id", func() error { _, err := db.CreateAPIKey(store.APIKey{ID: "ci"}); return err }, store.ErrExists},
		{"get missing", func() error { _, err := db.APIKey("nope"); return err }, store.ErrNotFound},
		{"delete missing", func() error { return db.DeleteAPIKey("nope") }, store.ErrNotFound},
		{"delete", func() error { return db.DeleteAPIKey(a.ID) }, nil},
		{"get deleted", func() error { _, err := db.APIKey(a.ID); return err }, store.ErrNotFound},
		{"delete again", func() error { return db.DeleteAPIKey(a.ID) }, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	if keys, err := db.APIKeys(); err != nil || !reflect.DeepEqual(keys, []store.APIKey{b}) {
		t.Fatalf("APIKeys after delete = %+v, %v; want only %q", keys, err, b.ID)
	}
}
