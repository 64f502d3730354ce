package digest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MinNonceKeySize is the shortest HMAC key NewNonces accepts, in bytes.
const MinNonceKeySize = 16

// MaxNonceClockSkew is how far in the future a nonce's issue time may be
// (a node of the cluster whose clock is ahead issued it) and still be valid.
const MaxNonceClockSkew = time.Minute

// Nonce layout, before base64url encoding (RFC 4648 section 5, no padding):
//
//	version (1) | issued, Unix ns, big-endian (8) | epoch (4) | sequence (5) | HMAC-SHA256 of the first 18 bytes, truncated (18)
//
// 36 bytes make 48 characters with no partial group, so each nonce has
// exactly one spelling. The sequence numbers the nonces of one Nonces, from
// a random start, modulo 2^40, and is written through a keyed permutation
// (seqCipher), so that it does not show how many challenges were issued
// between two nonces: it keeps the nonces of one process distinct,
// those of several nodes issued in the same nanosecond distinct too (their
// starts are random), which the per-nonce counts rely on, and it is where a
// Counts made by NewCountsFor keeps each nonce's count (a ring slot, not a
// map entry). The 144-bit MAC makes nonces unforgeable without the key. (The
// version 1 nonces of earlier releases carried 5 random bytes there: they
// read as a sequence like any other.)
// The epoch names the Nonces that issued the nonce: a nonce of another
// epoch is stale. The nonce counts live in memory (Counts), so after a
// restart a nonce issued before it has no count, and an answer captured
// then (nc=00000001) would be accepted again: a new epoch per process
// makes every such nonce stale instead, and the client simply answers a
// fresh challenge (RFC 7616 section 3.3).
const (
	nonceVersion = 1
	nonceMsgLen  = 1 + 8 + 4 + 5
	nonceEpoch   = 9  // offset of the epoch
	nonceSeq     = 13 // offset of the sequence
	nonceSeqBits = 40
	nonceMACLen  = 18
	nonceRawLen  = nonceMsgLen + nonceMACLen
	nonceLen     = nonceRawLen / 3 * 4
)

var nonceEncoding = base64.RawURLEncoding.Strict()

// NonceStatus is the verdict of Nonces.Check. The zero value is NonceInvalid.
type NonceStatus uint8

// Nonce verdicts.
const (
	// NonceInvalid: not a nonce issued with this key (forged, garbled, from
	// another cluster or another key). Challenge again, without stale.
	NonceInvalid NonceStatus = iota
	// NonceValid: issued with this key and not expired.
	NonceValid
	// NonceStale: issued with this key but expired (or issued too far in
	// the future). A correct response to it gets a new challenge with
	// stale=true (RFC 7616 section 3.3).
	NonceStale
)

// String returns "invalid", "valid" or "stale".
func (s NonceStatus) String() string {
	switch s {
	case NonceInvalid:
		return "invalid"
	case NonceValid:
		return "valid"
	case NonceStale:
		return "stale"
	}
	return "NonceStatus(" + strconv.Itoa(int(s)) + ")"
}

// Nonces issues and checks stateless nonces: an issue time, an epoch, a
// sequence number (hidden) and an HMAC-SHA256 over them, so that every node sharing the key can check a
// nonce any of them issued, with no shared state. It is safe for concurrent
// use.
type Nonces struct {
	key      []byte
	epoch    [4]byte
	lifetime time.Duration
	now      func() time.Time
	seq      atomic.Uint64 // the last sequence issued (its low 40 bits)
	seqc     seqCipher     // how a sequence is written in a nonce
	ownEpoch bool          // NewNonces: no other process has the epoch
	macs     sync.Pool     // of *nonceMAC
}

// nonceMAC is a keyed HMAC with scratch space, pooled so that New and Check
// do not allocate.
type nonceMAC struct {
	h   hash.Hash
	raw [nonceRawLen]byte
	sum [sha256.Size]byte
	blk [32]byte // seqCipher's scratch
}

// NewNonces returns a Nonces that signs with key (at least MinNonceKeySize
// bytes, copied) and accepts a nonce for lifetime after it was issued. now
// is the clock; nil means time.Now. Its epoch is random: nonces of another
// Nonces (an earlier process) are stale, even with the same key.
func NewNonces(key []byte, lifetime time.Duration, now func() time.Time) (*Nonces, error) {
	var epoch [4]byte
	rand.Read(epoch[:]) // never fails (crypto/rand, Go 1.24)
	n, err := NewNoncesEpoch(key, epoch, lifetime, now)
	if err != nil {
		return nil, err
	}
	n.ownEpoch = true
	return n, nil
}

// NewNoncesEpoch is NewNonces with a given epoch: the nodes of a cluster,
// which share the nonce key and the nonce counts, share the epoch too, so
// that each accepts the others' nonces; a new epoch makes every nonce
// issued before it stale.
func NewNoncesEpoch(key []byte, epoch [4]byte, lifetime time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < MinNonceKeySize {
		return nil, fmt.Errorf("digest: nonce key has %d bytes, want at least %d", len(key), MinNonceKeySize)
	}
	if lifetime <= 0 {
		return nil, errors.New("digest: nonce lifetime must be positive")
	}
	if now == nil {
		now = time.Now
	}
	n := &Nonces{key: append([]byte(nil), key...), epoch: epoch, lifetime: lifetime, now: now, seqc: newSeqCipher()}
	var start [8]byte
	rand.Read(start[:]) // never fails (crypto/rand, Go 1.24)
	n.seq.Store(binary.BigEndian.Uint64(start[:]))
	n.macs.New = func() any { return &nonceMAC{h: hmac.New(sha256.New, n.key)} }
	return n, nil
}

// Lifetime returns how long a nonce stays valid after it is issued.
func (n *Nonces) Lifetime() time.Duration { return n.lifetime }

// New returns a fresh nonce: 48 characters of the base64url alphabet, safe
// in a quoted string and in a token.
func (n *Nonces) New() string {
	m := n.macs.Get().(*nonceMAC)
	defer n.macs.Put(m)
	m.raw[0] = nonceVersion
	binary.BigEndian.PutUint64(m.raw[1:9], uint64(n.now().UnixNano()))
	copy(m.raw[nonceEpoch:], n.epoch[:])
	putSeq(m.raw[nonceSeq:nonceMsgLen], n.seqc.encrypt(n.seq.Add(1), &m.blk))
	copy(m.raw[nonceMsgLen:], m.mac())
	var out [nonceLen]byte
	nonceEncoding.Encode(out[:], m.raw[:])
	return string(out[:])
}

// Check reports whether nonce was issued with this key and is still valid,
// and when it expires (the zero time for NonceInvalid). The MAC is compared
// in constant time.
func (n *Nonces) Check(nonce string) (NonceStatus, time.Time) {
	if len(nonce) != nonceLen {
		return NonceInvalid, time.Time{}
	}
	m := n.macs.Get().(*nonceMAC)
	defer n.macs.Put(m)
	var src [nonceLen]byte
	copy(src[:], nonce)
	if k, err := nonceEncoding.Decode(m.raw[:], src[:]); err != nil || k != nonceRawLen || m.raw[0] != nonceVersion {
		return NonceInvalid, time.Time{}
	}
	if !hmac.Equal(m.mac(), m.raw[nonceMsgLen:]) {
		return NonceInvalid, time.Time{}
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(m.raw[1:9])))
	expires := issued.Add(n.lifetime)
	now := n.now()
	epoch := [4]byte(m.raw[nonceEpoch:])
	if epoch != n.epoch || now.After(expires) || issued.After(now.Add(MaxNonceClockSkew)) {
		return NonceStale, expires
	}
	return NonceValid, expires
}

// mac returns the truncated HMAC of m.raw's message part, in m.sum.
func (m *nonceMAC) mac() []byte {
	m.h.Reset()
	m.h.Write(m.raw[:nonceMsgLen])
	return m.h.Sum(m.sum[:0])[:nonceMACLen]
}

// putSeq writes the low 40 bits of seq into b's 5 bytes, big-endian.
func putSeq(b []byte, seq uint64) {
	_ = b[4]
	b[0], b[1], b[2], b[3], b[4] = byte(seq>>32), byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
}

// ownSeq returns the sequence of a nonce n issued (its epoch is n's), without
// checking its MAC: call it on a nonce Check found valid. It decodes only
// the 12 characters that hold the epoch and the sequence.
func (n *Nonces) ownSeq(nonce string) (uint64, bool) {
	// Raw bytes 9 to 17 (epoch and sequence) are characters 12 to 23:
	// three whole groups of the encoding.
	const from, to = nonceEpoch / 3 * 4, nonceMsgLen / 3 * 4
	if len(nonce) != nonceLen || nonce[0] != 'A' {
		return 0, false // version 1 encodes as an 'A' (6 zero bits) first
	}
	var raw [(to - from) / 4 * 3]byte
	var src [to - from]byte
	copy(src[:], nonce[from:to])
	if k, err := nonceEncoding.Decode(raw[:], src[:]); err != nil || k != len(raw) {
		return 0, false
	}
	if [4]byte(raw[:4]) != n.epoch {
		return 0, false
	}
	b := raw[4:9]
	m := n.macs.Get().(*nonceMAC)
	defer n.macs.Put(m)
	return n.seqc.decrypt(uint64(b[0])<<32|uint64(b[1])<<24|uint64(b[2])<<16|uint64(b[3])<<8|uint64(b[4]), &m.blk), true
}

// NonceEpoch returns the epoch a well-formed nonce names, without checking
// its MAC: call it on a nonce Check found valid. A cluster's nonce counts
// use it to tell which epoch the count belongs to.
func NonceEpoch(nonce string) (epoch [4]byte, ok bool) {
	if len(nonce) != nonceLen {
		return epoch, false
	}
	var src [nonceLen]byte
	var raw [nonceRawLen]byte
	copy(src[:], nonce)
	if k, err := nonceEncoding.Decode(raw[:], src[:]); err != nil || k != nonceRawLen || raw[0] != nonceVersion {
		return epoch, false
	}
	return [4]byte(raw[nonceEpoch:]), true
}
