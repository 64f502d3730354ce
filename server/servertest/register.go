package servertest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/digest"
)

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// Register runs one MD5 digest REGISTER flow (challenge, answer) for user
// over UDP from the loopback address from (such as "127.0.0.7", so that a
// test can tell sources apart) to the node's UDP listener, asking for
// expires seconds. It returns the final status line, "" when no answer
// came within 2 s.
func (s *Server) Register(t testing.TB, from, user, password string, expires int) string {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, net.UDPAddrFromAddrPort(mustAddrPort(t, s.Addr("udp"))))
	if err != nil {
		t.Fatalf("dial udp from %s: %v", from, err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	callID := randHex(8)
	exchange := func(cseq int, auth string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\n", Realm, local, randHex(8))
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%s\r\nTo: <sip:%s@%s>\r\n", user, Realm, randHex(4), user, Realm)
		fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d REGISTER\r\nContact: <sip:%s@%s>\r\nExpires: %d\r\nUser-Agent: servertest\r\n", callID, cseq, user, local, expires)
		if auth != "" {
			fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte(b.String())); err != nil {
			return ""
		}
		buf := make([]byte, 65536)
		for { // skip provisional answers
			n, err := c.Read(buf)
			if err != nil {
				return ""
			}
			if msg := string(buf[:n]); !strings.HasPrefix(msg, "SIP/2.0 1") {
				return msg
			}
		}
	}
	raw := exchange(1, "")
	if !strings.HasPrefix(raw, "SIP/2.0 401") {
		return StatusLine(raw)
	}
	m := nonceRE.FindStringSubmatch(raw)
	if m == nil {
		return "no nonce in " + StatusLine(raw)
	}
	return StatusLine(exchange(2, DigestAuth(user, password, m[1])))
}

// DigestAuth is the MD5 Authorization value answering nonce for user on a
// node Config configured.
func DigestAuth(user, password, nonce string) string {
	c := digest.Credentials{Username: user, Realm: Realm, Nonce: nonce, URI: "sip:" + Realm,
		Algorithm: "MD5", QOP: "auth", CNonce: randHex(4), NC: "00000001", NonceCount: 1}
	resp := digest.Response(c, digest.MD5, "REGISTER", digest.HA1(digest.MD5, user, Realm, password), nil)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"`,
		user, Realm, nonce, c.URI, resp, c.CNonce)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mustAddrPort(t testing.TB, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return ap
}
