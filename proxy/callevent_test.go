package proxy

import "testing"

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
