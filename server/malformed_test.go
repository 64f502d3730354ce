package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A malformed request other than a REGISTER, sent to a running server, is
// answered 400 with a reason naming the fault over UDP and TCP, where
// sipgo's parser dropped it (UDP) or closed the connection (TCP). Over TCP
// the connection stays: a REGISTER after it on the same connection is
// answered.
func TestMalformedRequestAnswered(t *testing.T) {
	ts := startServer(t, testConfig(t, t.TempDir()))
	ts.createCredential(t, "alice", pw, nil)
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			u := newRawUA(t, tp, "127.0.0.1", ts.Addr(tp))
			for _, c := range []struct{ method, fault, want string }{
				{"OPTIONS", "CSeq: abc OPTIONS", "SIP/2.0 400 Malformed CSeq Header"},
				{"INVITE", "CSeq: 1 INVITE\r\nMax-Forwards: many", "SIP/2.0 400 Malformed Max-Forwards Header"},
				{"BYE", "CSeq: 2 BYE\r\nContact: <<<>>>", "SIP/2.0 400 Malformed Contact Header"},
				{"MESSAGE", "CSeq: 1 MESSAGE\r\nnocolon", "SIP/2.0 400 Malformed Header Line"},
			} {
				msg := fmt.Sprintf("%s sip:alice@sipwarden.test SIP/2.0\r\n"+
					"Via: SIP/2.0/%s %s;branch=z9hG4bK-%s;rport\r\n"+
					"From: <sip:bob@sipwarden.test>;tag=%s\r\nTo: <sip:alice@sipwarden.test>\r\nCall-ID: %s\r\n%s\r\nContent-Length: 0\r\n\r\n",
					c.method, strings.ToUpper(tp), u.local, randHex(8), randHex(4), randHex(8), c.fault)
				if st, raw := u.exchange(msg, 2*time.Second); st != c.want {
					t.Errorf("%s with %q: got %q, want %q\n%s", c.method, c.fault, st, c.want, raw)
				}
			}
			if st := u.register("alice", pw); st != "SIP/2.0 200 OK" {
				t.Fatalf("REGISTER on the same %s socket after the malformed requests: %q", tp, st)
			}
		})
	}
}
