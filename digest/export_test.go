package digest

// SetNonceSequence sets the last sequence n issued (tests of the ring's
// wrap and eviction).
func SetNonceSequence(n *Nonces, seq uint64) { n.seq.Store(seq) }

// MapLen returns how many nonces c tracks in its map (not its ring).
func MapLen(c *Counts) int { return c.mapLen() }

// NonceSequence returns the last sequence n issued.
func NonceSequence(n *Nonces) uint64 { return n.seq.Load() }
