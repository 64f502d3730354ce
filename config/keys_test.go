package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadErrorsNameKeys: decoding errors name the YAML key path and the
// line, never a Go type.
func TestLoadErrorsNameKeys(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "sip:\n  listen:\n    udp: 127.0.0.1:5060\n    sctp: 127.0.0.1:5060\n",
			[]string{"sip.listen.sctp (line 4): unknown key", "sip.listen has tcp, tls, udp"}},
		{"unknown top-level key", "sipp: {}\n", []string{"sipp (line 1): unknown key; the top level has"}},
		{"bad integer", "sip:\n  max_message_bytes: lots\n", []string{`sip.max_message_bytes (line 2): invalid value "lots": want a whole number`}},
		{"bad bool", "log:\n  sip_trace: maybe\n", []string{`log.sip_trace (line 2): invalid value "maybe": want true or false`}},
		{"list for a string", "sip:\n  listen:\n    udp: [a, b]\n", []string{"sip.listen.udp (line 3): invalid value a list: want a string"}},
		{"bad duration", "auth:\n  nonce_lifetime: soon\n", []string{`auth.nonce_lifetime (line 2): invalid value "soon": invalid duration "soon"`}},
		{"scalar for a section", "sip: 5\n", []string{`sip (line 1): want a mapping of keys, not "5"`}},
		{"in a list", "proxy:\n  routes:\n    - prefix: \"1\"\n      colour: red\n", []string{"proxy.routes[0].colour (line 4): unknown key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "config.") || strings.Contains(err.Error(), "!!") {
				t.Errorf("error %q names a Go or YAML type", err)
			}
		})
	}
}

// TestExampleHasNoKeyErrors: the documented example passes the key walk.
func TestExampleHasNoKeyErrors(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkKeys(b); err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
}
