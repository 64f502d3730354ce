// Package e164 normalises telephone numbers to E.164 (ITU-T E.164: a
// country code and subscriber number of at most 15 digits, written with a
// leading "+"), the one form numbers are stored, compared and looked up
// in.
package e164

import (
	"errors"
	"strings"
)

// Errors Normalize returns; each says what is wrong with the input.
var (
	ErrEmpty    = errors.New("e164: empty number")
	ErrNotDigit = errors.New("e164: a number holds only digits after an optional +")
	ErrLength   = errors.New("e164: a number has 2 to 15 digits")
	ErrZero     = errors.New("e164: a country code does not begin with 0")
)

// Normalize returns s as "+" and digits. It accepts "+15551234567",
// "15551234567", the tel: URI form of RFC 3966 ("tel:+1-555-123-4567",
// parameters after ";" ignored) and visual separators ("-", ".", " ",
// "(", ")", RFC 3966 section 5.1.1). It does not guess a country: a
// number without "+" is taken as already international.
func Normalize(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	s, _, _ = strings.Cut(s, ";")
	s = strings.TrimPrefix(s, "+")
	var b [16]byte
	out := append(b[:0], '+')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if len(out) > 16 {
				return "", ErrLength
			}
			out = append(out, c)
		case c == '-' || c == '.' || c == ' ' || c == '(' || c == ')':
		default:
			return "", ErrNotDigit
		}
	}
	switch n := len(out) - 1; {
	case n == 0:
		return "", ErrEmpty
	case n < 2 || n > 15:
		return "", ErrLength
	case out[1] == '0':
		return "", ErrZero
	}
	return string(out), nil
}

// FromUser returns the E.164 form of a SIP URI's user part when it is a
// telephone number ("+15551234567", "15551234567", with user=phone style
// parameters after ";"), and false for a username. A global number (with
// "+") may carry RFC 3966's visual separators ("+1-555-123-4567", "-",
// "." and parentheses, section 5.1.1), as a user=phone URI does; without
// "+" only digits are a number ("555-1234" may be a username). It is the
// lookup used on the INVITE path: no allocation for a username.
func FromUser(user string) (string, bool) {
	u, _, _ := strings.Cut(user, ";")
	if u == "" {
		return "", false
	}
	i, global := 0, u[0] == '+'
	if global {
		i = 1
	}
	if i == len(u) {
		return "", false
	}
	for ; i < len(u); i++ {
		c := u[i]
		if c >= '0' && c <= '9' || global && (c == '-' || c == '.' || c == '(' || c == ')') {
			continue
		}
		return "", false
	}
	n, err := Normalize(u)
	return n, err == nil
}

// Pattern is the wildcard that ends a number pattern: "+1555123*" matches
// every number that starts with +1555123.
const Pattern = "*"

// NormalizePattern is Normalize for a number or a number pattern: a
// number (as Normalize), or a prefix of 1 to 14 digits followed by "*"
// ("+1 555 123*", "tel:+1555123*"), returned as "+1555123*".
func NormalizePattern(s string) (string, error) {
	t := strings.TrimSpace(s)
	if !strings.HasSuffix(t, Pattern) {
		return Normalize(s)
	}
	t = strings.TrimSuffix(t, Pattern)
	if len(t) >= 4 && strings.EqualFold(t[:4], "tel:") {
		t = t[4:]
	}
	if strings.Contains(t, ";") {
		return "", ErrNotDigit
	}
	if strings.TrimPrefix(strings.TrimSpace(t), "+") == "" {
		return "", ErrEmpty
	}
	// A prefix of one digit is valid as a pattern: pad a digit to pass
	// Normalize's length check, then take it off.
	n, err := Normalize(t + "0")
	if err != nil {
		return "", err
	}
	return n[:len(n)-1] + Pattern, nil
}

// IsPattern reports whether a normalised number is a pattern.
func IsPattern(n string) bool { return strings.HasSuffix(n, Pattern) }
