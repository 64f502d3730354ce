package store_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sipwarden/sipwarden/store"
)

// open opens a store in a fresh directory, closed when the test ends.
func open(t testing.TB, opts store.Options) *store.DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "sipwarden.db"), opts)
}

func openAt(t testing.TB, path string, opts store.Options) *store.DB {
	t.Helper()
	opts.NoSync = true
	db, err := store.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustClose(t testing.TB, db *store.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustCheck(t testing.TB, db *store.DB) {
	t.Helper()
	if err := db.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// clock is a settable clock for Options.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestOpenCreatesFileAndDefaultConnection(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "sipwarden.db")
	clk := &clock{time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
	db := openAt(t, path, store.Options{Now: clk.now})

	if got := db.Path(); got != path {
		t.Errorf("Path() = %q, want %q", got, path)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{path, 0o600}, {dir, 0o700}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("mode of %s = %v, want %v", c.path, got, c.want)
		}
	}
	want := store.Connection{ID: store.DefaultConnectionID, Name: "default", Active: true, CreatedAt: clk.t, UpdatedAt: clk.t}
	got, err := db.Connection(store.DefaultConnectionID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("default connection = %+v, %v; want %+v", got, err, want)
	}
	mustClose(t, db)

	// Reopened later, the default connection is the same record.
	clk.t = clk.t.Add(time.Hour)
	db = openAt(t, path, store.Options{Now: clk.now})
	got, err = db.Connection(store.DefaultConnectionID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("default connection after reopen = %+v, %v; want %+v", got, err, want)
	}
	cs, _, err := db.Connections(store.Page{})
	if err != nil || len(cs) != 1 {
		t.Fatalf("Connections after reopen = %d, %v; want 1", len(cs), err)
	}
	mustCheck(t, db)
}

// readSchemaVersion reads the meta bucket with bbolt directly, as the
// layout in schema.go describes it.
func readSchemaVersion(t *testing.T, path string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var v uint64
	err = bdb.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("meta"))
		if b == nil {
			return errors.New("no meta bucket")
		}
		raw := b.Get([]byte("schema_version"))
		if len(raw) != 8 {
			return errors.New("schema_version missing or not 8 bytes")
		}
		v = binary.BigEndian.Uint64(raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	mustClose(t, openAt(t, path, store.Options{}))
	if got := readSchemaVersion(t, path); got != 1 {
		t.Fatalf("schema version = %d, want 1", got)
	}

	// A file from a newer build is refused, and left as it was.
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), binary.BigEndian.AppendUint64(nil, 2))
	})
	if cerr := bdb.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	db, err := store.Open(path, store.Options{NoSync: true})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: got %v, want ErrSchemaTooNew", err)
	}
	if got := readSchemaVersion(t, path); got != 2 {
		t.Fatalf("schema version after refused open = %d, want 2", got)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	openAt(t, path, store.Options{})
	start := time.Now()
	db, err := store.Open(path, store.Options{NoSync: true})
	elapsed := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatal("second Open of an open file: got nil error, want ErrLocked")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	if elapsed > 3*time.Second {
		t.Fatalf("second Open took %v, want about 1s", elapsed)
	}
}

func TestCloseTwice(t *testing.T) {
	db := open(t, store.Options{})
	mustClose(t, db)
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
}

func TestIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	clk := &clock{time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	db := openAt(t, path, store.Options{Now: clk.now})
	var ids []string
	// A stopped clock: every ID in the same millisecond, more than the
	// 12-bit counter holds.
	for range 5000 {
		k, err := db.CreateAPIKey(store.APIKey{Name: "k"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	mustClose(t, db)
	// Reopened with the clock set back a day: IDs keep increasing.
	clk.t = clk.t.Add(-24 * time.Hour)
	db = openAt(t, path, store.Options{Now: clk.now})
	for range 3 {
		c, err := db.CreateConnection(store.Connection{Name: "c"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	for i, id := range ids {
		if !uuidV7.MatchString(id) {
			t.Fatalf("id %d = %q, not a canonical UUIDv7", i, id)
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("id %d = %q, not after id %d = %q", i, id, i-1, ids[i-1])
		}
	}
	// 2025-06-01T00:00:00Z is 0x019728c9c000 ms; the counter starts at 0.
	if got, want := ids[0][:18], "019728c9-c000-7000"; got != want {
		t.Errorf("first id starts %s, want %s", got, want)
	}
}

// nonZero fails unless every field of the struct v points to is set, so
// that a round-trip test covers fields added to the record later.
func nonZero(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			t.Fatalf("%s.%s is zero in the test fixture: set it so that the round trip covers it", rv.Type().Name(), rv.Type().Field(i).Name)
		}
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := openAt(t, path, store.Options{})
	// Times in another zone with a monotonic reading come back as the
	// same instant in UTC.
	zone := time.FixedZone("X", 5*3600)
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 123456789, zone)
	t2 := time.Now().Add(time.Hour)

	conn := store.Connection{ID: "trunk-1", Name: "Trunk", Active: true, CreatedAt: t1, UpdatedAt: t2, AllowedCIDRs: []string{"192.0.2.0/24"}, PublicTargets: []string{"sales"},
		Kind: store.ConnectionIP, PBXURI: "sip:192.0.2.5:5080;transport=tcp", CallerIDPolicy: store.CallerIDAny,
		SIPURICallingPreference: store.URICallingInternal, MaxCalls: 30, MaxRegistrations: 40,
		OutboundRoutes:  []store.OutboundRoute{{Prefix: "+1", Gateways: []string{"sip:192.0.2.1", "sip:192.0.2.2:5080"}}},
		GatewayUsername: "gw", GatewayPassword: "gw-secret",
		WebhookEventURL: "https://hooks.example/a", WebhookEventFailoverURL: "https://hooks.example/b",
		WebhookTimeoutSecs: 5, WebhookSecret: "whsec_x"}
	nonZero(t, &conn)
	cred := store.Credential{
		ID: "cred-1", ConnectionID: "trunk-1", Username: "alice", Name: "Alice", Tag: "sales", Enabled: true,
		ExpiresAt: t2, Realm: "example.com",
		HA1:        map[string]string{"MD5": "aa", "SHA-256": "bb", "SHA-512-256": "cc"},
		Algorithms: []string{"SHA-256", "MD5"}, CreatedAt: t1, UpdatedAt: t2, TokensNotBefore: t1.UTC(),
	}
	nonZero(t, &cred)
	key := store.APIKey{ID: "key-1", Name: "admin", Hash: []byte{1, 2, 3}, CreatedAt: t1, Scope: store.ScopeRead}
	nonZero(t, &key)
	bind := store.Binding{
		ID: "b1", AOR: "alice", CredentialID: "cred-1", Contact: "<sip:alice@10.0.0.1:5060>", Source: "10.0.0.1:5060",
		Transport: "udp", LocalAddr: "127.0.0.1:5060", CallID: "call", CSeq: 4294967295, Expires: t2,
		UserAgent: "Zoiper", InstanceID: "<urn:uuid:x>", RegID: "1", RegisteredAt: t1, UpdatedAt: t2, TokenIssuedAt: t1,
	}
	nonZero(t, &bind)
	num := store.Number{Number: "+15551234567", ConnectionID: "trunk-1", CredentialID: "cred-1", CreatedAt: t1, UpdatedAt: t2}
	nonZero(t, &num)

	utc := func(p *time.Time) { *p = p.UTC() }
	wantConn, wantCred, wantKey, wantBind, wantNum := conn, cred, key, bind, num
	for _, p := range []*time.Time{
		&wantNum.CreatedAt, &wantNum.UpdatedAt,
		&wantConn.CreatedAt, &wantConn.UpdatedAt, &wantCred.ExpiresAt, &wantCred.CreatedAt, &wantCred.UpdatedAt,
		&wantKey.CreatedAt, &wantBind.Expires, &wantBind.RegisteredAt, &wantBind.UpdatedAt, &wantBind.TokenIssuedAt,
	} {
		utc(p)
	}

	if got, err := db.CreateConnection(conn); err != nil || !reflect.DeepEqual(got, wantConn) {
		t.Fatalf("CreateConnection = %+v, %v; want %+v", got, err, wantConn)
	}
	if got, err := db.CreateCredential(cred); err != nil || !reflect.DeepEqual(got, wantCred) {
		t.Fatalf("CreateCredential = %+v, %v; want %+v", got, err, wantCred)
	}
	if got, err := db.CreateAPIKey(key); err != nil || !reflect.DeepEqual(got, wantKey) {
		t.Fatalf("CreateAPIKey = %+v, %v; want %+v", got, err, wantKey)
	}
	if got, err := db.CreateNumber(num); err != nil || !reflect.DeepEqual(got, wantNum) {
		t.Fatalf("CreateNumber = %+v, %v; want %+v", got, err, wantNum)
	}
	db.SaveBindings("alice", []store.Binding{bind})
	mustClose(t, db)

	db = openAt(t, path, store.Options{})
	if got, err := db.Connection(conn.ID); err != nil || !reflect.DeepEqual(got, wantConn) {
		t.Errorf("Connection = %+v, %v; want %+v", got, err, wantConn)
	}
	if got, err := db.Credential(cred.ID); err != nil || !reflect.DeepEqual(got, wantCred) {
		t.Errorf("Credential = %+v, %v; want %+v", got, err, wantCred)
	}
	if got, err := db.CredentialByUsername(cred.Username); err != nil || !reflect.DeepEqual(got, wantCred) {
		t.Errorf("CredentialByUsername = %+v, %v; want %+v", got, err, wantCred)
	}
	if got, err := db.Number(num.Number); err != nil || !reflect.DeepEqual(got, wantNum) {
		t.Errorf("Number = %+v, %v; want %+v", got, err, wantNum)
	}
	if got, err := db.APIKey(key.ID); err != nil || !reflect.DeepEqual(got, wantKey) {
		t.Errorf("APIKey = %+v, %v; want %+v", got, err, wantKey)
	}
	if got, err := db.LoadBindings(t1.Add(-time.Hour)); err != nil || !reflect.DeepEqual(got, []store.Binding{wantBind}) {
		t.Errorf("LoadBindings = %+v, %v; want %+v", got, err, []store.Binding{wantBind})
	}
	mustCheck(t, db)
}

// corrupt runs fn on the closed store file with bbolt directly.
func corrupt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(tx *bolt.Tx) error
	}{
		{"intact", nil},
		{"undecodable credential", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("credentials")).Put([]byte("cred-1"), []byte{1, 200})
		}},
		{"dangling username", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("credential_usernames")).Put([]byte("ghost"), []byte("nope"))
		}},
		{"username not indexed", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("credential_usernames")).Delete([]byte("alice"))
		}},
		{"connection index missing", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("credentials_by_connection")).Delete([]byte("default\x00cred-1"))
		}},
		{"undecodable connection", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("connections")).Put([]byte("default"), []byte{1, 1})
		}},
		{"undecodable bindings", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("bindings")).Put([]byte("bob"), []byte("junk"))
		}},
		{"unknown format", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("api_keys")).Put([]byte("k"), []byte{9})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			db := openAt(t, path, store.Options{})
			if _, err := db.CreateCredential(store.Credential{ID: "cred-1", ConnectionID: store.DefaultConnectionID, Username: "alice"}); err != nil {
				t.Fatal(err)
			}
			db.SaveBindings("alice", []store.Binding{{ID: "b", Expires: time.Now().Add(time.Hour)}})
			mustCheck(t, db)
			mustClose(t, db)
			if tc.corrupt != nil {
				corrupt(t, path, tc.corrupt)
			}
			db = openAt(t, path, store.Options{})
			err := db.Check()
			if tc.corrupt == nil && err != nil {
				t.Fatalf("Check: got %v, want nil", err)
			}
			if tc.corrupt != nil && !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("Check: got %v, want ErrCorrupt", err)
			}
		})
	}
}
