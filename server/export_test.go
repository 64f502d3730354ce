package server

import "github.com/emiago/sipgo/sip"

// RelayMark is the mark a cluster node puts on its relay of req to aor at
// domain (relayParam), under the cluster's nonce key, now: for the tests
// to send what a node sends.
func RelayMark(nonceKey []byte, req *sip.Request, aor, domain string) string {
	return newRelayMarks(nonceKey).sign(relayOf(req, aor, domain))
}
