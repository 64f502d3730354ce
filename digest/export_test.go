package digest

// SetNonceSequence sets the last sequence n issued (tests of the ring's
// wrap and eviction).
func SetNonceSequence(n *Nonces, seq uint64) { n.seq.Store(seq) }
