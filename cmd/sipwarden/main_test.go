package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDispatch checks what main keeps for itself (version, serve's flags)
// and that every other command reaches the CLI.
func TestDispatch(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		out, inErr string
	}{
		{[]string{"version"}, 0, "sipwarden dev", ""},
		{[]string{"serve", "--no-such-flag"}, 2, "", "usage: sipwarden serve"},
		{[]string{"help"}, 0, "credential", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{nil, 2, "", "usage: sipwarden <command>"},
		{[]string{"completion", "bash"}, 0, "complete -o default -F _sipwarden sipwarden", ""},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.inErr) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q",
				tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.inErr)
		}
	}
}
