package server

// RelayMark is the mark a cluster node puts on a request it relays to aor
// (relayParam), under the cluster's nonce key, now: for the tests to
// send what a node sends.
func RelayMark(nonceKey []byte, aor string) string { return newRelayMarks(nonceKey).sign(aor) }
