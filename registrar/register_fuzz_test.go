package registrar

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/sipcheck"
	"github.com/sipwarden/sipwarden/store"
)

// newTestRegistrar wires a Registrar to a real store and authenticator,
// with one credential alice/pw for realm sipwarden.test.
func newTestRegistrar(tb testing.TB) (*Registrar, *Location) {
	tb.Helper()
	return newTestRegistrarSaving(tb, nil)
}

// newTestRegistrarSaving is newTestRegistrar with the location table's
// saver made by saver from the store (nil: the store itself).
func newTestRegistrarSaving(tb testing.TB, saver func(*store.DB) BindingSaver) (*Registrar, *Location) {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "s.db"), store.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	const realm = "sipwarden.test"
	ha1 := map[string]string{}
	for _, a := range []digest.Algorithm{digest.MD5, digest.SHA256, digest.SHA512_256} {
		ha1[a.String()] = digest.HA1(a, "alice", realm, "pw-0123456789")
	}
	if _, err := db.CreateCredential(store.Credential{ConnectionID: store.DefaultConnectionID, Username: "alice", Enabled: true, Realm: realm, HA1: ha1}); err != nil {
		tb.Fatal(err)
	}
	nonces, err := digest.NewNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute, nil)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := auth.New(auth.Config{Realm: realm, Algorithms: []digest.Algorithm{digest.MD5}, QOP: []string{"auth"},
		Nonce: nonces, Count: auth.LocalCounts(digest.NewCounts(1024, nil))}, db)
	if err != nil {
		tb.Fatal(err)
	}
	var sv BindingSaver = storeSaver{db}
	if saver != nil {
		sv = saver(db)
	}
	loc := NewLocation(sv, nil, nil)
	r := New(Config{DefaultExpires: time.Hour, MinExpires: time.Minute, MaxExpires: 2 * time.Hour, MaxContacts: 1,
		Domains: []string{realm, "127.0.0.1"}, Server: "sipwarden"}, loc, a, nil, nil)
	return r, loc
}

// FuzzRegister feeds raw SIP messages through sipgo's parser into the
// REGISTER handler: whatever arrives, it must answer without panicking,
// and never copy CR or LF from the input into a header it builds.
func FuzzRegister(f *testing.F) {
	seeds := []string{
		"REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nTo: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nCall-ID: a@b\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:5070>;expires=60\r\nContent-Length: 0\r\n\r\n",
		"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK2\r\nTo: sip:alice@127.0.0.1\r\nFrom: <sip:alice@127.0.0.1>;tag=2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nAuthorization: Digest username=\"alice\", realm=\"sipwarden.test\", nonce=\"n\", uri=\"sip:127.0.0.1\", response=\"00000000000000000000000000000000\", qop=auth, nc=00000001, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n",
		"REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nTo: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=3\r\nCall-ID: d\r\nCSeq: 3 INVITE\r\nContact: <sip:a@h>;expires=abc, <sip:b@h>;+sip.instance=\"<urn:uuid:1>\";reg-id=1\r\nExpires: 99999999999999999999\r\n\r\n",
		"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK4\r\nCSeq: 1 REGISTER\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	r, _ := newTestRegistrar(f)
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, raw string) {
		msg, err := parser.ParseSIP([]byte(raw))
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok || req.Method != sip.REGISTER {
			return
		}
		req.SetSource("127.0.0.1:5070")
		req.SetTransport("UDP")
		res := r.Handle(req)
		if res == nil {
			if !sipcheck.HasLineBreak(req) {
				t.Fatal("dropped a request without a line break in a header")
			}
			return
		}
		if res.StatusCode < 200 || res.StatusCode > 699 {
			t.Fatalf("no final response: %v", res)
		}
		for _, h := range res.Headers() {
			if strings.ContainsAny(h.Value(), "\r\n") {
				t.Fatalf("header %s carries CR/LF: %q", h.Name(), h.Value())
			}
		}
	})
}

// storeSaver saves to the bbolt store, as the server does.
type storeSaver struct{ db *store.DB }

func (s storeSaver) SaveBindings(aor string, _, next []store.Binding) { s.db.SaveBindings(aor, next) }

func (s storeSaver) FlushBindings() error { return s.db.FlushBindings() }
