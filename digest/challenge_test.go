package digest_test

import (
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/digest"
)

func TestChallengeString(t *testing.T) {
	tests := []struct {
		name string
		c    digest.Challenge
		want string
	}{
		{"full", digest.Challenge{Realm: "r", Nonce: "n", Opaque: "o", Algorithm: digest.MD5, QOP: []string{"auth"}},
			`Digest realm="r", nonce="n", opaque="o", algorithm=MD5, qop="auth"`},
		{"stale", digest.Challenge{Realm: "r", Nonce: "n", Opaque: "o", Algorithm: digest.MD5, QOP: []string{"auth"}, Stale: true},
			`Digest realm="r", nonce="n", opaque="o", algorithm=MD5, qop="auth", stale=true`},
		{"no opaque, no qop (RFC 2069)", digest.Challenge{Realm: "r", Nonce: "n", Algorithm: digest.SHA256},
			`Digest realm="r", nonce="n", algorithm=SHA-256`},
		{"two qop values, empty skipped", digest.Challenge{Realm: "r", Nonce: "n", Algorithm: digest.SHA512_256, QOP: []string{"auth", "", "auth-int"}},
			`Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth,auth-int"`},
		{"only empty qop values", digest.Challenge{Realm: "r", Nonce: "n", Algorithm: digest.MD5, QOP: []string{""}},
			`Digest realm="r", nonce="n", algorithm=MD5`},
		{"zero algorithm left out", digest.Challenge{Realm: "r", Nonce: "n"},
			`Digest realm="r", nonce="n"`},
		{"invalid algorithm left out", digest.Challenge{Realm: "r", Nonce: "n", Algorithm: 42},
			`Digest realm="r", nonce="n"`},
		{"escaped realm", digest.Challenge{Realm: `a"b\c, d`, Nonce: "n", Algorithm: digest.MD5},
			`Digest realm="a\"b\\c, d", nonce="n", algorithm=MD5`},
		{"CR LF stripped", digest.Challenge{Realm: "evil\r\nX-Injected: 1", Nonce: "n\r\n", Opaque: "\x00o\x7f", Algorithm: digest.MD5, QOP: []string{"auth\r\n"}},
			`Digest realm="evilX-Injected: 1", nonce="n", opaque="o", algorithm=MD5, qop="auth"`},
		{"tab and utf-8 kept", digest.Challenge{Realm: "a\tb ä", Nonce: "n"},
			"Digest realm=\"a\tb ä\", nonce=\"n\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.String(); got != tt.want {
				t.Errorf("String: got %s, want %s", got, tt.want)
			}
			prefix := []byte("WWW-Authenticate: ")
			if got := string(tt.c.AppendTo(prefix)); got != string(prefix)+tt.want {
				t.Errorf("AppendTo: got %s, want %s", got, string(prefix)+tt.want)
			}
		})
	}
}

func TestChallengeAllocs(t *testing.T) {
	c := digest.Challenge{Realm: "sipwarden.test", Nonce: strings.Repeat("n", 48), Opaque: "o", Algorithm: digest.MD5, QOP: []string{"auth"}}
	buf := make([]byte, 0, 512)
	if got := testing.AllocsPerRun(100, func() { buf = c.AppendTo(buf[:0]) }); got != 0 {
		t.Errorf("AppendTo: got %v allocs, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { _ = c.String() }); got != 1 {
		t.Errorf("String: got %v allocs, want 1", got)
	}
}

// What a challenge offers must parse back as what a client answers: the
// realm, nonce, opaque and algorithm it returns are the ones we sent.
func TestChallengeRoundTrip(t *testing.T) {
	c := digest.Challenge{Realm: `we"ird\realm, x`, Nonce: "n,1", Opaque: `o"p`, Algorithm: digest.SHA256, QOP: []string{"auth"}}
	got, err := digest.ParseCredentials(answer(c))
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if got.Realm != c.Realm || got.Nonce != c.Nonce || got.Opaque != c.Opaque || got.Algorithm != "SHA-256" || got.QOP != "auth" {
		t.Errorf("got %+v, want the values of %+v", got, c)
	}
}

// answer turns a challenge into a credentials header with the same
// parameters (which ParseCredentials reads) plus the ones it requires.
func answer(c digest.Challenge) string {
	size := 32
	if c.Algorithm == digest.SHA256 || c.Algorithm == digest.SHA512_256 {
		size = 64
	}
	h := c.String() + `, username="u", uri="sip:x", response="` + strings.Repeat("0", size) + `"`
	for _, q := range c.QOP {
		if strip(q) != "" {
			return h + `, nc=00000001, cnonce="c"`
		}
	}
	return h
}
