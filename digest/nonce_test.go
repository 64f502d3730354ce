package digest_test

import (
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// clock is a settable clock for the injected now functions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newNonces(t testing.TB, key []byte, clk *clock) *digest.Nonces {
	t.Helper()
	n, err := digest.NewNonces(key, 5*time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewNoncesErrors(t *testing.T) {
	tests := []struct {
		name     string
		key      []byte
		lifetime time.Duration
	}{
		{"nil key", nil, time.Minute},
		{"15-byte key", testKey[:15], time.Minute},
		{"zero lifetime", testKey, 0},
		{"negative lifetime", testKey, -time.Second},
	}
	for _, tt := range tests {
		if n, err := digest.NewNonces(tt.key, tt.lifetime, nil); err == nil || n != nil {
			t.Errorf("%s: got %v, %v, want an error", tt.name, n, err)
		}
	}
	if _, err := digest.NewNonces(testKey[:16], time.Minute, nil); err != nil {
		t.Errorf("16-byte key: got %v, want no error", err)
	}
}

func TestNonceRoundTrip(t *testing.T) {
	clk := newClock()
	n := newNonces(t, testKey, clk)
	issued := clk.Now()
	nonce := n.New()
	if len(nonce) != 48 {
		t.Errorf("got length %d, want 48", len(nonce))
	}
	if i := strings.IndexFunc(nonce, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}); i >= 0 {
		t.Errorf("got %q, want only base64url characters", nonce)
	}
	status, exp := n.Check(nonce)
	if status != digest.NonceValid {
		t.Errorf("got %v, want %v", status, digest.NonceValid)
	}
	if want := issued.Add(5 * time.Minute); !exp.Equal(want) {
		t.Errorf("got expiry %v, want %v", exp, want)
	}
	// Another process with the same key (a restart) finds it stale: its
	// nonce counts are gone.
	if status, _ := newNonces(t, testKey, clk).Check(nonce); status != digest.NonceStale {
		t.Errorf("another process with the same key: got %v, want %v", status, digest.NonceStale)
	}
	// Another node sharing the key and the epoch (a cluster) accepts it.
	epoch := [4]byte{1, 2, 3, 4}
	a, err := digest.NewNoncesEpoch(testKey, epoch, 5*time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := digest.NewNoncesEpoch(testKey, epoch, 5*time.Minute, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := b.Check(a.New()); status != digest.NonceValid {
		t.Errorf("other node with the same key and epoch: got %v, want %v", status, digest.NonceValid)
	}
}

func TestNonceKeyIsCopied(t *testing.T) {
	key := append([]byte(nil), testKey...)
	clk := newClock()
	n := newNonces(t, key, clk)
	nonce := n.New()
	key[0] ^= 0xff
	if status, _ := n.Check(nonce); status != digest.NonceValid {
		t.Errorf("after the caller changed its key slice: got %v, want %v", status, digest.NonceValid)
	}
}

func TestNonceUnique(t *testing.T) {
	n := newNonces(t, testKey, newClock()) // a frozen clock: only the random part differs
	seen := make(map[string]bool)
	for range 10000 {
		s := n.New()
		if seen[s] {
			t.Fatalf("got %q twice, want unique nonces", s)
		}
		seen[s] = true
	}
}

func TestNonceTampered(t *testing.T) {
	clk := newClock()
	n := newNonces(t, testKey, clk)
	nonce := n.New()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(nonce) {
		for _, r := range []byte{alphabet[(strings.IndexByte(alphabet, nonce[i])+1)%64], alphabet[(strings.IndexByte(alphabet, nonce[i])+33)%64]} {
			tampered := nonce[:i] + string(r) + nonce[i+1:]
			if status, exp := n.Check(tampered); status != digest.NonceInvalid || !exp.IsZero() {
				t.Errorf("character %d changed: got %v, %v, want %v and the zero time", i, status, exp, digest.NonceInvalid)
			}
		}
	}
	for _, bad := range []string{
		"", "x", nonce[:47], nonce + "A", nonce[:47] + "=", nonce[:46] + "==",
		strings.Replace(nonce, nonce[:1], "+", 1), strings.Repeat("A", 48), `"` + nonce[1:47] + `"`,
	} {
		if status, _ := n.Check(bad); status != digest.NonceInvalid {
			t.Errorf("%q: got %v, want %v", bad, status, digest.NonceInvalid)
		}
	}
}

func TestNonceOtherKey(t *testing.T) {
	clk := newClock()
	other := newNonces(t, []byte("fedcba9876543210fedcba9876543210"), clk)
	if status, _ := newNonces(t, testKey, clk).Check(other.New()); status != digest.NonceInvalid {
		t.Errorf("got %v, want %v", status, digest.NonceInvalid)
	}
}

func TestNonceExpiry(t *testing.T) {
	tests := []struct {
		name    string
		elapsed time.Duration
		want    digest.NonceStatus
	}{
		{"fresh", 0, digest.NonceValid},
		{"just before expiry", 5*time.Minute - time.Nanosecond, digest.NonceValid},
		{"at expiry", 5 * time.Minute, digest.NonceValid},
		{"just after expiry", 5*time.Minute + time.Nanosecond, digest.NonceStale},
		{"a day later", 24 * time.Hour, digest.NonceStale},
		{"issued slightly in the future (skewed node)", -digest.MaxNonceClockSkew, digest.NonceValid},
		{"issued far in the future", -digest.MaxNonceClockSkew - time.Nanosecond, digest.NonceStale},
	}
	for _, tt := range tests {
		clk := newClock()
		n := newNonces(t, testKey, clk)
		nonce := n.New()
		clk.Add(tt.elapsed)
		if got, _ := n.Check(nonce); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNonceStatusString(t *testing.T) {
	tests := []struct {
		s    digest.NonceStatus
		want string
	}{
		{digest.NonceValid, "valid"}, {digest.NonceStale, "stale"}, {digest.NonceInvalid, "invalid"}, {9, "NonceStatus(9)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	if var0 := (digest.NonceStatus(0)); var0 != digest.NonceInvalid {
		t.Errorf("zero value: got %v, want %v (fail closed)", var0, digest.NonceInvalid)
	}
}

func TestNonceAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	n := newNonces(t, testKey, newClock())
	nonce := n.New()
	if got := testing.AllocsPerRun(100, func() { _ = n.New() }); got > 1 {
		t.Errorf("New: got %v allocs, want at most 1", got)
	}
	if got := testing.AllocsPerRun(100, func() { n.Check(nonce) }); got != 0 {
		t.Errorf("Check: got %v allocs, want 0", got)
	}
	c := digest.NewCountsFor(n, 1024, nil)
	exp := time.Now().Add(time.Minute)
	nc := uint32(0)
	if got := testing.AllocsPerRun(100, func() { nc++; c.Accept(nonce, nc, exp) }); got != 0 {
		t.Errorf("Counts.Accept of an own nonce: got %v allocs, want 0", got)
	}
}

// Consecutive nonces do not show the sequence that tells them apart: a
// peer collecting nonces learns nothing of how many challenges were
// issued in between (the sequence goes through a keyed permutation).
func TestNonceSequenceHidden(t *testing.T) {
	n := newNonces(t, testKey, newClock())
	seqField := func(nonce string) uint64 {
		raw, err := base64.RawURLEncoding.DecodeString(nonce)
		if err != nil || len(raw) != 36 {
			t.Fatalf("nonce %q: %v", nonce, err)
		}
		var v uint64
		for _, b := range raw[13:18] {
			v = v<<8 | uint64(b)
		}
		return v
	}
	prev := seqField(n.New())
	for i := range 1000 {
		cur := seqField(n.New())
		if d := cur - prev; d < 1<<8 || -d < 1<<8 { // a chance of 2^-31 per pair
			t.Fatalf("nonce %d: sequence field %#x after %#x, want no visible step", i, cur, prev)
		}
		prev = cur
	}
}
