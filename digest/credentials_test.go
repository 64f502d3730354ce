package digest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/digest"
)

const resp32 = "0123456789abcdef0123456789abcdef"

// base is a minimal valid header; rows of the tables add to it.
const base = `Digest username="alice", realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`

func TestParseCredentials(t *testing.T) {
	want := digest.Credentials{Username: "alice", Realm: "r", Nonce: "n", URI: "sip:r", Response: resp32}
	with := func(f func(*digest.Credentials)) digest.Credentials {
		c := want
		f(&c)
		return c
	}
	tests := []struct {
		name   string
		header string
		want   digest.Credentials
	}{
		{"minimal", base, want},
		{"scheme case", "dIgEsT" + base[len("Digest"):], want},
		{"leading whitespace", " \t" + base, want},
		{"trailing whitespace and comma", base + " ,\t ", want},
		{"empty list elements", `Digest ,, username="alice" ,, realm="r",nonce="n",  ,uri="sip:r",response="` + resp32 + `",`, want},
		{"tabs and spaces around = and ,", "Digest\tusername\t=\t\"alice\"\t,realm = \"r\" , nonce=\"n\",uri=\"sip:r\" ,\tresponse= \"" + resp32 + "\"", want},
		{"line folding", "Digest username=\"alice\",\r\n realm=\"r\",\r\n\tnonce=\"n\", uri=\"sip:r\", response=\"" + resp32 + "\"", want},
		{"upper-case names", `Digest USERNAME="alice", Realm="r", NONCE="n", URI="sip:r", Response="` + resp32 + `"`, want},
		{"unquoted values", `Digest username=alice, realm=r, nonce=n, uri=sip:r, response=` + resp32, want},
		{"escaped quote and backslash", `Digest username="al\"i\\ce", realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Username = `al"i\ce` })},
		{"escaped ordinary character", `Digest username="\a\l\i\c\e", realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, want},
		{"commas and = inside quotes", `Digest username="a,b=c", realm="x, y", nonce="n,", uri="sip:r", response="` + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Username, c.Realm, c.Nonce = "a,b=c", "x, y", "n," })},
		{"empty realm", `Digest username="alice", realm="", nonce="n", uri="sip:r", response="` + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Realm = "" })},
		{"utf-8 username", `Digest username="jäsøn", realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Username = "jäsøn" })},
		{"algorithm token", base + `, algorithm=MD5`, with(func(c *digest.Credentials) { c.Algorithm = "MD5" })},
		{"algorithm quoted", base + `, algorithm="MD5"`, with(func(c *digest.Credentials) { c.Algorithm = "MD5" })},
		{"qop auth, nc unquoted", base + `, qop=auth, nc=00000001, cnonce="c"`,
			with(func(c *digest.Credentials) { c.QOP, c.NC, c.NonceCount, c.CNonce = "auth", "00000001", 1, "c" })},
		{"qop quoted, nc quoted, hex case", base + `, qop="auth-int", nc="DeadBeef", cnonce=c`,
			with(func(c *digest.Credentials) {
				c.QOP, c.NC, c.NonceCount, c.CNonce = "auth-int", "DeadBeef", 0xdeadbeef, "c"
			})},
		{"qop case kept", base + `, qop=AUTH, nc=ffffffff, cnonce="c"`,
			with(func(c *digest.Credentials) { c.QOP, c.NC, c.NonceCount, c.CNonce = "AUTH", "ffffffff", 0xffffffff, "c" })},
		{"opaque", base + `, opaque="o/p+q="`, with(func(c *digest.Credentials) { c.Opaque = "o/p+q=" })},
		{"unknown parameters ignored, even twice", base + `, foo=bar, foo="baz, qux", x-y=1`, want},
		{"userhash", base + `, userhash=TRUE`, with(func(c *digest.Credentials) { c.UserHash = true })},
		{"userhash false", base + `, userhash="false"`, want},
		{"username*", `Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Username = "Jäsøn Doe" })},
		{"username* with language", `Digest username*=utf-8'en'bob, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Username = "bob" })},
		{"sha-256 response length", `Digest username="alice", realm="r", nonce="n", uri="sip:r", algorithm=SHA-256, response="` + resp32 + resp32 + `"`,
			with(func(c *digest.Credentials) { c.Algorithm, c.Response = "SHA-256", resp32+resp32 })},
		{"unknown algorithm, any hex digest", `Digest username="alice", realm="other", nonce="n", uri="sip:r", algorithm=AKAv1-MD5, response="0123"`,
			with(func(c *digest.Credentials) { c.Realm, c.Algorithm, c.Response = "other", "AKAv1-MD5", "0123" })},
		{"nc without qop tolerated", base + `, nc=00000002`, with(func(c *digest.Credentials) { c.NC, c.NonceCount = "00000002", 2 })},
		{"tab inside quotes", "Digest username=\"a\tb\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"" + resp32 + "\"",
			with(func(c *digest.Credentials) { c.Username = "a\tb" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := digest.ParseCredentials(tt.header)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCredentialsErrors(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   error
		detail string // a part of the error text
	}{
		{"bearer", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", digest.ErrUnsupportedScheme, ""},
		{"basic", "Basic YWxpY2U6cHc=", digest.ErrUnsupportedScheme, ""},
		{"digest prefix of another scheme", "Digestive " + base[len("Digest "):], digest.ErrUnsupportedScheme, ""},
		{"empty", "", digest.ErrMalformed, "no scheme"},
		{"blank", " \t ", digest.ErrMalformed, "no scheme"},
		{"scheme only", "Digest", digest.ErrMalformed, `missing parameter "username"`},
		{"no space after scheme", `Digest,username="alice"`, digest.ErrMalformed, "no space"},
		{"duplicate", base + `, nonce="m"`, digest.ErrMalformed, `duplicate parameter "nonce"`},
		{"duplicate, other case", base + `, Username="bob"`, digest.ErrMalformed, `duplicate parameter "username"`},
		{"username and username*", base + `, username*=UTF-8''bob`, digest.ErrMalformed, "both username and username*"},
		{"unterminated quote", `Digest username="alice, realm="r"`, digest.ErrMalformed, ""},
		{"unterminated at end", base + `, opaque="abc`, digest.ErrMalformed, "unterminated"},
		{"backslash at end", base + `, opaque="abc\`, digest.ErrMalformed, "unterminated"},
		{"missing =", base + `, opaque`, digest.ErrMalformed, "no '='"},
		{"missing = before value", base + `, opaque "x"`, digest.ErrMalformed, "no '='"},
		{"missing value", base + `, opaque=, nc=00000001`, digest.ErrMalformed, "no value"},
		{"missing value at end", base + `, opaque=`, digest.ErrMalformed, "no value"},
		{"missing comma", `Digest username="alice" realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "after a value"},
		{"garbage after quoted value", `Digest username="alice"x, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "after a value"},
		{"semicolon separator", `Digest username="alice"; realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "after a value"},
		{"garbage instead of a name", base + `, "quoted"=1`, digest.ErrMalformed, "unexpected character"},
		{"bare = ", base + `, =1`, digest.ErrMalformed, "unexpected character"},
		{"CR LF inside quotes", "Digest username=\"ali\r\nce\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"" + resp32 + "\"", digest.ErrMalformed, "control character"},
		{"NUL inside quotes", "Digest username=\"ali\x00ce\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"" + resp32 + "\"", digest.ErrMalformed, "control character"},
		{"escaped CR", "Digest username=\"ali\\\rce\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"" + resp32 + "\"", digest.ErrMalformed, "control character"},
		{"bare CR LF", base + "\r\n, opaque=\"x\"", digest.ErrMalformed, ""},
		{"non-ascii unquoted", base + ", opaque=ä", digest.ErrMalformed, "no value"},
		{"missing username", `Digest realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, `missing parameter "username"`},
		{"missing realm", `Digest username="alice", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, `missing parameter "realm"`},
		{"missing nonce", `Digest username="alice", realm="r", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, `missing parameter "nonce"`},
		{"missing uri", `Digest username="alice", realm="r", nonce="n", response="` + resp32 + `"`, digest.ErrMalformed, `missing parameter "uri"`},
		{"missing response", `Digest username="alice", realm="r", nonce="n", uri="sip:r"`, digest.ErrMalformed, `missing parameter "response"`},
		{"empty username", `Digest username="", realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, `empty parameter "username"`},
		{"empty nonce", `Digest username="a", realm="r", nonce="", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, `empty parameter "nonce"`},
		{"nc too short", base + `, qop=auth, cnonce="c", nc=0000001`, digest.ErrMalformed, "nc is not 8 hex digits"},
		{"nc too long", base + `, qop=auth, cnonce="c", nc=000000001`, digest.ErrMalformed, "nc is not 8 hex digits"},
		{"nc not hex", base + `, qop=auth, cnonce="c", nc=0000000x`, digest.ErrMalformed, "nc is not 8 hex digits"},
		{"nc decimal with sign", base + `, qop=auth, cnonce="c", nc=+0000001`, digest.ErrMalformed, "nc is not 8 hex digits"},
		{"qop without nc", base + `, qop=auth, cnonce="c"`, digest.ErrMalformed, "qop without nc and cnonce"},
		{"qop without cnonce", base + `, qop=auth, nc=00000001`, digest.ErrMalformed, "qop without nc and cnonce"},
		{"qop with empty cnonce", base + `, qop=auth, nc=00000001, cnonce=""`, digest.ErrMalformed, "qop without nc and cnonce"},
		{"qop list", base + `, qop="auth,auth-int", nc=00000001, cnonce="c"`, digest.ErrMalformed, "qop is neither"},
		{"qop unknown", base + `, qop=auth-conf, nc=00000001, cnonce="c"`, digest.ErrMalformed, "qop is neither"},
		{"response too short for md5", `Digest username="a", realm="r", nonce="n", uri="sip:r", response="0123"`, digest.ErrMalformed, "want 32"},
		{"md5 length for sha-256", `Digest username="a", realm="r", nonce="n", uri="sip:r", algorithm=SHA-256, response="` + resp32 + `"`, digest.ErrMalformed, "want 64"},
		{"response not hex", `Digest username="a", realm="r", nonce="n", uri="sip:r", response="0123456789abcdef0123456789abcdeg"`, digest.ErrMalformed, "not hex"},
		{"empty response", `Digest username="a", realm="r", nonce="n", uri="sip:r", response=""`, digest.ErrMalformed, ""},
		{"odd response, unknown algorithm", `Digest username="a", realm="r", nonce="n", uri="sip:r", algorithm=X, response="012"`, digest.ErrMalformed, "not a hex digest"},
		{"userhash garbage", base + `, userhash=yes`, digest.ErrMalformed, "userhash"},
		{"username* with userhash", `Digest username*=UTF-8''alice, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `", userhash=true`, digest.ErrMalformed, "userhash"},
		{"username* other charset", `Digest username*=ISO-8859-1''b%E4r, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "username*"},
		{"username* bad utf-8", `Digest username*=UTF-8''b%E4r, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "username*"},
		{"username* control char", `Digest username*=UTF-8''a%0Db, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "username*"},
		{"username* truncated escape", `Digest username*=UTF-8''a%4, realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, digest.ErrMalformed, "username*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := digest.ParseCredentials(tt.header)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %+v, error %v, want error %v", c, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("got error %q, want it to contain %q", err, tt.detail)
			}
			if c != (digest.Credentials{}) {
				t.Errorf("got %+v with the error, want the zero Credentials", c)
			}
		})
	}
}

// The error text must never echo the header: it goes to logs and reason
// phrases, and the header may hold anything.
func TestParseCredentialsErrorsDoNotEchoInput(t *testing.T) {
	secret := "s3cr3t-\r\n-value"
	for _, h := range []string{
		`Digest username="` + secret + `"`,
		`Digest username=` + secret,
		`Digest nc=` + secret,
		`Digest ` + secret + `=1`,
	} {
		_, err := digest.ParseCredentials(h)
		if err == nil {
			t.Fatalf("%q: got no error, want one", h)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("%q: got error %q, want one that does not repeat the header", h, err)
		}
	}
}

// Values without escapes are substrings of the header: no allocation.
func TestParseCredentialsAllocs(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   float64
	}{
		{"linphone", linphoneHeader, 0},
		{"sipp", sippHeader, 0},
		{"escaped username", `Digest username="a\"b", realm="r", nonce="n", uri="sip:r", response="` + resp32 + `"`, 1},
	}
	for _, tt := range tests {
		got := testing.AllocsPerRun(100, func() {
			if _, err := digest.ParseCredentials(tt.header); err != nil {
				t.Fatal(err)
			}
		})
		if got != tt.want {
			t.Errorf("%s: got %v allocs, want %v", tt.name, got, tt.want)
		}
	}
}

// Real headers, in the formats of the clients in INTEROP_NOTES.md.
const (
	// sipp 3.6.1 (auth.cpp): no spaces, cnonce/nc/qop before uri.
	sippHeader = `Digest username="alice",realm="127.0.0.1",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="0123456789abcdef0123456789abcdef",algorithm=MD5`
	// baresip 1.0 (libre sip/auth.c): uri with ;transport=udp, 16-hex cnonce.
	baresipHeader = `Digest username="alice", realm="sipwarden.test", nonce="AaGJ8w0-ZuJdQWTFqA2r0g9y6bU7k1NhT3c5xWQz_Pg8L4mRvYeI2sDfH6jKoNuB", uri="sip:sipwarden.test;transport=udp", response="6629fae49393a05397450978507c4ef1", cnonce="61b4f8b3aa3b0ad3", qop=auth, nc=00000001`
	// linphonec 5.1 (belle-sip): realm first, two spaces before uri.
	linphoneHeader = `Digest realm="sipwarden.test", nonce="AaGJ8w0-ZuJdQWTFqA2r0g9y6bU7k1NhT3c5xWQz_Pg8L4mRvYeI2sDfH6jKoNuB", algorithm=MD5, username="alice",  uri="sip:sipwarden.test", response="6629fae49393a05397450978507c4ef1", cnonce="lS3j7aK1xWf0sUcn", nc=00000001, qop=auth`
)

func TestParseCredentialsRealClients(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   digest.Credentials
	}{
		{"sipp", sippHeader, digest.Credentials{Username: "alice", Realm: "127.0.0.1", Nonce: "abc", URI: "sip:127.0.0.1:5060",
			Response: resp32, Algorithm: "MD5", CNonce: "6b8b4567", QOP: "auth", NC: "00000001", NonceCount: 1}},
		{"baresip", baresipHeader, digest.Credentials{Username: "alice", Realm: "sipwarden.test",
			Nonce: "AaGJ8w0-ZuJdQWTFqA2r0g9y6bU7k1NhT3c5xWQz_Pg8L4mRvYeI2sDfH6jKoNuB", URI: "sip:sipwarden.test;transport=udp",
			Response: "6629fae49393a05397450978507c4ef1", CNonce: "61b4f8b3aa3b0ad3", QOP: "auth", NC: "00000001", NonceCount: 1}},
		{"linphone", linphoneHeader, digest.Credentials{Username: "alice", Realm: "sipwarden.test",
			Nonce: "AaGJ8w0-ZuJdQWTFqA2r0g9y6bU7k1NhT3c5xWQz_Pg8L4mRvYeI2sDfH6jKoNuB", URI: "sip:sipwarden.test",
			Response: "6629fae49393a05397450978507c4ef1", Algorithm: "MD5", CNonce: "lS3j7aK1xWf0sUcn", QOP: "auth", NC: "00000001", NonceCount: 1}},
	}
	for _, tt := range tests {
		got, err := digest.ParseCredentials(tt.header)
		if err != nil {
			t.Errorf("%s: got error %v, want none", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
