package digest

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Credentials are the parameters of a Digest Authorization or
// Proxy-Authorization header (RFC 7616 section 3.4, RFC 3261 section
// 25.1), unquoted and unescaped. Strings are substrings of the parsed header
// unless a value had to be unescaped or decoded.
type Credentials struct {
	// Username is unq(username), or the decoded username* (RFC 7616 section
	// 3.4.4). With UserHash it is the hashed username, not the name.
	Username string
	// Realm is unq(realm); it selects the credentials meant for us when a
	// request carries several (RFC 3261 section 22.4).
	Realm string
	// Nonce is unq(nonce), the server nonce the client answers.
	Nonce string
	// URI is unq(uri), the digest-uri exactly as the client sent it and
	// hashed it; it may differ from the Request-URI (sipp, baresip).
	URI string
	// Response is the hex response, validated to have the length of the
	// algorithm (any even length up to 128 for an unknown algorithm).
	Response string
	// Algorithm is the algorithm name as sent; "" means MD5. See
	// ParseAlgorithm.
	Algorithm string
	// CNonce is unq(cnonce); present whenever QOP is.
	CNonce string
	// Opaque is unq(opaque), echoed from the challenge.
	Opaque string
	// QOP is "auth" or "auth-int" in the case the client sent, or "" for an
	// RFC 2069 style answer without qop.
	QOP string
	// NC is the nonce count as sent: 8 hex digits, or "" when absent.
	NC string
	// NonceCount is NC as a number; 0 when NC is absent.
	NonceCount uint32
	// UserHash is true for userhash=true (RFC 7616 section 3.4.4): Username
	// is then H(unq(username) ":" unq(realm)) and must be looked up as such.
	UserHash bool
}

// Parameters ParseCredentials knows, as bits of a set.
const (
	pUsername = 1 << iota
	pUsernameExt
	pRealm
	pNonce
	pURI
	pResponse
	pAlgorithm
	pCNonce
	pOpaque
	pQOP
	pNC
	pUserHash
)

// paramName returns the canonical name of a known parameter, for errors.
func paramName(p int) string {
	switch p {
	case pUsername:
		return "username"
	case pUsernameExt:
		return "username*"
	case pRealm:
		return "realm"
	case pNonce:
		return "nonce"
	case pURI:
		return "uri"
	case pResponse:
		return "response"
	case pAlgorithm:
		return "algorithm"
	case pCNonce:
		return "cnonce"
	case pOpaque:
		return "opaque"
	case pQOP:
		return "qop"
	case pNC:
		return "nc"
	case pUserHash:
		return "userhash"
	}
	return "?"
}

// lookupParam returns the bit of a known parameter name (matched without
// regard to case), 0 for an unknown one.
func lookupParam(name string) int {
	switch len(name) {
	case 2:
		if equalFoldASCII(name, "nc") {
			return pNC
		}
	case 3:
		switch {
		case equalFoldASCII(name, "uri"):
			return pURI
		case equalFoldASCII(name, "qop"):
			return pQOP
		}
	case 5:
		switch {
		case equalFoldASCII(name, "realm"):
			return pRealm
		case equalFoldASCII(name, "nonce"):
			return pNonce
		}
	case 6:
		switch {
		case equalFoldASCII(name, "cnonce"):
			return pCNonce
		case equalFoldASCII(name, "opaque"):
			return pOpaque
		}
	case 8:
		switch {
		case equalFoldASCII(name, "username"):
			return pUsername
		case equalFoldASCII(name, "response"):
			return pResponse
		case equalFoldASCII(name, "userhash"):
			return pUserHash
		}
	case 9:
		switch {
		case equalFoldASCII(name, "algorithm"):
			return pAlgorithm
		case equalFoldASCII(name, "username*"):
			return pUsernameExt
		}
	}
	return 0
}

// ParseCredentials parses an Authorization or Proxy-Authorization header
// value such as
//
//	Digest username="bob", realm="example.org", nonce="...", uri="sip:example.org",
//	    response="...", algorithm=MD5, cnonce="...", qop=auth, nc=00000001
//
// The scheme and the parameter names are matched without regard to case.
// Values may be tokens or quoted strings (with \-escapes) whatever the RFC
// prescribes for the parameter, since clients differ (algorithm="MD5",
// qop="auth"). Empty list elements are skipped (RFC 7230 section 7), as are
// unknown parameters; linear whitespace may surround "=" and ",".
//
// It returns ErrUnsupportedScheme for another scheme, and an error wrapping
// ErrMalformed for: a missing username, realm, nonce, uri or response; a
// known parameter given twice; an unterminated quoted string; a parameter
// without "="; anything but "," after a value; a control character (other
// than HTAB) anywhere but in folding whitespace; an nc that is not 8 hex
// digits; a qop other than auth and auth-int, or one without nc and cnonce
// (RFC 7616 section 3.4); a response that is not hex of the algorithm's
// length; both username and username*.
//
// It does not allocate unless a value needs unescaping or the header is
// malformed.
func ParseCredentials(header string) (Credentials, error) {
	var c Credentials
	s := header
	i := skipLWS(s, 0)
	start := i
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	if i == start {
		return Credentials{}, fmt.Errorf("%w: no scheme", ErrMalformed)
	}
	if !equalFoldASCII(s[start:i], "digest") {
		return Credentials{}, ErrUnsupportedScheme
	}
	if i < len(s) && !isLWSStart(s, i) {
		return Credentials{}, fmt.Errorf("%w: no space after the scheme", ErrMalformed)
	}

	var seen int
	for {
		i = skipLWS(s, i)
		if i == len(s) {
			break
		}
		if s[i] == ',' { // empty list element
			i++
			continue
		}
		nameStart := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == nameStart {
			return Credentials{}, fmt.Errorf("%w: unexpected character at offset %d", ErrMalformed, i)
		}
		name := s[nameStart:i]
		i = skipLWS(s, i)
		if i == len(s) || s[i] != '=' {
			return Credentials{}, fmt.Errorf("%w: parameter at offset %d has no '='", ErrMalformed, nameStart)
		}
		i = skipLWS(s, i+1)

		var (
			val     string
			escaped bool
		)
		if i < len(s) && s[i] == '"' {
			end, esc, err := scanQuoted(s, i)
			if err != nil {
				return Credentials{}, err
			}
			val, escaped = s[i+1:end], esc
			i = end + 1
		} else {
			valStart := i
			for i < len(s) && isValueChar(s[i]) {
				i++
			}
			if i == valStart {
				return Credentials{}, fmt.Errorf("%w: parameter at offset %d has no value", ErrMalformed, nameStart)
			}
			val = s[valStart:i]
		}
		i = skipLWS(s, i)
		if i < len(s) {
			if s[i] != ',' {
				return Credentials{}, fmt.Errorf("%w: unexpected character at offset %d after a value", ErrMalformed, i)
			}
			i++
		}

		p := lookupParam(name)
		if p == 0 {
			continue // unknown parameters are ignored (RFC 7616 section 3.4)
		}
		if seen&p != 0 {
			return Credentials{}, fmt.Errorf("%w: duplicate parameter %q", ErrMalformed, paramName(p))
		}
		seen |= p
		if escaped {
			val = unescape(val)
		}
		switch p {
		case pUsername:
			c.Username = val
		case pUsernameExt:
			u, ok := decodeExtValue(val)
			if !ok {
				return Credentials{}, fmt.Errorf("%w: username* is not a UTF-8 extended value (RFC 8187)", ErrMalformed)
			}
			c.Username = u
		case pRealm:
			c.Realm = val
		case pNonce:
			c.Nonce = val
		case pURI:
			c.URI = val
		case pResponse:
			c.Response = val
		case pAlgorithm:
			c.Algorithm = val
		case pCNonce:
			c.CNonce = val
		case pOpaque:
			c.Opaque = val
		case pQOP:
			c.QOP = val
		case pNC:
			c.NC = val
		case pUserHash:
			switch {
			case equalFoldASCII(val, "true"):
				c.UserHash = true
			case equalFoldASCII(val, "false"):
			default:
				return Credentials{}, fmt.Errorf("%w: userhash is neither true nor false", ErrMalformed)
			}
		}
	}
	if err := c.validate(seen); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// validate checks what ParseCredentials cannot see one parameter at a time.
func (c *Credentials) validate(seen int) error {
	if seen&pUsername != 0 && seen&pUsernameExt != 0 {
		// RFC 7616 section 3.4.4: one or the other.
		return fmt.Errorf("%w: both username and username*", ErrMalformed)
	}
	if seen&pUsernameExt != 0 && c.UserHash {
		// RFC 7616 section 3.4.4: a hashed username is sent in username.
		return fmt.Errorf("%w: username* with userhash=true", ErrMalformed)
	}
	if seen&pUsernameExt != 0 {
		seen |= pUsername
	}
	for _, p := range [...]int{pUsername, pRealm, pNonce, pURI, pResponse} {
		if seen&p == 0 {
			return fmt.Errorf("%w: missing parameter %q", ErrMalformed, paramName(p))
		}
	}
	for _, f := range [...]struct {
		p int
		v string
	}{{pUsername, c.Username}, {pNonce, c.Nonce}, {pURI, c.URI}} {
		if f.v == "" {
			return fmt.Errorf("%w: empty parameter %q", ErrMalformed, paramName(f.p))
		}
	}
	if seen&pNC != 0 {
		n, ok := parseNC(c.NC)
		if !ok {
			return fmt.Errorf("%w: nc is not 8 hex digits", ErrMalformed)
		}
		c.NonceCount = n
	}
	if seen&pQOP != 0 {
		if !equalFoldASCII(c.QOP, "auth") && !equalFoldASCII(c.QOP, "auth-int") {
			return fmt.Errorf("%w: qop is neither auth nor auth-int", ErrMalformed)
		}
		// RFC 7616 section 3.4: with qop, cnonce and nc MUST be sent.
		if c.NC == "" || c.CNonce == "" {
			return fmt.Errorf("%w: qop without nc and cnonce", ErrMalformed)
		}
	}
	want := 0
	if a, ok := lookupAlgorithm(c.Algorithm); ok {
		want = 2 * a.size()
	}
	switch {
	case !isHex(c.Response):
		return fmt.Errorf("%w: response is not hex", ErrMalformed)
	case want != 0 && len(c.Response) != want:
		return fmt.Errorf("%w: response has %d hex digits, want %d", ErrMalformed, len(c.Response), want)
	case want == 0 && (len(c.Response) == 0 || len(c.Response)%2 != 0 || len(c.Response) > 128):
		// An algorithm we do not know (say AKAv1-MD5 for another realm): only
		// the shape of a hex digest can be checked.
		return fmt.Errorf("%w: response is not a hex digest", ErrMalformed)
	}
	return nil
}

// scanQuoted scans the quoted string starting at s[i] == '"'. It returns the
// index of the closing quote and whether the content has \-escapes.
func scanQuoted(s string, i int) (end int, escaped bool, err error) {
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return j, escaped, nil
		case c == '\\':
			j++
			if j == len(s) {
				return 0, false, fmt.Errorf("%w: unterminated quoted string at offset %d", ErrMalformed, i)
			}
			if isCTL(s[j]) {
				return 0, false, fmt.Errorf("%w: control character at offset %d", ErrMalformed, j)
			}
			escaped = true
		case isCTL(c):
			return 0, false, fmt.Errorf("%w: control character at offset %d", ErrMalformed, j)
		}
	}
	return 0, false, fmt.Errorf("%w: unterminated quoted string at offset %d", ErrMalformed, i)
}

// unescape removes the backslashes of quoted-pairs (RFC 7230 section 3.2.6).
func unescape(v string) string {
	var b strings.Builder
	b.Grow(len(v) - 1)
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++ // scanQuoted guarantees a character follows
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// decodeExtValue decodes an RFC 8187 ext-value whose charset is UTF-8, as
// RFC 7616 section 3.4.4 requires for username*: UTF-8'[language]'pct-encoded.
func decodeExtValue(v string) (string, bool) {
	const prefix = "utf-8'"
	if len(v) < len(prefix) || !equalFoldASCII(v[:len(prefix)], prefix) {
		return "", false
	}
	v = v[len(prefix):]
	q := strings.IndexByte(v, '\'')
	if q < 0 {
		return "", false
	}
	v = v[q+1:] // skip the language tag
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '%':
			if i+2 >= len(v) || !isHex(v[i+1:i+3]) {
				return "", false
			}
			b = append(b, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
		case isAttrChar(c):
			b = append(b, c)
		default:
			return "", false
		}
	}
	if len(b) == 0 || !utf8.Valid(b) {
		return "", false
	}
	for _, c := range b {
		if isCTL(c) {
			return "", false
		}
	}
	return string(b), true
}

// parseNC parses the 8 hex digits of a nonce count (RFC 7616 section 3.4).
func parseNC(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var n uint32
	for i := 0; i < len(s); i++ {
		if !isHexChar(s[i]) {
			return 0, false
		}
		n = n<<4 | uint32(unhex(s[i]))
	}
	return n, true
}

// skipLWS skips spaces, tabs and CRLF line folding (RFC 3261 section 25.1).
func skipLWS(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == ' ' || s[i] == '\t':
			i++
		case isLWSStart(s, i):
			i += 3
		default:
			return i
		}
	}
	return i
}

// isLWSStart reports whether linear whitespace starts at s[i].
func isLWSStart(s string, i int) bool {
	switch s[i] {
	case ' ', '\t':
		return true
	case '\r':
		return i+2 < len(s) && s[i+1] == '\n' && (s[i+2] == ' ' || s[i+2] == '\t')
	}
	return false
}

// Character classes, as tables indexed by byte.
var (
	// tchar of RFC 7230 section 3.2.6: parameter names and the scheme.
	tokenChars = charTable(func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
	})
	// Unquoted values: any visible ASCII but DQUOTE, comma and backslash.
	// Wider than token so that unquoted URIs and base64 nonces (:/@=) from
	// lax clients still parse; the delimiters stay unambiguous.
	valueChars = charTable(func(c byte) bool {
		return 0x21 <= c && c <= 0x7e && c != '"' && c != ',' && c != '\\'
	})
	// attr-char of RFC 8187 section 3.2.1.
	attrChars = charTable(func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$&+-.^_`|~", c) >= 0
	})
)

func charTable(in func(byte) bool) (t [256]bool) {
	for c := range 256 {
		t[c] = in(byte(c))
	}
	return t
}

func isTokenChar(c byte) bool { return tokenChars[c] }
func isValueChar(c byte) bool { return valueChars[c] }
func isAttrChar(c byte) bool  { return attrChars[c] }

// isCTL reports control characters other than HTAB, which quoted strings
// allow.
func isCTL(c byte) bool { return c < 0x20 && c != '\t' || c == 0x7f }

func isHexChar(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexChar(s[i]) {
			return false
		}
	}
	return true
}

// unhex returns the value of a hex digit already checked by isHexChar.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// decodeHex decodes the hex string s into dst, which must be len(s)/2 long.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) || !isHex(s) {
		return false
	}
	for i := range dst {
		dst[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return true
}

// equalFoldASCII reports whether s equals lower, a lowercase ASCII string,
// ignoring ASCII case only (strings.EqualFold would also fold the Kelvin
// sign into k).
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
