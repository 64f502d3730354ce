package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaults(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "./data"},
		{"udp", c.SIP.Listen.UDP, "127.0.0.1:5060"},
		{"tcp", c.SIP.Listen.TCP, "127.0.0.1:5060"},
		{"tls", c.SIP.Listen.TLS, "127.0.0.1:5061"},
		{"ws", c.SIP.Listen.WS, "127.0.0.1:5066"},
		{"wss", c.SIP.Listen.WSS, "127.0.0.1:7443"},
		{"transport_algorithms", c.Auth.TransportAlgorithms, map[string][]string{"ws": {"MD5"}, "wss": {"MD5"}}},
		{"jwt.enabled", c.JWT.Enabled, false},
		{"anonymous_calls_per_minute", c.Proxy.AnonymousCallsPerMinute, 10},
		{"http", c.HTTP.Listen, "127.0.0.1:8080"},
		{"algorithms", c.Auth.Algorithms, []string{"MD5"}},
		{"qop", c.Auth.QOP, []string{"auth"}},
		{"max_contacts", c.Registrar.MaxContacts, 1},
		{"nonce_lifetime", c.Auth.NonceLifetime.D(), 5 * time.Minute},
		{"domain", c.SIP.Domain, c.SIP.Realm},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestExampleParsesAndEqualsDefaults(t *testing.T) {
	got, err := Load("example.yaml")
	if err != nil {
		t.Fatalf("Load(example.yaml): %v", err)
	}
	want, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("example.yaml differs from the defaults:\ngot  %+v\nwant %+v", got, want)
	}
}

// Every key of Config must be documented in example.yaml.
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(rt reflect.Type, m map[string]any, path string)
	walk = func(rt reflect.Type, m map[string]any, path string) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			v, ok := m[key]
			if !ok {
				t.Errorf("example.yaml lacks key %s%s", path, key)
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
				sub, _ := v.(map[string]any)
				walk(f.Type, sub, path+key+".")
			}
		}
	}
	walk(reflect.TypeOf(Config{}), doc, "")
}

func TestLoadRefuses(t *testing.T) {
	cases := []struct {
		name, yaml, wantKey string
	}{
		{"unknown key", "sip:\n  realmm: x\n", "realmm"},
		{"unknown top key", "nope: 1\n", "nope"},
		{"bad level", "log:\n  level: loud\n", "log.level"},
		{"bad algorithm", "auth:\n  algorithms: [SHA-1]\n", "auth.algorithms"},
		{"bad qop", "auth:\n  qop: [auth-conf]\n", "auth.qop"},
		{"bad listen", "sip:\n  listen:\n    udp: nowhere\n", "sip.listen.udp"},
		{"min above max", "registrar:\n  min_expires: 900\n  max_expires: 600\n  default_expires: 700\n", "registrar.max_expires"},
		{"bad duration", "auth:\n  nonce_lifetime: soon\n", "soon"},
		{"wrong type", "registrar:\n  max_contacts: many\n", "many"},
		{"short nonce key", "auth:\n  nonce_key: abcd\n", "auth.nonce_key"},
		{"half tls", "sip:\n  tls:\n    cert_file: a.pem\n", "sip.tls"},
		{"jitter", "registrar:\n  expiry_jitter_percent: 50\n", "registrar.expiry_jitter_percent"},
		{"cluster scheme", "cluster:\n  redis_url: http://127.0.0.1:6379\n  advertise: 127.0.0.1:5060\n", "cluster.redis_url"},
		{"cluster no advertise", "cluster:\n  redis_url: redis://127.0.0.1:6379/0\n", "cluster.advertise"},
		{"cluster bad advertise", "cluster:\n  redis_url: redis://127.0.0.1:6379/0\n  advertise: nowhere\n", "cluster.advertise"},
		{"cluster bad name", "cluster:\n  redis_url: redis://127.0.0.1:6379/0\n  advertise: 127.0.0.1:5060\n  node_name: a:b\n", "cluster.node_name"},
		{"advertise without cluster", "cluster:\n  advertise: 127.0.0.1:5060\n", "cluster.advertise"},
		{"cluster timeout", "cluster:\n  timeout: 1ns\n", "cluster.timeout"},
		{"cluster nonce counts", "cluster:\n  nonce_counts: redis\n", `cluster.nonce_counts (line 2): invalid value "redis"`},
		{"few nonce counts", "auth:\n  max_nonce_counts: 1000\n", "auth.max_nonce_counts"},
		{"huge nonce counts", "auth:\n  max_nonce_counts: 1099511627776\n", "auth.max_nonce_counts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil {
				t.Fatalf("Load accepted %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.wantKey) {
				t.Errorf("error %q does not name %q", err, c.wantKey)
			}
		})
	}
}

// TestLoadErrorsSayWhere: a value Validate refuses is named with its line
// in the file, or with the environment variable that set it (which
// overrides the file); a key the file does not set, by its name alone.
func TestLoadErrorsSayWhere(t *testing.T) {
	t.Setenv(EnvAPIKey, "")
	t.Setenv(EnvJWTSecret, "")
	cases := []struct {
		name, yaml, env, want string
	}{
		{"listener", "log:\n  level: info\nsip:\n  listen:\n    udp: nowhere\n", "",
			`c.yaml: sip.listen.udp (line 5): invalid value "nowhere"`},
		{"list element", "sip:\n  websocket:\n    origins:\n      - http://a.example\n      - ftp://b.example\n", "",
			`c.yaml: sip.websocket.origins[1] (line 5): invalid value "ftp://b.example"`},
		{"field of a list element", "proxy:\n  routes:\n    - name: a\n      prefix: \"+1\"\n      gateway: sip:192.0.2.1\n    - name: b\n", "",
			`c.yaml: proxy.routes[1] (line 6): invalid value "b": set prefix or domain`},
		{"map key", "auth:\n  transport_algorithms:\n    udp: [MD5]\n    sctp: [MD5]\n", "",
			`c.yaml: auth.transport_algorithms (line 2): invalid value "sctp"`},
		{"map value", "auth:\n  transport_algorithms:\n    udp: [MD4]\n", "",
			`c.yaml: auth.transport_algorithms.udp (line 3): invalid value "MD4"`},
		{"bad algorithm once", "auth:\n  algorithms: [MD5, md5]\n", "",
			`c.yaml: auth.algorithms (line 2): invalid value "md5"`},
		{"environment", "log:\n  level: info\n", "abcd",
			`config: auth.nonce_key (from SIPWARDEN_NONCE_KEY): invalid value (secret)`},
		{"environment over the file", "auth:\n  nonce_key: " + strings.Repeat("ab", 16) + "\n", "abcd",
			`config: auth.nonce_key (from SIPWARDEN_NONCE_KEY)`},
		{"not in the file", "registrar:\n  max_expires: 30\n", "",
			`config: registrar.default_expires: invalid value 3600`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvNonceKey, c.env)
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil {
				t.Fatalf("Load accepted %q", c.yaml)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\nwant it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "transport_algorithms.ws") && !strings.Contains(c.yaml, "transport_algorithms") {
				t.Errorf("error %q names a key the file does not set, derived from another", err)
			}
		})
	}
}

func TestEnvSecrets(t *testing.T) {
	var c Config
	env := map[string]string{EnvAPIKey: "k-0123456789abcdef", EnvNonceKey: strings.Repeat("ab", 16)}
	c.applyEnv(func(k string) string { return env[k] })
	if c.HTTP.APIKey != env[EnvAPIKey] || c.Auth.NonceKey != env[EnvNonceKey] {
		t.Errorf("got %q %q, want the environment's values", c.HTTP.APIKey, c.Auth.NonceKey)
	}
}

// The ws/wss digest policy derives from auth.algorithms: MD5 first, then
// the rest in order; an explicit entry stays as written; bad ones are
// refused naming the key.
func TestTransportAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		ws, udp []string
		err     string
	}{
		{"auth:\n  algorithms: [SHA-256, MD5]\n", []string{"MD5", "SHA-256"}, nil, ""},
		{"auth:\n  algorithms: [SHA-512-256]\n", []string{"MD5", "SHA-512-256"}, nil, ""},
		{"auth:\n  transport_algorithms: {ws: [SHA-256], udp: [SHA-256, MD5]}\n", []string{"SHA-256"}, []string{"SHA-256", "MD5"}, ""},
		{"auth:\n  transport_algorithms: {sctp: [MD5]}\n", nil, nil, "auth.transport_algorithms"},
		{"auth:\n  transport_algorithms: {ws: [MD4]}\n", nil, nil, "auth.transport_algorithms.ws"},
		{"sip:\n  websocket: {origins: [\"example.com\"]}\n", nil, nil, "sip.websocket.origins[0]"},
		{"sip:\n  listen: {ws: nowhere}\n", nil, nil, "sip.listen.ws"},
	} {
		var c Config
		err := decode([]byte(tc.yaml), &c)
		if err == nil {
			err = c.setDefaults()
		}
		if err == nil {
			err = c.Validate()
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error naming %s", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if got := c.Auth.TransportAlgorithms["ws"]; !reflect.DeepEqual(got, tc.ws) {
			t.Errorf("%q: ws: got %v, want %v", tc.yaml, got, tc.ws)
		}
		if got := c.Auth.TransportAlgorithms["udp"]; !reflect.DeepEqual(got, tc.udp) {
			t.Errorf("%q: udp: got %v, want %v", tc.yaml, got, tc.udp)
		}
	}
}

// check-config and serve refuse, naming the keys, a TLS pair that does
// not load and two TCP listeners on one address: check-config said ok,
// and serve then failed with "stat TLS file" or "address already in use".
func TestListenersAndTLSPairChecked(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"tls on tcp's address", func(c *Config) { c.SIP.Listen.TLS = c.SIP.Listen.TCP }, "sip.listen.tls: invalid value \"127.0.0.1:5060\": also sip.listen.tcp's address"},
		{"http on tcp's address", func(c *Config) { c.HTTP.Listen = "127.0.0.1:5060" }, "http.listen"},
		{"wildcard clashes", func(c *Config) { c.SIP.Listen.WS = "0.0.0.0:5061" }, "also sip.listen.tls's address"},
	} {
		c, err := Default()
		if err != nil {
			t.Fatal(err)
		}
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	// The TLS pair is checked on the machine (CheckFiles: check-config and
	// serve), not by Load: a configuration may be checked elsewhere.
	for _, f := range []string{missing, garbage} {
		c, err := Default()
		if err != nil {
			t.Fatal(err)
		}
		c.SIP.TLS.CertFile, c.SIP.TLS.KeyFile = f, f
		if err := c.Validate(); err != nil {
			t.Errorf("Validate with TLS files %s: %v, want nil", f, err)
		}
		if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "sip.tls.cert_file/key_file") {
			t.Errorf("CheckFiles with TLS files %s: %v, want an error naming the keys", f, err)
		}
	}
	// Port 0 (a free port) never clashes; udp is not a TCP listener.
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	c.SIP.Listen.TCP, c.SIP.Listen.TLS, c.SIP.Listen.WS, c.SIP.Listen.WSS, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if err := c.Validate(); err != nil {
		t.Errorf("every listener on port 0: %v", err)
	}
}

// A key set to 0 where 0 is not a value it takes is refused, naming the
// key, its line and the default: the default replaced it without a word
// (guard.ban_duration: 0s, meant as "no bans", gave 15-minute bans). A 0
// the key takes stays.
func TestExplicitZeroNotReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("guard:\n  max_failures: 0\n  ban_duration: 0s\nproxy:\n  max_calls_per_credential: 0\n")
	_, err := Load(path)
	for _, want := range []string{"guard.max_failures (line 2)", "(20)", "guard.ban_duration (line 3)", "(15m0s)", "proxy.max_calls_per_credential (line 5)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load: %v, want it to say %q", err, want)
		}
	}
	write("registrar:\n  expiry_jitter_percent: 0\nproxy:\n  max_calls_per_credential: -1\n")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("a 0 the key takes: %v", err)
	}
	if c.Registrar.ExpiryJitterPercent != 0 || c.Proxy.MaxCallsPerCredential != -1 {
		t.Errorf("loaded %d and %d, want 0 and -1", c.Registrar.ExpiryJitterPercent, c.Proxy.MaxCallsPerCredential)
	}
}
