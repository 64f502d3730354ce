package e164_test

import (
	"errors"
	"testing"

	"github.com/sipwarden/sipwarden/e164"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{"+15551234567", "+15551234567", nil},
		{"15551234567", "+15551234567", nil},
		{"tel:+1-555-123-4567", "+15551234567", nil},
		{"TEL:+1.555.123.4567;phone-context=example.com", "+15551234567", nil},
		{" +44 (20) 7946 0958 ", "+442079460958", nil},
		{"", "", e164.ErrEmpty},
		{"+", "", e164.ErrEmpty},
		{"tel:", "", e164.ErrEmpty},
		{"+1", "", e164.ErrLength},
		{"+1234567890123456", "", e164.ErrLength},
		{"+0123456", "", e164.ErrZero},
		{"+1555abc", "", e164.ErrNotDigit},
		{"sip:+15551234567@x", "", e164.ErrNotDigit},
		{"++15551234567", "", e164.ErrNotDigit},
	} {
		got, err := e164.Normalize(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestNormalizePattern(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  error
	}{
		{"+1555123*", "+1555123*", nil},
		{"tel:+1-555-123*", "+1555123*", nil},
		{"1 555*", "+1555*", nil},
		{"+4*", "+4*", nil},
		{"+15551234567", "+15551234567", nil}, // a number is not a pattern
		{"+12345678901234*", "+12345678901234*", nil},
		{"+123456789012345*", "", e164.ErrLength},
		{"+0*", "", e164.ErrZero},
		{"*", "", e164.ErrEmpty},
		{"+1555;x*", "", e164.ErrNotDigit},
		{"+15*5", "", e164.ErrNotDigit},
	} {
		got, err := e164.NormalizePattern(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("NormalizePattern(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFromUser(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"+15551234567", "+15551234567", true},
		{"15551234567", "+15551234567", true},
		{"+15551234567;npdi", "+15551234567", true},
		{"alice", "", false},
		{"1555-123", "", false},
		{"+1-555-123-4567;user=phone", "+15551234567", true},
		{"+1.(555).123.4567", "+15551234567", true},
		{"+1 555", "", false}, // no space in a SIP user part
		{"+-", "", false},
		{"+", "", false},
		{"", "", false},
		{"0123", "", false},
	} {
		got, ok := e164.FromUser(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FromUser(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+15551234567", "tel:+1-555", "15551234567;x", "", "+0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := e164.Normalize(s)
		if err != nil {
			return
		}
		again, err := e164.Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, not a fixed point: %q, %v", s, n, again, err)
		}
		if len(n) < 3 || len(n) > 16 || n[0] != '+' {
			t.Fatalf("Normalize(%q) = %q", s, n)
		}
	})
}
