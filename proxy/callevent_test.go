package proxy

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestFailureCause: a failed INVITE's status names its webhook cause; a
// 480 (no device, or do-not-disturb) is not a timeout.
func TestFailureCause(t *testing.T) {
	for status, want := range map[int]string{
		487: CauseCancel, 486: CauseBusy, 600: CauseBusy, 408: CauseTimeout,
		480: CauseUnavailable, 404: CauseNotFound, 484: CauseNotFound, 604: CauseNotFound,
		403: CauseRejected, 503: CauseRejected, 603: CauseRejected,
	} {
		if got := failureCause(status); got != want {
			t.Errorf("failureCause(%d) = %q, want %q", status, got, want)
		}
	}
}

// TestAssertIdentity: the identity asserted to a gateway or PBX is the
// From's user, a number in E.164 with user=phone, or a tel: From's
// number as a tel: URI (none was asserted: a tel: URI has no user).
func TestAssertIdentity(t *testing.T) {
	for from, want := range map[string]string{
		"<sip:alice@sipwarden.test>":  "<sip:alice@sipwarden.test>",
		"<sip:15551234567@sw.test>":   "<sip:+15551234567@sw.test;user=phone>",
		"<tel:+1-555-123-4567>":       "<tel:+15551234567>",
		"<tel:+1-555-123-4567;ext=1>": "<tel:+15551234567>",
		"<tel:abc>":                   "",
	} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "x"})
		var u sip.Uri
		if err := sip.ParseUri(strings.Trim(from, "<>"), &u); err != nil {
			t.Fatal(err)
		}
		req.AppendHeader(&sip.FromHeader{Address: u, Params: sip.NewParams()})
		assertIdentity(req)
		got := ""
		if h := req.GetHeader("P-Asserted-Identity"); h != nil {
			got = h.Value()
		}
		if got != want {
			t.Errorf("From %s: P-Asserted-Identity %q, want %q", from, got, want)
		}
	}
}
