package digest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
)

// seqCipher is a keyed permutation of 40-bit numbers: a Feistel network on
// 20-bit halves whose round function is AES-128 under a random key, with
// ten rounds as NIST's FF1 format-preserving cipher has (SP 800-38G; four
// would do for large halves, Luby and Rackoff, but the halves are small).
// A nonce carries its sequence number through it, so that the nonces a
// peer collects do not show how many challenges the server issued in
// between (its traffic), while the Counts' ring still finds the sequence.
// It hides a count; it is not what keeps nonces unforgeable (the MAC is).
type seqCipher struct{ b cipher.Block }

const (
	seqHalfBits = nonceSeqBits / 2
	seqHalfMask = 1<<seqHalfBits - 1
	seqMask     = 1<<nonceSeqBits - 1
	seqRounds   = 10
)

func newSeqCipher() seqCipher {
	var key [16]byte
	rand.Read(key[:]) // never fails (crypto/rand, Go 1.24)
	b, err := aes.NewCipher(key[:])
	if err != nil {
		panic("digest: AES-128 with a 16-byte key: " + err.Error()) // cannot happen
	}
	return seqCipher{b}
}

// round is the round function: 20 bits of AES(key, i || x). scratch keeps
// the blocks off the heap (they would escape through the interface).
func (c seqCipher) round(i byte, x uint32, scratch *[32]byte) uint32 {
	in, out := scratch[:16], scratch[16:]
	clear(in)
	in[0], in[1], in[2], in[3] = i, byte(x>>16), byte(x>>8), byte(x)
	c.b.Encrypt(out, in)
	return (uint32(out[0])<<16 | uint32(out[1])<<8 | uint32(out[2])) & seqHalfMask
}

// encrypt permutes the low 40 bits of v.
func (c seqCipher) encrypt(v uint64, scratch *[32]byte) uint64 {
	l, r := uint32(v>>seqHalfBits)&seqHalfMask, uint32(v)&seqHalfMask
	for i := range byte(seqRounds) {
		l, r = r, l^c.round(i, r, scratch)
	}
	return uint64(l)<<seqHalfBits | uint64(r)
}

// decrypt is encrypt's inverse.
func (c seqCipher) decrypt(v uint64, scratch *[32]byte) uint64 {
	l, r := uint32(v>>seqHalfBits)&seqHalfMask, uint32(v)&seqHalfMask
	for i := byte(seqRounds); i > 0; i-- {
		l, r = r^c.round(i-1, l, scratch), l
	}
	return uint64(l)<<seqHalfBits | uint64(r)
}
