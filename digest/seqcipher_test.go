package digest

import "testing"

// decrypt inverts encrypt, and encrypt maps distinct sequences to distinct
// values within 40 bits (a permutation: the ring relies on it).
func TestSeqCipherPermutes(t *testing.T) {
	c := newSeqCipher()
	var scratch [32]byte
	seen := make(map[uint64]uint64, 1<<16)
	for _, start := range []uint64{0, seqMask - 1<<15} {
		for v := start; v < start+1<<15; v++ {
			e := c.encrypt(v, &scratch)
			if e > seqMask {
				t.Fatalf("encrypt(%d) = %d: more than 40 bits", v, e)
			}
			if d := c.decrypt(e, &scratch); d != v {
				t.Fatalf("decrypt(encrypt(%d)) = %d", v, d)
			}
			if w, dup := seen[e]; dup {
				t.Fatalf("encrypt(%d) = encrypt(%d) = %d", v, w, e)
			}
			seen[e] = v
		}
	}
	// Another key, another permutation.
	d := newSeqCipher()
	same := 0
	for v := range uint64(1000) {
		if c.encrypt(v, &scratch) == d.encrypt(v, &scratch) {
			same++
		}
	}
	if same > 1 {
		t.Errorf("two random keys agree on %d of 1000 sequences, want about none", same)
	}
}
