// Package digest is server-side HTTP/SIP Digest access authentication
// (RFC 2617, RFC 7616, RFC 8760) with no I/O: it parses Authorization and
// Proxy-Authorization headers, builds WWW-Authenticate and
// Proxy-Authenticate challenges, computes and checks responses, issues
// stateless HMAC nonces and tracks nonce counts against replay.
//
// It imports only the standard library (a test enforces it), so the
// registrar, the proxy and the API can all use it without pulling in a
// transport.
//
// A request is checked in this order:
//
//	c, err := digest.ParseCredentials(header)    // ErrMalformed / ErrUnsupportedScheme
//	alg, err := digest.ParseAlgorithm(c.Algorithm)
//	status, expires := nonces.Check(c.Nonce)     // NonceInvalid: challenge again
//	ha1 := lookup(c.Username) or digest.DummyHA1(alg)
//	ok := digest.Verify(c, alg, method, ha1, body)
//	if ok && status == digest.NonceValid && c.QOP != "" {
//		fresh := counts.Accept(c.Nonce, c.NonceCount, expires)
//	}
//
// Verify before acting on a stale nonce or a replayed count: only a correct
// response proves that the client knows the password, so only then may it be
// told stale=true.
//
// The strings in a parsed Credentials are substrings of the header passed
// to ParseCredentials (no copy unless a value had to be unescaped). Clone
// them (strings.Clone) before keeping them beyond the request, or they keep
// the whole header, and perhaps the whole message buffer, alive.
package digest
