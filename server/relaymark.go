package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// relayMarkWindow bounds the age (and the clock difference between nodes)
// of a relay mark that is still taken.
const relayMarkWindow = time.Minute

// relayMarks signs and checks the value of relayParam, which a node puts
// on the Request-URI of a request it relays to the node holding the
// callee's connection: "<unix seconds, base 36>.<MAC>", the MAC an
// HMAC-SHA256 of the AOR and that time (its first 16 bytes, in hex) under
// a key derived from the cluster's shared nonce key.
//
// Why: the node receiving a relay trusts it (no challenge, the caller's
// From and P-Asserted-Identity kept, proxy.routes open) because it comes
// from a live node. Over UDP, the only transport nodes relay over, a
// source address is easily forged: an attacker sending from a node's IP
// address, blind to the answers, could place calls as anyone, to
// premium-rate numbers through the gateways. Without the key there is no
// mark; a mark seen on the wire serves for its AOR only, for a minute.
type relayMarks struct {
	key []byte
	now func() time.Time
}

// newRelayMarks derives the marks' key from the cluster's nonce key, so
// that it is another key than the one nonces are signed with.
func newRelayMarks(nonceKey []byte) relayMarks {
	m := hmac.New(sha256.New, nonceKey)
	m.Write([]byte("sipwarden cluster relay mark v1"))
	return relayMarks{key: m.Sum(nil), now: time.Now}
}

// sign returns the mark of a relay to aor, now.
func (r relayMarks) sign(aor string) string {
	ts := strconv.FormatInt(r.now().Unix(), 36)
	return ts + "." + r.mac(aor, ts)
}

// valid reports whether v is a mark of aor made within relayMarkWindow.
func (r relayMarks) valid(aor, v string) bool {
	if r.key == nil {
		return false
	}
	ts, sum, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(ts, 36, 64)
	if err != nil {
		return false
	}
	if age := r.now().Sub(time.Unix(sec, 0)); age > relayMarkWindow || age < -relayMarkWindow {
		return false
	}
	return hmac.Equal([]byte(sum), []byte(r.mac(aor, ts)))
}

func (r relayMarks) mac(aor, ts string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(aor))
	m.Write([]byte{0})
	m.Write([]byte(ts))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
