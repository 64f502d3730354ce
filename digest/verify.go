package digest

import (
	"crypto/subtle"
	"encoding/hex"
)

// Verify reports whether c.Response is the response to the request made
// with method and body, for the user whose HA1 (lowercase hex) is ha1. It
// computes the expected response and compares the digests in constant time.
//
// alg must be the algorithm c.Algorithm names ("" is MD5), and ha1 must have
// its length; otherwise Verify returns false. c.URI is used as the client
// sent it, not compared with the Request-URI. qop "auth", "auth-int"
// (which hashes body) and none (RFC 2069) are supported.
//
// The time Verify takes depends on the lengths of its inputs, never on
// ha1's value or on how much of the response matches: pass DummyHA1(alg)
// for an unknown user to spend the same time as for a known one.
func Verify(c Credentials, alg Algorithm, method, ha1 string, body []byte) bool {
	if a, ok := lookupAlgorithm(c.Algorithm); !ok || a != alg {
		return false
	}
	n := alg.size()
	if len(ha1) != 2*n {
		return false
	}
	var want [maxSize]byte
	if !decodeHex(want[:n], c.Response) {
		return false
	}
	var out [maxSize]byte
	got, ok := response(&out, &c, alg, method, ha1, body)
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare(got, want[:n]) == 1
}

// Response returns the lowercase hex response a client sends for c with
// alg (whatever c.Algorithm says), method, body and the user's ha1: what
// Verify expects. It is meant for clients and tests. It returns "" for an
// invalid algorithm or an unsupported qop.
func Response(c Credentials, alg Algorithm, method, ha1 string, body []byte) string {
	if !alg.valid() {
		return ""
	}
	var out [maxSize]byte
	got, ok := response(&out, &c, alg, method, ha1, body)
	if !ok {
		return ""
	}
	var h [2 * maxSize]byte
	return string(h[:hex.Encode(h[:], got)])
}

// response writes the raw (not hex) expected response into out.
func response(out *[maxSize]byte, c *Credentials, alg Algorithm, method, ha1 string, body []byte) ([]byte, bool) {
	authInt := false
	switch {
	case c.QOP == "":
	case equalFoldASCII(c.QOP, "auth"):
	case equalFoldASCII(c.QOP, "auth-int"):
		authInt = true
	default:
		return nil, false
	}
	if c.QOP != "" && (c.NC == "" || c.CNonce == "") {
		return nil, false // RFC 7616 section 3.4: qop requires nc and cnonce
	}

	// Inputs up to this size stay on the stack; longer ones (long nonces or
	// URIs) cost one allocation.
	var scratch [320]byte

	// RFC 7616 section 3.4.3: A2 = Method ":" request-uri, with
	// ":" H(entity-body) appended for auth-int.
	b := append(scratch[:0], method...)
	b = append(b, ':')
	b = append(b, c.URI...)
	if authInt {
		var hb [2 * maxSize]byte
		b = append(b, ':')
		b = append(b, alg.hexSum(&hb, body)...)
	}
	var ha2 [2 * maxSize]byte
	h2 := alg.hexSum(&ha2, b)

	// RFC 7616 section 3.4.1: response = KD(H(A1), unq(nonce) ":" nc ":"
	// unq(cnonce) ":" unq(qop) ":" H(A2)), KD(secret, data) =
	// H(secret ":" data); RFC 2069 (no qop): KD(H(A1), unq(nonce) ":" H(A2)).
	// H(A1) is the stored HA1 (section 3.4.2; no -sess variants).
	b = append(b[:0], ha1...)
	b = append(b, ':')
	b = append(b, c.Nonce...)
	b = append(b, ':')
	if c.QOP != "" {
		b = append(b, c.NC...)
		b = append(b, ':')
		b = append(b, c.CNonce...)
		b = append(b, ':')
		b = append(b, c.QOP...)
		b = append(b, ':')
	}
	b = append(b, h2...)
	return alg.sum(out, b), true
}
