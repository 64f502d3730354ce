package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMetricsListenAndTrace(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"metrics listener of its own", "http:\n  metrics_listen: 127.0.0.1:9100\n", ""},
		{"trace on", "log:\n  level: debug\n  sip_trace: true\n", ""},
		{"not host:port", "http:\n  metrics_listen: 9100\n", "http.metrics_listen"},
		{"same as the API", "http:\n  listen: 127.0.0.1:8080\n  metrics_listen: 127.0.0.1:8080\n", "http.metrics_listen"},
		{"trace not a bool", "log:\n  sip_trace: sometimes\n", "sometimes"},
		// A port out of range passed check-config and failed only at bind.
		{"listen port out of range", "http:\n  listen: 127.0.0.1:99999\n", "http.listen"},
		{"listen port negative", "http:\n  listen: 127.0.0.1:-1\n", "http.listen"},
		{"listen port not a service", "http:\n  listen: 127.0.0.1:nosuchservice\n", "http.listen"},
		{"metrics port out of range", "http:\n  metrics_listen: 127.0.0.1:65536\n", "http.metrics_listen"},
		{"any port", "http:\n  listen: 127.0.0.1:0\n", ""},
		// The profiler has no API key: only on a loopback listener.
		{"pprof on loopback", "http:\n  listen: 127.0.0.1:8080\n  pprof: true\n", ""},
		{"pprof on localhost", "http:\n  listen: localhost:8080\n  pprof: true\n", ""},
		{"pprof on a loopback metrics listener", "http:\n  listen: 0.0.0.0:8080\n  metrics_listen: '[::1]:9100'\n  pprof: true\n", ""},
		{"pprof on every address", "http:\n  listen: 0.0.0.0:8080\n  pprof: true\n", "http.pprof"},
		{"pprof on a public metrics listener", "http:\n  metrics_listen: 192.0.2.1:9100\n  pprof: true\n", "http.pprof"},
		{"pprof on no host", "http:\n  listen: ':8080'\n  pprof: true\n", "http.pprof"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Load refused %q: %v", c.yaml, err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("Load accepted %q", c.yaml)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("error %q does not name %q", err, c.wantErr)
			}
		})
	}
}
