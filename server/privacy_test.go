package server_test

import (
	"strings"
	"testing"
	"time"
)

// TestPrivacyIDHidesAssertedIdentityFromDevices: a trusted peer (a
// carrier) may assert its caller's identity, but when that caller asked
// for privacy (Privacy: id) the P-Asserted-Identity must not reach a
// user's device, which is outside the trust domain (RFC 3325 section 9.1,
// RFC 3323). Without Privacy: id the assertion may pass.
func TestPrivacyIDHidesAssertedIdentityFromDevices(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Proxy.TrustedPeers = []string{"127.0.0.97/32"}
	ts := startServer(t, cfg)
	ts.createCredential(t, "bob", pw, nil)
	bob := newRawUA(t, "udp", "127.0.0.98", ts.Addr("udp"))
	if st := bob.register("bob", pw); st != "SIP/2.0 200 OK" {
		t.Fatalf("bob registers: %q", st)
	}
	carrier := newRawUA(t, "udp", "127.0.0.97", ts.Addr("udp"))
	for _, tc := range []struct {
		privacy string
		want    bool
	}{{"Privacy: id\r\n", false}, {"Privacy: header;ID\r\n", false}, {"", true}} {
		inv := carrier.inviteMsg("carrier", randHex(8), 1, "")
		inv = strings.Replace(inv, "Content-Length: 0", "P-Asserted-Identity: <sip:+15550001111@carrier.example>\r\n"+tc.privacy+"Content-Length: 0", 1)
		if err := carrier.send(inv); err != nil {
			t.Fatal(err)
		}
		got := bob.recv(2 * time.Second)
		if !strings.HasPrefix(got, "INVITE ") {
			t.Fatalf("%q: bob got %q, want the INVITE", tc.privacy, got)
		}
		if has := strings.Contains(strings.ToLower(got), "p-asserted-identity"); has != tc.want {
			t.Errorf("%q: P-Asserted-Identity reached bob's device: %v, want %v:\n%s", tc.privacy, has, tc.want, got)
		}
	}
}
