// Package config holds sipwarden's configuration: its defaults, loading from
// one YAML file plus the environment, and validation. The zero value of every
// field means its default; example.yaml documents every key.
package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Environment variables that may carry secrets instead of the file.
const (
	EnvNonceKey = "SIPWARDEN_NONCE_KEY"
	EnvAPIKey   = "SIPWARDEN_API_KEY"
)

// Config is the whole server configuration.
type Config struct {
	// DataDir holds the bbolt store, generated keys and certificates. Default "./data".
	DataDir   string    `yaml:"data_dir"`
	Log       Log       `yaml:"log"`
	SIP       SIP       `yaml:"sip"`
	Auth      Auth      `yaml:"auth"`
	Registrar Registrar `yaml:"registrar"`
	Proxy     Proxy     `yaml:"proxy"`
	JWT       JWT       `yaml:"jwt"`
	HTTP      HTTP      `yaml:"http"`
	Guard     Guard     `yaml:"guard"`
	Limits    Limits    `yaml:"limits"`
	Webhooks  Webhooks  `yaml:"webhooks"`
	Cluster   Cluster   `yaml:"cluster"`
}

// Log configures log/slog output (to stderr).
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// SIPTrace logs every SIP request received and response sent, whole,
	// with Authorization and Proxy-Authorization values redacted; only
	// while the level is debug. Default false. SIGHUP re-reads it and Level.
	SIPTrace bool `yaml:"sip_trace"`
}

// SIP configures the SIP listeners and identity.
type SIP struct {
	// Realm is the digest realm. Default: the machine's host name.
	Realm string `yaml:"realm"`
	// Domain is the SIP domain whose users are local. Default: Realm.
	// Addresses the server listens on are always accepted as a domain too.
	Domain string `yaml:"domain"`
	// Listen gives the address of each transport; "-" disables one.
	Listen Listen `yaml:"listen"`
	TLS    TLS    `yaml:"tls"`
	// WebSocket configures the upgrade requests of the ws and wss listeners.
	WebSocket WebSocket `yaml:"websocket"`
	// UDPBufferBytes sets the UDP socket receive and send buffers. Default 4194304.
	UDPBufferBytes int `yaml:"udp_buffer_bytes"`
	// MaxMessageBytes is the largest SIP message accepted, over UDP and on
	// a stream alike (a longer request is answered 513 Message Too Large
	// when its header section is whole); sipgo's read buffer per socket
	// and per TCP/TLS connection is this size (at most 65535). Default
	// 32768.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// TransactionLinger is how long a completed transaction is kept to
	// absorb retransmissions: RFC 3261's Timer D and J (UDP) and RFC 6026's
	// Timer L and M (after a 2xx to an INVITE), 32 s in the RFCs. Default
	// 5s, Kamailio's wt_timer: a retransmission comes within T2 (4 s) of
	// the answer it missed, and every second kept costs memory per call.
	TransactionLinger Duration `yaml:"transaction_linger"`
	// UserAgent is the Server/User-Agent header value. Default "sipwarden".
	UserAgent string `yaml:"user_agent"`
	// Advertise is the host put into Via and Record-Route. Default: the
	// listen address, or the first non-loopback interface address when
	// listening on 0.0.0.0.
	Advertise string `yaml:"advertise"`
}

// Listen holds one address per transport.
type Listen struct {
	// UDP address. Default "127.0.0.1:5060".
	UDP string `yaml:"udp"`
	// TCP address. Default "127.0.0.1:5060".
	TCP string `yaml:"tcp"`
	// TLS address. Default "127.0.0.1:5061".
	TLS string `yaml:"tls"`
	// WS address: SIP over WebSocket (RFC 7118), for browsers. Default
	// "127.0.0.1:5066".
	WS string `yaml:"ws"`
	// WSS address: SIP over secure WebSocket, with the certificate of
	// sip.tls. Default "127.0.0.1:7443".
	WSS string `yaml:"wss"`
}

// WebSocket configures the ws and wss listeners' upgrade requests.
type WebSocket struct {
	// Origins allowed to open a WebSocket, as browsers send them
	// ("https://phone.example.com", "http://127.0.0.1:8080"), or "*" for
	// any. Default [] : same host (the Origin's host equals the host the
	// browser connected to, ports aside), that host an IP address or one
	// of the server's names (sip.domain, the realm, sip.advertise,
	// localhost, a name of the TLS certificate: DNS rebinding). A request
	// without Origin (not a browser) is always allowed.
	Origins []string `yaml:"origins"`
	// HandshakeTimeout bounds the TLS handshake and the upgrade request,
	// from accept. Default 5s.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// MaxPendingPerIP bounds the handshakes in progress from one address
	// (an IPv6 /64); more are closed at accept. Default 16.
	MaxPendingPerIP int `yaml:"max_pending_per_ip"`
}

// TLS names the certificate of the TLS and WSS listeners.
type TLS struct {
	// CertFile and KeyFile are PEM files. Both empty: a self-signed
	// certificate is generated into DataDir on first start.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Auth configures digest authentication.
type Auth struct {
	// Algorithms offered in challenges, one header each, in this order:
	// MD5, SHA-256, SHA-512-256. Default [MD5] (baresip fails when offered
	// more than one; see README). A credential may override it.
	Algorithms []string `yaml:"algorithms"`
	// TransportAlgorithms replaces Algorithms for the requests of one
	// transport (udp, tcp, tls, ws, wss), in order; a credential's own list
	// still wins. Default for ws and wss: MD5 first, then the rest of
	// Algorithms (JsSIP and SIP.js read only the first challenge, and only
	// MD5); the others use Algorithms.
	TransportAlgorithms map[string][]string `yaml:"transport_algorithms"`
	// QOP values offered: auth, auth-int. Default [auth] (sipp picks
	// auth-int when offered both; linphone reads only the first).
	QOP []string `yaml:"qop"`
	// NonceLifetime is how long a nonce is accepted before a stale
	// challenge. Default 5m.
	NonceLifetime Duration `yaml:"nonce_lifetime"`
	// NonceKey is the HMAC key for stateless nonces, hex (at least 32 hex
	// digits); shared by every node of a cluster. Default: env
	// SIPWARDEN_NONCE_KEY, else a key generated into DataDir/nonce.key.
	NonceKey string `yaml:"nonce_key"`
	// MaxNonceCounts bounds the nonce-count replay table: the node's own
	// nonces are counted in a ring of this many slots (rounded down to a
	// power of two, 8 bytes each, allocated as used); a nonce is forgotten,
	// and its client challenged again with stale=true, once the nonce
	// issued that many challenges after it is answered. Default 1048576.
	MaxNonceCounts int `yaml:"max_nonce_counts"`
}

// Registrar configures REGISTER handling (RFC 3261 section 10.3).
type Registrar struct {
	// DefaultExpires in seconds when a REGISTER names none. Default 3600.
	DefaultExpires int `yaml:"default_expires"`
	// MinExpires in seconds; shorter requests get 423. Default 60.
	MinExpires int `yaml:"min_expires"`
	// MaxExpires in seconds; longer requests are capped. Default 7200.
	MaxExpires int `yaml:"max_expires"`
	// MaxContacts per AOR; a new device replaces the oldest binding
	// (last device wins). Default 1.
	MaxContacts int `yaml:"max_contacts"`
	// ExpiryJitterPercent lowers each granted expiry by a random 0..N
	// percent to spread re-registration storms. Default 0, at most 20.
	ExpiryJitterPercent int `yaml:"expiry_jitter_percent"`
	// BindingFlushInterval is the group-commit period of bindings to disk.
	// Default 1s.
	BindingFlushInterval Duration `yaml:"binding_flush_interval"`
	// UDPMode is "stateless" (default: REGISTERs over UDP are answered
	// without a server transaction, RFC 3261 8.2.7, which saves about 13 KB
	// per flow held for 32 s) or "stateful".
	UDPMode string `yaml:"udp_mode"`
	// StreamMode is the same choice for REGISTERs over TCP and TLS:
	// "stateless" (default: framed off the connection and answered on it
	// by the registrar's workers, without sipgo's transaction and
	// goroutine per message) or "stateful".
	StreamMode string `yaml:"stream_mode"`
}

// HTTP configures the management API listener.
type HTTP struct {
	// Listen address of the API, /healthz and /metrics. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// MetricsListen, when set, serves /metrics (and /healthz, /readyz)
	// on this address of its own instead of Listen. Default "" (on Listen).
	MetricsListen string `yaml:"metrics_listen"`
	// APIKey, when set (or env SIPWARDEN_API_KEY), is accepted as the admin
	// key and no key file is generated. At least 16 characters.
	APIKey string `yaml:"api_key"`
	// MinPasswordLength for credentials created through the API. Default 12.
	MinPasswordLength int `yaml:"min_password_length"`
	// Pprof serves Go's profiler at /debug/pprof/ next to /metrics (no API
	// key, like /metrics), which must then listen on a loopback address.
	// Default false.
	Pprof bool `yaml:"pprof"`
}

// Duration is a time.Duration written as "90s", "5m" in the file.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Load reads path (none when empty), applies the environment and the
// defaults, and validates the result.
func Load(path string) (Config, error) {
	var c Config
	var file scanned
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		if file, err = decodeScan(b, &c); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	env := c.applyEnv(os.Getenv)
	if err := c.setDefaults(); err != nil {
		return Config{}, err
	}
	if err := zeroReplaced(&c, file.zeros); err != nil {
		return Config{}, err
	}
	// Each error names where its value came from: the file's line, or the
	// environment variable that set it (it overrides the file).
	where := func(key string) string {
		if v := env[key]; v != "" {
			return "config: " + key + " (from " + v + ")"
		}
		if n := file.line(key); n > 0 {
			return fmt.Sprintf("config %s: %s (line %d)", path, key, n)
		}
		return "config: " + key
	}
	if err := c.validate(where); err != nil {
		return Config{}, err
	}
	return c, nil
}

func decode(b []byte, c *Config) error {
	_, err := decodeScan(b, c)
	return err
}

// decodeScan is decode, and returns what scanKeys found (keys.go): the
// keys set to zero and the line of each key.
func decodeScan(b []byte, c *Config) (scanned, error) {
	s, err := scanKeys(b) // keys.go: errors naming the keys
	if err != nil {
		return scanned{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // unknown keys are refused, with their line
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return scanned{}, err
	}
	return s, nil
}

// applyEnv sets the secrets the environment holds, and returns the keys
// it set, each with its variable's name.
func (c *Config) applyEnv(getenv func(string) string) map[string]string {
	set := map[string]string{}
	for _, e := range []struct {
		name, key string
		field     *string
	}{
		{EnvNonceKey, "auth.nonce_key", &c.Auth.NonceKey},
		{EnvJWTSecret, "jwt.secret", &c.JWT.Secret},
		{EnvAPIKey, "http.api_key", &c.HTTP.APIKey},
	} {
		if v := getenv(e.name); v != "" {
			*e.field = v
			set[e.key] = e.name
		}
	}
	return set
}

// Default returns the configuration used with no file.
func Default() (Config, error) {
	var c Config
	if err := c.setDefaults(); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func (c *Config) setDefaults() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.DataDir, "./data")
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	if c.SIP.Realm == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "sipwarden"
		}
		c.SIP.Realm = h
	}
	def(&c.SIP.Domain, c.SIP.Realm)
	def(&c.SIP.Listen.UDP, "127.0.0.1:5060")
	def(&c.SIP.Listen.TCP, "127.0.0.1:5060")
	def(&c.SIP.Listen.TLS, "127.0.0.1:5061")
	def(&c.SIP.Listen.WS, "127.0.0.1:5066")
	def(&c.SIP.Listen.WSS, "127.0.0.1:7443")
	if len(c.SIP.WebSocket.Origins) == 0 {
		c.SIP.WebSocket.Origins = nil
	}
	if c.SIP.WebSocket.HandshakeTimeout == 0 {
		c.SIP.WebSocket.HandshakeTimeout = Duration(5 * time.Second)
	}
	defInt(&c.SIP.WebSocket.MaxPendingPerIP, 16)
	def(&c.SIP.UserAgent, "sipwarden")
	defInt(&c.SIP.UDPBufferBytes, 4<<20)
	if c.SIP.TransactionLinger == 0 {
		c.SIP.TransactionLinger = Duration(5 * time.Second)
	}
	defInt(&c.SIP.MaxMessageBytes, 32768)
	if len(c.Auth.Algorithms) == 0 {
		c.Auth.Algorithms = []string{"MD5"}
	}
	if c.Auth.TransportAlgorithms == nil {
		c.Auth.TransportAlgorithms = map[string][]string{}
	}
	for _, tp := range []string{"ws", "wss"} {
		if len(c.Auth.TransportAlgorithms[tp]) == 0 {
			// Browsers: MD5 first (BROWSER_AND_CLUSTER_NOTES). Only
			// the algorithms that are valid and not listed yet: a bad
			// auth.algorithms entry is reported once, under its own key,
			// not again under transport_algorithms keys the file lacks.
			algs := []string{"MD5"}
			for _, a := range c.Auth.Algorithms {
				if (a == "SHA-256" || a == "SHA-512-256") && !slices.Contains(algs, a) {
					algs = append(algs, a)
				}
			}
			c.Auth.TransportAlgorithms[tp] = algs
		}
	}
	if len(c.Auth.QOP) == 0 {
		c.Auth.QOP = []string{"auth"}
	}
	if c.Auth.NonceLifetime == 0 {
		c.Auth.NonceLifetime = Duration(5 * time.Minute)
	}
	defInt(&c.Auth.MaxNonceCounts, 1<<20)
	defInt(&c.Registrar.DefaultExpires, 3600)
	defInt(&c.Registrar.MinExpires, 60)
	defInt(&c.Registrar.MaxExpires, 7200)
	defInt(&c.Registrar.MaxContacts, 1)
	def(&c.Registrar.UDPMode, "stateless")
	def(&c.Registrar.StreamMode, "stateless")
	if c.Registrar.BindingFlushInterval == 0 {
		c.Registrar.BindingFlushInterval = Duration(time.Second)
	}
	c.Proxy.setDefaults()
	c.Webhooks.setDefaults()
	c.Cluster.setDefaults() // cluster.go
	c.JWT.setDefaults()
	def(&c.HTTP.Listen, "127.0.0.1:8080")
	defInt(&c.HTTP.MinPasswordLength, 12)
	c.setGuardDefaults() // guard.go
	return nil
}

// Validate refuses values that cannot work, naming the key and the value.
func (c *Config) Validate() error {
	return c.validate(func(key string) string { return "config: " + key })
}

// validate is Validate, naming each key as where says (Load adds the
// file and the line, or the environment variable).
func (c *Config) validate(where func(key string) string) error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, fmt.Errorf("%s: invalid value %v: %s", where(key), v, why))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", quote(c.Log.Level), "want debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", quote(c.Log.Format), "want text or json")
	}
	if strings.ContainsAny(c.SIP.Realm, "\"\\\r\n") {
		bad("sip.realm", quote(c.SIP.Realm), "must not contain quotes, backslashes or line breaks")
	}
	if strings.ContainsAny(c.SIP.Domain, " \"\\\r\n;@") {
		bad("sip.domain", quote(c.SIP.Domain), "must be a host name or address")
	}
	enabled := 0
	for _, l := range []struct{ key, v string }{
		{"sip.listen.udp", c.SIP.Listen.UDP}, {"sip.listen.tcp", c.SIP.Listen.TCP}, {"sip.listen.tls", c.SIP.Listen.TLS},
		{"sip.listen.ws", c.SIP.Listen.WS}, {"sip.listen.wss", c.SIP.Listen.WSS},
	} {
		if l.v == "-" {
			continue
		}
		enabled++
		if _, err := netip.ParseAddrPort(l.v); err != nil {
			bad(l.key, quote(l.v), "want ip:port (or \"-\" to disable)")
		}
	}
	if enabled == 0 {
		bad("sip.listen", "all disabled", "enable at least one transport")
	}
	if (c.SIP.TLS.CertFile == "") != (c.SIP.TLS.KeyFile == "") {
		bad("sip.tls", "cert_file/key_file", "set both or neither")
	}
	for _, e := range streamListenerClashes(c) {
		bad(e.key, quote(e.addr), "also "+e.other+"'s address: each TCP listener needs its own")
	}
	if d := c.SIP.TransactionLinger.D(); d < time.Second || d > 32*time.Second {
		bad("sip.transaction_linger", d, "want 1s to 32s")
	}
	if c.SIP.UDPBufferBytes < 0 {
		bad("sip.udp_buffer_bytes", c.SIP.UDPBufferBytes, "must not be negative")
	}
	if c.SIP.MaxMessageBytes < 1024 || c.SIP.MaxMessageBytes > 1<<20 {
		bad("sip.max_message_bytes", c.SIP.MaxMessageBytes, "want 1024 to 1048576")
	}
	if strings.ContainsAny(c.SIP.Advertise, " \"\\<>;@\r\n") {
		bad("sip.advertise", quote(c.SIP.Advertise), "must be a host name or address")
	}
	c.Proxy.validate(bad)
	c.Webhooks.validate(bad)
	c.Cluster.validate(bad) // cluster.go
	c.JWT.validate(bad)
	if strings.ContainsAny(c.SIP.UserAgent, "\r\n") {
		bad("sip.user_agent", quote(c.SIP.UserAgent), "must not contain line breaks")
	}
	checkAlgs := func(key string, algs []string) {
		seen := map[string]bool{}
		for _, a := range algs {
			switch a {
			case "MD5", "SHA-256", "SHA-512-256":
			default:
				bad(key, quote(a), "want MD5, SHA-256 or SHA-512-256")
			}
			if seen[a] {
				bad(key, quote(a), "listed twice")
			}
			seen[a] = true
		}
	}
	checkAlgs("auth.algorithms", c.Auth.Algorithms)
	for tp, algs := range c.Auth.TransportAlgorithms {
		switch tp {
		case "udp", "tcp", "tls", "ws", "wss":
		default:
			bad("auth.transport_algorithms", quote(tp), "want udp, tcp, tls, ws or wss")
		}
		if len(algs) == 0 {
			bad("auth.transport_algorithms."+tp, "[]", "list at least one algorithm")
		}
		checkAlgs("auth.transport_algorithms."+tp, algs)
	}
	ws := c.SIP.WebSocket
	for i, o := range ws.Origins {
		if o != "*" && !validOrigin(o) {
			bad(fmt.Sprintf("sip.websocket.origins[%d]", i), quote(o), "want scheme://host[:port] with scheme http or https, or *")
		}
	}
	if d := ws.HandshakeTimeout.D(); d < 100*time.Millisecond || d > time.Minute {
		bad("sip.websocket.handshake_timeout", d, "want 100ms to 1m")
	}
	if ws.MaxPendingPerIP < 1 || ws.MaxPendingPerIP > 10000 {
		bad("sip.websocket.max_pending_per_ip", ws.MaxPendingPerIP, "want 1 to 10000")
	}
	for _, q := range c.Auth.QOP {
		if q != "auth" && q != "auth-int" {
			bad("auth.qop", quote(q), "want auth or auth-int")
		}
	}
	if c.Auth.NonceLifetime.D() < 10*time.Second || c.Auth.NonceLifetime.D() > 24*time.Hour {
		bad("auth.nonce_lifetime", c.Auth.NonceLifetime.D(), "want 10s to 24h")
	}
	if k := c.Auth.NonceKey; k != "" {
		if len(k) < 32 || strings.Trim(strings.ToLower(k), "0123456789abcdef") != "" {
			bad("auth.nonce_key", "(secret)", "want at least 32 hex digits")
		}
	}
	if n := c.Auth.MaxNonceCounts; n < 1024 || n > 1<<26 {
		bad("auth.max_nonce_counts", n, "want 1024 to 67108864")
	}
	r := c.Registrar
	if r.UDPMode != "stateless" && r.UDPMode != "stateful" {
		bad("registrar.udp_mode", quote(r.UDPMode), "want stateless or stateful")
	}
	if r.StreamMode != "stateless" && r.StreamMode != "stateful" {
		bad("registrar.stream_mode", quote(r.StreamMode), "want stateless or stateful")
	}
	if r.MinExpires < 1 {
		bad("registrar.min_expires", r.MinExpires, "want at least 1")
	}
	if r.MaxExpires < r.MinExpires {
		bad("registrar.max_expires", r.MaxExpires, "must not be below registrar.min_expires")
	}
	if r.DefaultExpires < r.MinExpires || r.DefaultExpires > r.MaxExpires {
		bad("registrar.default_expires", r.DefaultExpires, "must lie between min_expires and max_expires")
	}
	if r.MaxContacts < 1 || r.MaxContacts > 100 {
		bad("registrar.max_contacts", r.MaxContacts, "want 1 to 100")
	}
	if r.ExpiryJitterPercent < 0 || r.ExpiryJitterPercent > 20 {
		bad("registrar.expiry_jitter_percent", r.ExpiryJitterPercent, "want 0 to 20")
	}
	if d := r.BindingFlushInterval.D(); d < 10*time.Millisecond || d > time.Minute {
		bad("registrar.binding_flush_interval", d, "want 10ms to 1m")
	}
	if !validHostPort(c.HTTP.Listen) {
		bad("http.listen", quote(c.HTTP.Listen), "want host:port, the port 0 to 65535")
	}
	if m := c.HTTP.MetricsListen; m != "" {
		if _, port, err := net.SplitHostPort(m); err != nil || !validHostPort(m) {
			bad("http.metrics_listen", quote(m), "want host:port, the port 0 to 65535")
		} else if m == c.HTTP.Listen && port != "0" {
			bad("http.metrics_listen", quote(m), "must differ from http.listen (leave it empty to serve /metrics there)")
		}
	}
	if c.HTTP.Pprof {
		// The profiler has no API key (like /metrics) and its profile
		// and trace endpoints burn CPU for as long as asked: only on a
		// listener no one else reaches.
		key, addr := "http.listen", c.HTTP.Listen
		if c.HTTP.MetricsListen != "" {
			key, addr = "http.metrics_listen", c.HTTP.MetricsListen
		}
		if host, _, err := net.SplitHostPort(addr); err == nil && !loopbackHost(host) {
			bad("http.pprof", true, "serves the profiler without an API key on "+key+" "+quote(addr)+": listen on a loopback address (127.0.0.1, ::1, localhost)")
		}
	}
	if k := c.HTTP.APIKey; k != "" && len(k) < 16 {
		bad("http.api_key", "(secret)", "want at least 16 characters")
	}
	if c.HTTP.MinPasswordLength < 8 || c.HTTP.MinPasswordLength > 128 {
		bad("http.min_password_length", c.HTTP.MinPasswordLength, "want 8 to 128")
	}
	c.validateGuard(bad) // guard.go
	return errors.Join(errs...)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// validHostPort reports whether s is host:port with a port net.Listen
// takes: 0 to 65535, or a service name. A port out of range used to pass
// check-config and fail only when the server bound it.
func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	_, err = net.LookupPort("tcp", port)
	return err == nil
}

// validOrigin reports whether o is an origin as browsers send it:
// http or https, a host, an optional port, nothing else.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

// loopbackHost reports whether host (of a listen address) is loopback
// only: localhost or a loopback IP, not "" or an unspecified address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckFiles checks what the configuration names on this machine: that
// the TLS certificate and key load, naming the keys (serve said "stat
// TLS file: ..."; check-config said ok). Load does not, since a
// configuration may be checked away from the machine it is for (the
// systemd unit's sample): check-config and serve call it.
func (c *Config) CheckFiles() error {
	if c.SIP.TLS.CertFile == "" || c.SIP.TLS.KeyFile == "" {
		return nil
	}
	if _, err := tls.LoadX509KeyPair(c.SIP.TLS.CertFile, c.SIP.TLS.KeyFile); err != nil {
		return fmt.Errorf("config: sip.tls.cert_file/key_file: invalid value %s and %s: not a certificate and its key: %w",
			quote(c.SIP.TLS.CertFile), quote(c.SIP.TLS.KeyFile), err)
	}
	return nil
}

// clash is a listener whose address another one already has.
type clash struct{ key, addr, other string }

// streamListenerClashes returns the TCP listeners (sip.listen tcp, tls,
// ws and wss, http.listen, http.metrics_listen) that would bind an
// address another one binds: serve failed with "address already in use"
// after check-config said ok. Port 0 (any free port) never clashes; an
// unspecified address (0.0.0.0, ::) clashes with every address of its
// port.
func streamListenerClashes(c *Config) []clash {
	type listener struct{ key, addr string }
	var seen []listener
	var out []clash
	for _, l := range []listener{
		{"sip.listen.tcp", c.SIP.Listen.TCP}, {"sip.listen.tls", c.SIP.Listen.TLS},
		{"sip.listen.ws", c.SIP.Listen.WS}, {"sip.listen.wss", c.SIP.Listen.WSS},
		{"http.listen", c.HTTP.Listen}, {"http.metrics_listen", c.HTTP.MetricsListen},
	} {
		if l.addr == "" || l.addr == "-" {
			continue
		}
		for _, o := range seen {
			if sameBind(l.addr, o.addr) {
				out = append(out, clash{l.key, l.addr, o.key})
				break
			}
		}
		seen = append(seen, l)
	}
	return out
}

// sameBind reports whether two host:port listen addresses would bind the
// same TCP port on a shared address.
func sameBind(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	if strings.EqualFold(ha, hb) {
		return true
	}
	ia, errA := netip.ParseAddr(ha)
	ib, errB := netip.ParseAddr(hb)
	return (errA == nil && ia.IsUnspecified()) || (errB == nil && ib.IsUnspecified()) || (errA == nil && errB == nil && ia == ib)
}
