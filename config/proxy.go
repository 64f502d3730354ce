package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/cidr"
	"github.com/sipwarden/sipwarden/sipuri"
)

// Proxy configures the stateful proxy (RFC 3261 section 16).
type Proxy struct {
	// TrustedPeers are CIDRs (carrier gateways, a PBX on a private
	// network) whose requests are not challenged. Default none.
	TrustedPeers []string `yaml:"trusted_peers"`
	// Routes send requests that are not for a local user to a gateway.
	Routes []ProxyRoute `yaml:"routes"`
	// MaxInFlight bounds concurrent proxy transactions; over it requests
	// get 503 with Retry-After. Default 10000.
	MaxInFlight int `yaml:"max_in_flight"`
	// TimerC is how long a forwarded INVITE may ring before it is
	// cancelled (RFC 3261 16.6 step 11: more than 3 minutes). Default 3m10s.
	TimerC Duration `yaml:"timer_c"`
	// MaxCallDuration forgets a call whose BYE never came. Default 12h.
	MaxCallDuration Duration `yaml:"max_call_duration"`
	// MaxCallsPerCredential caps the concurrent calls (ringing or
	// answered) one credential makes; over it an INVITE gets 503 Too Many
	// Calls For This Credential. Default 100; -1: no cap.
	MaxCallsPerCredential int `yaml:"max_calls_per_credential"`
	// MaxCallsPerSource caps the concurrent calls from one source address
	// (trusted peers and guard.exempt_cidrs excepted); over it, 503 Too
	// Many Calls From This Address. Default 5000; -1: no cap.
	MaxCallsPerSource int `yaml:"max_calls_per_source"`
	// AnonymousCallsPerMinute bounds the anonymous calls (click-to-call
	// to a connection's public_targets, over ws and wss only) one source
	// address (an IPv6 /64) may start per minute; more get 403. Default 10.
	AnonymousCallsPerMinute int `yaml:"anonymous_calls_per_minute"`
	// ChallengeMode is "stateless" (default: the first INVITE of a call,
	// which carries no credentials, gets its 407 without a server
	// transaction, and the ACK of that 407 is absorbed, on the
	// transports whose registrar mode is stateless: UDP, TCP, TLS) or
	// "stateful" (through sipgo's INVITE transaction, as before).
	ChallengeMode string `yaml:"challenge_mode"`
}

// ProxyRoute is one outbound route. A request matches when its
// Request-URI user starts with Prefix (for a local domain, or any domain
// when Domain is empty) or its host is Domain. The first match wins.
type ProxyRoute struct {
	// Name identifies the route in logs.
	Name string `yaml:"name"`
	// Prefix of the Request-URI user, e.g. "+1" or "00".
	Prefix string `yaml:"prefix"`
	// Domain of the Request-URI host, e.g. "pstn.example.net".
	Domain string `yaml:"domain"`
	// Gateway is the next hop as a SIP URI: "sip:192.0.2.10:5060;transport=tcp".
	Gateway string `yaml:"gateway"`
	// Connections lists the connection ids whose credentials may use the
	// route; empty allows every authenticated caller and trusted peers.
	Connections []string `yaml:"connections"`
}

func (p *Proxy) setDefaults() {
	if len(p.TrustedPeers) == 0 {
		p.TrustedPeers = nil // "[]" in the file is the default
	}
	if len(p.Routes) == 0 {
		p.Routes = nil
	}
	if p.MaxInFlight == 0 {
		p.MaxInFlight = 10000
	}
	if p.MaxCallsPerCredential == 0 {
		p.MaxCallsPerCredential = 100
	}
	if p.MaxCallsPerSource == 0 {
		p.MaxCallsPerSource = 5000
	}
	if p.TimerC == 0 {
		p.TimerC = Duration(190 * time.Second)
	}
	if p.MaxCallDuration == 0 {
		p.MaxCallDuration = Duration(12 * time.Hour)
	}
	if p.AnonymousCallsPerMinute == 0 {
		p.AnonymousCallsPerMinute = 10
	}
	if p.ChallengeMode == "" {
		p.ChallengeMode = "stateless"
	}
}

// TrustedPrefixes returns TrustedPeers parsed (Validate has checked them).
func (p *Proxy) TrustedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(p.TrustedPeers))
	for _, s := range p.TrustedPeers {
		if pre, err := cidr.Parse(s); err == nil {
			out = append(out, pre)
		}
	}
	return out
}

// GatewayHop splits a gateway URI into host, port and transport
// (sipuri.Hop).
func GatewayHop(uri string) (host string, port int, transport string, err error) {
	return sipuri.Hop(uri)
}

func (p *Proxy) validate(bad func(key string, v any, why string)) {
	if p.AnonymousCallsPerMinute < 1 || p.AnonymousCallsPerMinute > 100000 {
		bad("proxy.anonymous_calls_per_minute", p.AnonymousCallsPerMinute, "want 1 to 100000")
	}
	for i, s := range p.TrustedPeers {
		if _, err := cidr.Parse(s); err != nil {
			bad(fmt.Sprintf("proxy.trusted_peers[%d]", i), quote(s), "want a CIDR or an IP address")
		}
	}
	for i, r := range p.Routes {
		key := fmt.Sprintf("proxy.routes[%d]", i)
		if r.Prefix == "" && r.Domain == "" {
			bad(key, quote(r.Name), "set prefix or domain")
		}
		if strings.ContainsAny(r.Prefix+r.Domain, " \"<>;@\r\n") {
			bad(key+".prefix/domain", quote(r.Prefix+r.Domain), "must not contain spaces, quotes, <, >, ;, @ or line breaks")
		}
		if _, _, _, err := GatewayHop(r.Gateway); err != nil {
			bad(key+".gateway", quote(r.Gateway), err.Error())
		}
	}
	if p.MaxCallsPerCredential < -1 {
		bad("proxy.max_calls_per_credential", p.MaxCallsPerCredential, "want -1 (no cap) or at least 1")
	}
	if p.MaxCallsPerSource < -1 {
		bad("proxy.max_calls_per_source", p.MaxCallsPerSource, "want -1 (no cap) or at least 1")
	}
	if p.ChallengeMode != "stateless" && p.ChallengeMode != "stateful" {
		bad("proxy.challenge_mode", quote(p.ChallengeMode), "want stateless or stateful")
	}
	if p.MaxInFlight < 1 {
		bad("proxy.max_in_flight", p.MaxInFlight, "want at least 1")
	}
	if p.TimerC.D() < time.Second {
		bad("proxy.timer_c", p.TimerC.D(), "want at least 1s (RFC 3261 asks for more than 3m)")
	}
	if p.MaxCallDuration.D() < time.Minute {
		bad("proxy.max_call_duration", p.MaxCallDuration.D(), "want at least 1m")
	}
}
