package api

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sipwarden/sipwarden/digest"
)

const (
	maxUsernameLen = 64
	maxTextLen     = 128 // name, tag
	maxIDLen       = 128
	// usernameSymbols are the marks a username may hold besides ASCII
	// letters and digits: the unreserved and user-unreserved characters of
	// the SIP user part (RFC 3261 25.1) that need no escaping.
	usernameSymbols = "-_.!~*'()&=+$,"
)

// checkUsername validates a SIP username.
func (v *validation) checkUsername(pointer, u string) {
	switch {
	case u == "":
		v.add(pointer, CodeRequired, "username is required")
	case len(u) > maxUsernameLen:
		v.add(pointer, CodeTooLong, "username is longer than %d characters", maxUsernameLen)
	default:
		for _, r := range u {
			if !(r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(usernameSymbols, r))) {
				v.add(pointer, CodeInvalidCharacters,
					"username may hold only ASCII letters, digits and %s; %q is not allowed", usernameSymbols, r)
				return
			}
		}
	}
}

// checkPassword validates a new password: its length in characters, and
// that it is not trivially guessable (weak, below).
func (v *validation) checkPassword(pointer, p string, minLen int, username string) {
	n := utf8.RuneCountInString(p)
	switch {
	case p == "":
		v.add(pointer, CodeRequired, "password is required")
	case n < minLen:
		v.add(pointer, CodeTooShort, "password is shorter than %d characters", minLen)
	case n > maxPasswordLength:
		v.add(pointer, CodeTooLong, "password is longer than %d characters", maxPasswordLength)
	default:
		if why := weak(p, username); why != "" {
			v.add(pointer, CodeWeakPassword, "password is too easy to guess: %s", why)
		}
	}
}

// minDistinct is the fewest different characters a password may have.
const minDistinct = 5

// weak says why p is too easy to guess (a SIP password faces online
// guessing from the whole Internet), or "" when it is not: it is the
// username with fewer than 6 other characters, it has fewer than minDistinct different characters
// ("aaaaaaaaaaaa", "abababababab"), runs in steps of one ("123456789012",
// "abcdefghijkl").
func weak(p, username string) string {
	lp := strings.ToLower(p)
	if u := strings.ToLower(username); u != "" && utf8.RuneCountInString(strings.ReplaceAll(lp, u, "")) < 6 {
		return "it is the username with fewer than 6 other characters"
	}
	distinct := map[rune]bool{}
	for _, r := range lp {
		distinct[r] = true
	}
	if len(distinct) < minDistinct {
		return fmt.Sprintf("it has fewer than %d different characters", minDistinct)
	}
	rs := []rune(lp)
	steps := 0
	for i := 1; i < len(rs); i++ {
		if d := rs[i] - rs[i-1]; d == 1 || d == -1 || d == -9 || d == 9 {
			steps++
		}
	}
	if steps*4 >= (len(rs)-1)*3 { // three quarters of it a run
		return "it is a run of consecutive characters"
	}
	return ""
}

// checkText validates a free-text label (name, tag): at most maxTextLen
// characters, no control characters, and none that reorder or break
// what is shown around them (bidi controls, line and paragraph
// separators): "admin\u202Etxt.exe" shows in the console and the CLI as
// another name than it is.
func (v *validation) checkText(pointer, field, s string) {
	if utf8.RuneCountInString(s) > maxTextLen {
		v.add(pointer, CodeTooLong, "%s is longer than %d characters", field, maxTextLen)
		return
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		v.add(pointer, CodeInvalidCharacters, "%s must not contain control characters", field)
		return
	}
	if strings.ContainsFunc(s, displayControl) {
		v.add(pointer, CodeInvalidCharacters, "%s must not contain bidirectional controls or line separators", field)
		return
	}
	if strings.ContainsFunc(s, invisible) {
		v.add(pointer, CodeInvalidCharacters, "%s must not contain invisible format characters (zero-width space, byte order mark, soft hyphen, tag characters)", field)
	}
}

// invisible reports whether r is a format character (Unicode category
// Cf) other than the joiners: a zero-width space, a byte order mark, a
// soft hyphen, a tag character, which make look-alike names ("alice" and
// "al​ice" shown the same in the console and the CLI).
func invisible(r rune) bool {
	return r != 0x200C && r != 0x200D && unicode.Is(unicode.Cf, r)
}

// displayControl reports whether r changes how the text around it is
// shown: a bidirectional control (U+200E, U+200F, U+202A to U+202E, U+2066
// to U+2069, U+061C) or a line or paragraph separator (U+2028, U+2029).
// Joiners stay allowed: emoji sequences and Persian names need them.
func displayControl(r rune) bool {
	switch {
	case r == 0x200E || r == 0x200F || r == 0x061C:
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return unicode.In(r, unicode.Zl, unicode.Zp)
}

// checkAlgorithms validates a non-empty list of distinct digest algorithm
// names and returns their canonical spelling, in the order given.
func (v *validation) checkAlgorithms(pointer string, names []string) []string {
	if len(names) == 0 {
		v.add(pointer, CodeInvalidValue, "algorithms must not be empty: omit it (or send null) for the server's default list")
		return nil
	}
	out := make([]string, 0, len(names))
	for i, n := range names {
		a, err := digest.ParseAlgorithm(n)
		if err != nil || n == "" { // ParseAlgorithm reads "" as MD5, the RFC 2617 default
			v.add(pointer+"/"+strconv.Itoa(i), CodeInvalidValue, "unknown digest algorithm %q; known: MD5, SHA-256, SHA-512-256", n)
			return nil
		}
		if slices.Contains(out, a.String()) {
			v.add(pointer+"/"+strconv.Itoa(i), CodeInvalidValue, "algorithm %s is listed twice", a.String())
			return nil
		}
		out = append(out, a.String())
	}
	return out
}

// checkTime parses an RFC 3339 time; notBefore, when not zero, is the
// earliest time allowed.
func (v *validation) checkTime(pointer, field, s string, notBefore time.Time) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		v.add(pointer, CodeInvalidValue, "%s must be an RFC 3339 time such as 2030-01-02T15:04:05Z, not %q", field, truncate(s, 64))
		return time.Time{}
	}
	if !notBefore.IsZero() && !t.After(notBefore) {
		v.add(pointer, CodeInPast, "%s %s is not in the future", field, t.Format(time.RFC3339))
		return time.Time{}
	}
	return t.UTC()
}

// checkName validates a connection name: required, like a label otherwise.
func (v *validation) checkName(pointer, s string) {
	if strings.TrimSpace(s) == "" {
		v.add(pointer, CodeRequired, "name is required")
		return
	}
	v.checkText(pointer, "name", s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// allAlgorithms are the algorithms every credential stores an HA1 for.
var allAlgorithms = []digest.Algorithm{digest.MD5, digest.SHA256, digest.SHA512_256}

// ha1s computes the HA1 of every algorithm for a new password.
func ha1s(username, realm, password string) map[string]string {
	m := make(map[string]string, len(allAlgorithms))
	for _, a := range allAlgorithms {
		m[a.String()] = digest.HA1(a, username, realm, password)
	}
	return m
}
