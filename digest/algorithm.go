package digest

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"strconv"
)

// Algorithm is a digest hash algorithm from the registry of RFC 7616
// section 6.1. The zero value is not a valid algorithm.
type Algorithm uint8

// The supported algorithms. The -sess variants are not supported.
const (
	// MD5 is the algorithm of RFC 2617, and the one meant by a header without
	// an algorithm parameter. It is the only one most SIP phones implement.
	MD5 Algorithm = iota + 1
	// SHA256 is SHA-256 (RFC 7616).
	SHA256
	// SHA512_256 is SHA-512/256 (RFC 7616, RFC 8760 section 2): the FIPS
	// 180-4 function with its own initial values, not SHA-512 truncated to
	// 256 bits.
	SHA512_256
)

// maxSize is the largest digest size in bytes (SHA-256, SHA-512/256).
const maxSize = 32

// String returns the name used in the algorithm parameter: "MD5",
// "SHA-256" or "SHA-512-256".
func (a Algorithm) String() string {
	switch a {
	case MD5:
		return "MD5"
	case SHA256:
		return "SHA-256"
	case SHA512_256:
		return "SHA-512-256"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

// ParseAlgorithm returns the Algorithm named by s, compared without regard
// to case. The empty string means MD5, the default of RFC 2617 section
// 3.2.1. Other names, the -sess variants included, give an error wrapping
// ErrUnsupportedAlgorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	if a, ok := lookupAlgorithm(s); ok {
		return a, nil
	}
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	if n := len(s) - len("-sess"); n > 0 && equalFoldASCII(s[n:], "-sess") {
		return 0, fmt.Errorf("%w %q: session variants are not supported", ErrUnsupportedAlgorithm, s)
	}
	return 0, fmt.Errorf("%w %q", ErrUnsupportedAlgorithm, s)
}

// lookupAlgorithm is ParseAlgorithm without the error (and its allocation).
func lookupAlgorithm(s string) (Algorithm, bool) {
	switch {
	case s == "", equalFoldASCII(s, "md5"):
		return MD5, true
	case equalFoldASCII(s, "sha-256"):
		return SHA256, true
	case equalFoldASCII(s, "sha-512-256"):
		return SHA512_256, true
	}
	return 0, false
}

func (a Algorithm) valid() bool { return a >= MD5 && a <= SHA512_256 }

// size returns the digest size in bytes, 0 for an invalid algorithm.
func (a Algorithm) size() int {
	switch a {
	case MD5:
		return md5.Size
	case SHA256:
		return sha256.Size
	case SHA512_256:
		return sha512.Size256
	}
	return 0
}

// sum writes H(data) into out and returns the used part of it. The
// one-shot functions keep everything on the stack, unlike hash.Hash.
func (a Algorithm) sum(out *[maxSize]byte, data []byte) []byte {
	switch a {
	case MD5:
		s := md5.Sum(data)
		return out[:copy(out[:], s[:])]
	case SHA256:
		s := sha256.Sum256(data)
		return out[:copy(out[:], s[:])]
	case SHA512_256:
		// RFC 8760 section 2: SHA-512/256 proper, not a truncated SHA-512.
		s := sha512.Sum512_256(data)
		return out[:copy(out[:], s[:])]
	}
	return out[:0]
}

// hexSum writes the lowercase hex of H(data) into out and returns the used
// part of it.
func (a Algorithm) hexSum(out *[2 * maxSize]byte, data []byte) []byte {
	var raw [maxSize]byte
	return out[:hex.Encode(out[:], a.sum(&raw, data))]
}

// HA1 returns the lowercase hex H(username ":" realm ":" password), the
// value a credential store keeps instead of the password (RFC 7616 section
// 3.4.2). It returns "" for an invalid algorithm.
func HA1(alg Algorithm, username, realm, password string) string {
	if !alg.valid() {
		return ""
	}
	b := make([]byte, 0, len(username)+len(realm)+len(password)+2)
	b = append(b, username...)
	b = append(b, ':')
	b = append(b, realm...)
	b = append(b, ':')
	b = append(b, password...)
	var out [2 * maxSize]byte
	h := alg.hexSum(&out, b)
	clear(b) // do not leave the password in the heap longer than needed
	return string(h)
}

// dummyHA1 holds one random HA1 per algorithm, drawn at start-up.
var dummyHA1 = func() (d [SHA512_256 + 1]string) {
	for a := MD5; a <= SHA512_256; a++ {
		var b [maxSize]byte
		rand.Read(b[:a.size()])
		d[a] = hex.EncodeToString(b[:a.size()])
	}
	return d
}()

// DummyHA1 returns an HA1 of the right length for alg, for verifying the
// response of a user that does not exist: Verify then does the same work as
// for a real user, so timing does not tell them apart. It is random, drawn
// once per process, so no client can compute a response that matches it
// except by chance. It returns "" for an invalid algorithm.
func DummyHA1(alg Algorithm) string {
	if !alg.valid() {
		return ""
	}
	return dummyHA1[alg]
}
