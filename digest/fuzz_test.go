package digest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sipwarden/sipwarden/digest"
)

// quote writes s as a quoted string, escaping DQUOTE and backslash.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// format writes c back as a header, every value quoted. It is the test's own
// encoder, not the package's.
func format(c digest.Credentials) string {
	parts := []string{
		"username=" + quote(c.Username), "realm=" + quote(c.Realm), "nonce=" + quote(c.Nonce),
		"uri=" + quote(c.URI), "response=" + quote(c.Response),
	}
	for _, p := range []struct{ name, v string }{
		{"algorithm", c.Algorithm}, {"cnonce", c.CNonce}, {"opaque", c.Opaque}, {"qop", c.QOP}, {"nc", c.NC},
	} {
		if p.v != "" {
			parts = append(parts, p.name+"="+quote(p.v))
		}
	}
	if c.UserHash {
		parts = append(parts, "userhash=true")
	}
	return "Digest " + strings.Join(parts, ", ")
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// FuzzParseCredentials: any input either fails with one of the package's
// errors or gives Credentials that keep the documented invariants and
// survive a round trip through an independent encoder.
func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{
		base, sippHeader, baresipHeader, linphoneHeader, rfcHeader2,
		base + `, qop=auth, nc=00000001, cnonce="a\"b"`,
		`Digest username*=UTF-8''J%C3%A4s%C3%B8n, realm="r", nonce="n", uri="u", response="` + resp32 + `"`,
		"Bearer abc", "Digest", `Digest username="`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := digest.ParseCredentials(header)
		if err != nil {
			if !errors.Is(err, digest.ErrMalformed) && !errors.Is(err, digest.ErrUnsupportedScheme) {
				t.Fatalf("got error %v, want ErrMalformed or ErrUnsupportedScheme", err)
			}
			if c != (digest.Credentials{}) {
				t.Fatalf("got %+v with error %v, want the zero Credentials", c, err)
			}
			return
		}
		for _, v := range []string{c.Username, c.Realm, c.Nonce, c.URI, c.Response, c.Algorithm, c.CNonce, c.Opaque, c.QOP, c.NC} {
			if hasCTL(v) {
				t.Fatalf("got a control character in %q, want none (values reach logs)", v)
			}
		}
		if c.Username == "" || c.Nonce == "" || c.URI == "" || c.Response == "" {
			t.Fatalf("got %+v, want username, nonce, uri and response set", c)
		}
		if alg, err := digest.ParseAlgorithm(c.Algorithm); err == nil {
			if want := len(digest.DummyHA1(alg)); len(c.Response) != want {
				t.Fatalf("got response of %d digits for %v, want %d", len(c.Response), alg, want)
			}
		}
		if c.QOP != "" && (len(c.NC) != 8 || c.CNonce == "") {
			t.Fatalf("got qop %q with nc %q and cnonce %q, want both", c.QOP, c.NC, c.CNonce)
		}
		if (c.NC == "") != (c.NonceCount == 0) && c.NC != "00000000" {
			t.Fatalf("got nc %q and NonceCount %d, want them consistent", c.NC, c.NonceCount)
		}
		again, err := digest.ParseCredentials(format(c))
		if err != nil {
			t.Fatalf("re-parse of %q: got error %v, want none", format(c), err)
		}
		if again != c {
			t.Fatalf("re-parse: got %+v, want %+v", again, c)
		}
	})
}

// FuzzChallenge: whatever the configuration or a caller puts in a challenge,
// it is one safe header line, and a client reading it gets back the values
// without their control characters.
func FuzzChallenge(f *testing.F) {
	f.Add("sipwarden.test", "AaGJ8w0-ZuJdQWTFqA2r0g9y6bU7k1NhT3c5xWQz_Pg8L4mRvYeI2sDfH6jKoNuB", "", uint8(1), true, false)
	f.Add(`a"b\c`, "n,1", "o\r\np", uint8(2), false, true)
	f.Add("evil\r\nVia: x", "n", "o", uint8(3), true, true)
	f.Fuzz(func(t *testing.T, realm, nonce, opaque string, alg uint8, qop, stale bool) {
		c := digest.Challenge{Realm: realm, Nonce: nonce, Opaque: opaque, Algorithm: digest.Algorithm(alg % 5), Stale: stale}
		if qop {
			c.QOP = []string{"auth"}
		}
		s := c.String()
		if hasCTL(s) {
			t.Fatalf("got %q, want no control characters", s)
		}
		if got := string(c.AppendTo(nil)); got != s {
			t.Fatalf("AppendTo: got %q, want %q", got, s)
		}
		if strip(nonce) == "" {
			return // an empty nonce cannot be answered
		}
		got, err := digest.ParseCredentials(answer(c))
		if err != nil {
			t.Fatalf("%q: got error %v, want none", s, err)
		}
		if got.Realm != strip(realm) || got.Nonce != strip(nonce) || got.Opaque != strip(opaque) {
			t.Fatalf("got realm %q nonce %q opaque %q, want %q %q %q", got.Realm, got.Nonce, got.Opaque, strip(realm), strip(nonce), strip(opaque))
		}
	})
}

// strip drops the bytes Challenge must drop: control characters but HTAB.
func strip(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c < 0x20 && c != '\t' || c == 0x7f) {
			b = append(b, c)
		}
	}
	return string(b)
}

// The committed corpus holds real client headers: they must keep parsing,
// and the malformed seeds must keep failing, or the corpus has rotted.
func TestFuzzCorpus(t *testing.T) {
	malformed := map[string]error{
		"bearer":             digest.ErrUnsupportedScheme,
		"unterminated_quote": digest.ErrMalformed,
		"duplicate_param":    digest.ErrMalformed,
		"bad_nc":             digest.ErrMalformed,
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseCredentials", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("got %d corpus files, want at least 8", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(string(data), "go test fuzz v1\nstring(")
		if !ok || !strings.HasSuffix(rest, ")\n") {
			t.Errorf("%s: got %q, want the go test fuzz v1 format with one string", f, data)
			continue
		}
		header, err := strconv.Unquote(strings.TrimSuffix(rest, ")\n"))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		_, err = digest.ParseCredentials(header)
		if want := malformed[filepath.Base(f)]; !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("%s: got error %v, want %v", filepath.Base(f), err, want)
		}
	}
}
