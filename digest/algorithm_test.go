package digest_test

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/sipwarden/sipwarden/digest"
)

func TestAlgorithmString(t *testing.T) {
	tests := []struct {
		alg  digest.Algorithm
		want string
	}{
		{digest.MD5, "MD5"},
		{digest.SHA256, "SHA-256"},
		{digest.SHA512_256, "SHA-512-256"},
		{0, "Algorithm(0)"},
		{9, "Algorithm(9)"},
	}
	for _, tt := range tests {
		if got := tt.alg.String(); got != tt.want {
			t.Errorf("Algorithm(%d).String() = %q, want %q", uint8(tt.alg), got, tt.want)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    digest.Algorithm
		wantErr bool
	}{
		{"", digest.MD5, false}, // RFC 2617 default
		{"MD5", digest.MD5, false},
		{"md5", digest.MD5, false},
		{"SHA-256", digest.SHA256, false},
		{"sha-256", digest.SHA256, false},
		{"SHA-512-256", digest.SHA512_256, false},
		{"Sha-512-256", digest.SHA512_256, false},
		{"MD5-sess", 0, true},
		{"SHA-256-SESS", 0, true},
		{"SHA-512-256-sess", 0, true},
		{"SHA-512/256", 0, true},
		{"SHA256", 0, true},
		{"SHA-1", 0, true},
		{"AKAv1-MD5", 0, true},
		{" MD5", 0, true},
		{"\u212aMD5", 0, true},
	}
	for _, tt := range tests {
		got, err := digest.ParseAlgorithm(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAlgorithm(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil && !errors.Is(err, digest.ErrUnsupportedAlgorithm) {
			t.Errorf("ParseAlgorithm(%q): got error %v, want ErrUnsupportedAlgorithm", tt.in, err)
		}
		if got != tt.want {
			t.Errorf("ParseAlgorithm(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHA1(t *testing.T) {
	sum := func(h []byte) string { return hex.EncodeToString(h) }
	md := md5.Sum([]byte("Mufasa:http-auth@example.org:Circle of Life"))
	s2 := sha256.Sum256([]byte("Mufasa:http-auth@example.org:Circle of Life"))
	s5 := sha512.Sum512_256([]byte("Mufasa:http-auth@example.org:Circle of Life"))
	tests := []struct {
		name string
		alg  digest.Algorithm
		want string
	}{
		// RFC 2617 section 3.5's user, realm and password.
		{"rfc2617", digest.MD5, "939e7578ed9e3c518a452acee763bce9"},
		{"md5", digest.MD5, sum(md[:])},
		{"sha256", digest.SHA256, sum(s2[:])},
		{"sha512_256", digest.SHA512_256, sum(s5[:])},
	}
	for _, tt := range tests {
		user, realm, pw := "Mufasa", "http-auth@example.org", "Circle of Life"
		if tt.name == "rfc2617" {
			realm, pw = "testrealm@host.com", "Circle Of Life"
		}
		if got := digest.HA1(tt.alg, user, realm, pw); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := digest.HA1(0, "a", "b", "c"); got != "" {
		t.Errorf("invalid algorithm: got %q, want empty", got)
	}
}

// RFC 8760 section 2: SHA-512-256 is SHA-512/256, which has its own initial
// values, so it differs from the first 256 bits of SHA-512.
func TestSHA512_256IsNotTruncatedSHA512(t *testing.T) {
	in := "Mufasa:http-auth@example.org:Circle of Life"
	full := sha512.Sum512([]byte(in))
	truncated := hex.EncodeToString(full[:32])
	got := digest.HA1(digest.SHA512_256, "Mufasa", "http-auth@example.org", "Circle of Life")
	if got == truncated {
		t.Fatalf("got truncated SHA-512 %s, want SHA-512/256", got)
	}
	proper := sha512.Sum512_256([]byte(in))
	if want := hex.EncodeToString(proper[:]); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDummyHA1(t *testing.T) {
	seen := map[string]bool{}
	for _, alg := range []digest.Algorithm{digest.MD5, digest.SHA256, digest.SHA512_256} {
		d := digest.DummyHA1(alg)
		want := len(digest.HA1(alg, "u", "r", "p"))
		if len(d) != want {
			t.Errorf("%v: got length %d, want %d", alg, len(d), want)
		}
		if _, err := hex.DecodeString(d); err != nil {
			t.Errorf("%v: got %q, want hex", alg, d)
		}
		if d != digest.DummyHA1(alg) {
			t.Errorf("%v: got a different value on the second call, want a fixed one", alg)
		}
		if seen[d] {
			t.Errorf("%v: got the value of another algorithm", alg)
		}
		seen[d] = true
	}
	if d := digest.DummyHA1(0); d != "" {
		t.Errorf("invalid algorithm: got %q, want empty", d)
	}
	// A well-known HA1 (all zeros) would let anyone log in as a user that
	// does not exist if a caller forgot to check: the dummy must not be one.
	if d := digest.DummyHA1(digest.MD5); d == "00000000000000000000000000000000" {
		t.Errorf("got the all-zero HA1, want a random one")
	}
}
