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

func TestEnvSecrets(t *testing.T) {
	var c Config
	env := map[string]string{EnvAPIKey: "k-0123456789abcdef", EnvNonceKey: strings.Repeat("ab", 16)}
	c.applyEnv(func(k string) string { return env[k] })
	if c.HTTP.APIKey != env[EnvAPIKey] || c.Auth.NonceKey != env[EnvNonceKey] {
		t.Errorf("got %q %q, want the environment's values", c.HTTP.APIKey, c.Auth.NonceKey)
	}
}
