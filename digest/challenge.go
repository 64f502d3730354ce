package digest

// Challenge is a Digest challenge: the value of a WWW-Authenticate (401) or
// Proxy-Authenticate (407) header (RFC 7616 section 3.3).
type Challenge struct {
	// Realm, Nonce and Opaque are written as quoted strings; an empty
	// Opaque is left out.
	Realm, Nonce, Opaque string
	// Algorithm is written as a token. The zero value (or any invalid
	// value) leaves the parameter out, which clients read as MD5.
	Algorithm Algorithm
	// QOP lists the qop values offered, e.g. ["auth"]; empty values are
	// skipped and an empty list leaves the parameter out (RFC 2069 style).
	// Values are tokens: a comma inside one would split it. Some phones
	// read only the first value: put the preferred one first.
	QOP []string
	// Stale adds stale=true: the nonce was too old but the response was
	// right, so the client retries with the new nonce without asking the
	// user for the password again.
	Stale bool
}

// String returns the header value, for example
//
//	Digest realm="example.org", nonce="...", opaque="...", algorithm=MD5, qop="auth", stale=true
//
// Quoted values are escaped; control characters other than HTAB (CR and LF
// above all) are dropped, so the result is always a single safe header line.
func (c Challenge) String() string {
	var buf [256]byte
	return string(c.AppendTo(buf[:0]))
}

// AppendTo appends the header value String returns to b and returns the
// extended buffer.
func (c Challenge) AppendTo(b []byte) []byte {
	b = append(b, "Digest realm="...)
	b = appendQuoted(b, c.Realm)
	b = append(b, ", nonce="...)
	b = appendQuoted(b, c.Nonce)
	if c.Opaque != "" {
		b = append(b, ", opaque="...)
		b = appendQuoted(b, c.Opaque)
	}
	if c.Algorithm.valid() {
		b = append(b, ", algorithm="...)
		b = append(b, c.Algorithm.String()...)
	}
	first := true
	for _, q := range c.QOP {
		if q == "" {
			continue
		}
		if first {
			b = append(b, `, qop="`...)
			first = false
		} else {
			b = append(b, ',')
		}
		b = appendEscaped(b, q)
	}
	if !first {
		b = append(b, '"')
	}
	if c.Stale {
		b = append(b, ", stale=true"...)
	}
	return b
}

// appendQuoted appends s as a quoted string (RFC 7230 section 3.2.6).
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends s with DQUOTE and backslash escaped and control
// characters other than HTAB dropped: a header must never carry CR or LF
// from a configured or client-supplied value.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isCTL(c):
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return b
}
