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

// Flipping any one bit of a sequence flips each bit of its image about
// half the time (a Feistel network of one or two rounds does not: half of
// its output follows the input bit for bit).
func TestSeqCipherAvalanche(t *testing.T) {
	c := newSeqCipher()
	var scratch [32]byte
	const trials = 200
	for in := range nonceSeqBits {
		var flips [nonceSeqBits]int
		for k := range uint64(trials) {
			v := (k*0x9e3779b97f4a7c15 + uint64(in)) & seqMask
			d := c.encrypt(v, &scratch) ^ c.encrypt(v^1<<in, &scratch)
			for out := range nonceSeqBits {
				flips[out] += int(d >> out & 1)
			}
		}
		for out, f := range flips {
			if f < trials/4 || f > trials*3/4 {
				t.Fatalf("input bit %d flipped output bit %d in %d of %d trials, want about half", in, out, f, trials)
			}
		}
	}
}
