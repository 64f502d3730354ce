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
// HMAC-SHA256 (its first 16 bytes, in hex) of the relay (relayed: the
// Request-URI's user and host, the Call-ID and the From tag) and that
// time, under a key derived from the cluster's shared nonce key.
//
// Why: the node receiving a relay trusts it (no challenge, the caller's
// From and P-Asserted-Identity kept) because it comes from a live node.
// Over UDP, the only transport nodes relay over, a source address is
// easily forged: an attacker sending from a node's IP address, blind to
// the answers, could ring anyone as anyone, and when a relay was trusted
// as a peer's, reach the gateways (toll fraud). Without the key there is
// no mark. A mark seen on the wire serves for the same call (its Call-ID
// and From tag) to the same AOR, for a minute, and a relay only rings
// the devices the receiving node holds (proxy's caller.Relay).
type relayMarks struct {
	key []byte
	now func() time.Time
}

// relayed is what a mark binds: the relay's Request-URI user (the AOR)
// and host, its Call-ID and its From tag.
type relayed struct{ aor, host, callID, fromTag string }

// newRelayMarks derives the marks' key from the cluster's nonce key, so
// that it is another key than the one nonces are signed with. A key too
// short to be a secret (none: not a cluster) makes no marks valid.
func newRelayMarks(nonceKey []byte) relayMarks {
	if len(nonceKey) < 16 {
		return relayMarks{now: time.Now}
	}
	m := hmac.New(sha256.New, nonceKey)
	m.Write([]byte("sipwarden cluster relay mark v1"))
	return relayMarks{key: m.Sum(nil), now: time.Now}
}

// sign returns the mark of r, now.
func (m relayMarks) sign(r relayed) string {
	ts := strconv.FormatInt(m.now().Unix(), 36)
	return ts + "." + m.mac(r, ts)
}

// valid reports whether v is a mark of r made within relayMarkWindow.
func (m relayMarks) valid(r relayed, v string) bool {
	if m.key == nil {
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
	if age := m.now().Sub(time.Unix(sec, 0)); age > relayMarkWindow || age < -relayMarkWindow {
		return false
	}
	return hmac.Equal([]byte(sum), []byte(m.mac(r, ts)))
}

func (m relayMarks) mac(r relayed, ts string) string {
	h := hmac.New(sha256.New, m.key)
	for _, s := range [...]string{r.aor, strings.ToLower(r.host), r.callID, r.fromTag, ts} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
