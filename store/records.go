package store

import "time"

// Connection groups credentials, as a trunk or "credential connection" does on
// hosted platforms. A default connection (ID DefaultConnectionID) always exists.
type Connection struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// AllowedCIDRs, when not empty, are the only addresses the
	// connection's credentials authenticate from: canonical CIDRs such as
	// "192.0.2.0/24" (the API validates them). Empty: any address.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
	// PublicTargets are the users (SIP usernames) and numbers a caller
	// without any credential may call over ws/wss (anonymous
	// click-to-call); usernames must be the connection's own credentials'.
	// Empty: none.
	PublicTargets []string `json:"public_targets,omitempty"`
	// Kind is ConnectionCredential (its credentials authenticate, from
	// AllowedCIDRs when set) or ConnectionIP (a carrier or PBX
	// authenticated by its source address alone: AllowedCIDRs are its
	// addresses, never challenged, exempt from bans). Empty reads as
	// ConnectionCredential.
	Kind string `json:"kind"`
	// PBXURI is where calls to the connection's numbers that are not
	// assigned to one of its credentials go: a sip: URI of its PBX
	// (host, port, transport). Empty: such numbers are unreachable (480).
	PBXURI string `json:"pbx_uri,omitempty"`
	// CallerIDPolicy says which From users its callers may present:
	// CallerIDUsername (the credential's username or a number assigned to
	// the credential; the default), CallerIDConnectionNumbers (also any
	// number assigned to the connection) or CallerIDAny.
	CallerIDPolicy string `json:"caller_id_policy"`
	// SIPURICallingPreference decides which calls by SIP URI (to a
	// username rather than an assigned number) reach its users:
	// URICallingDisabled, URICallingInternal (callers authenticated by a
	// credential of this server) or URICallingUnrestricted (the default).
	SIPURICallingPreference string `json:"sip_uri_calling_preference"`
	// MaxCalls caps the connection's concurrent calls, made by its
	// callers or made to its users and numbers;
	// MaxRegistrations the registered contacts of its credentials. 0: no
	// cap.
	MaxCalls         int `json:"max_calls,omitempty"`
	MaxRegistrations int `json:"max_registrations,omitempty"`
	// OutboundRoutes send its callers' calls that are not for a local
	// user or number to gateways: the longest matching prefix wins, its
	// gateways are tried in order (failover on 503, 408, no answer).
	// They come before proxy.routes.
	OutboundRoutes []OutboundRoute `json:"outbound_routes,omitempty"`
	// GatewayUsername and GatewayPassword answer a gateway's digest
	// challenge (401/407). The password is kept as given: the gateway's
	// realm is known only from its challenge. The API never shows it.
	GatewayUsername string `json:"gateway_username,omitempty"`
	GatewayPassword string `json:"gateway_password,omitempty"`
	// Webhooks (Telnyx's field names): events of its registrations and
	// calls are posted to WebhookEventURL, else WebhookEventFailoverURL,
	// each attempt bounded by WebhookTimeoutSecs (0: 10), signed with
	// WebhookSecret (shown once, when it is made).
	WebhookEventURL         string `json:"webhook_event_url,omitempty"`
	WebhookEventFailoverURL string `json:"webhook_event_failover_url,omitempty"`
	WebhookTimeoutSecs      int    `json:"webhook_timeout_secs,omitempty"`
	WebhookSecret           string `json:"webhook_secret,omitempty"`
}

// OutboundRoute is one prefix route of a connection.
type OutboundRoute struct {
	// Prefix of the Request-URI user, e.g. "+1"; "" matches every user.
	Prefix string `json:"prefix"`
	// Gateways are sip:/sips: URIs, tried in order.
	Gateways []string `json:"gateways"`
}

// Connection kinds, Connection.Kind.
const (
	ConnectionCredential = "credential"
	ConnectionIP         = "ip"
)

// Caller ID policies, Connection.CallerIDPolicy.
const (
	CallerIDUsername          = "username"
	CallerIDConnectionNumbers = "connection_numbers"
	CallerIDAny               = "any"
)

// SIP URI calling preferences, Connection.SIPURICallingPreference
// (Telnyx's names).
const (
	URICallingDisabled     = "disabled"
	URICallingInternal     = "internal"
	URICallingUnrestricted = "unrestricted"
)

// Number is a telephone number (a DID) assigned to a connection, and
// optionally to one of its credentials: calls to it go to that
// credential's registered devices, else to the connection's PBXURI.
type Number struct {
	// Number is the E.164 form ("+15551234567"), also its ID; or a
	// pattern, an E.164 prefix and "*" ("+1555123*"), matching the numbers
	// that have no assignment of their own.
	Number       string `json:"number"`
	ConnectionID string `json:"connection_id"`
	// CredentialID is empty when the number belongs to the connection
	// alone.
	CredentialID string    `json:"credential_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// DefaultConnectionID names the connection created when the store is first opened.
const DefaultConnectionID = "default"

// Credential is a SIP username with its digest secrets. The password itself is
// never stored: only H(username:realm:password) per digest algorithm.
type Credential struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	Username     string `json:"username"`
	Name         string `json:"name,omitempty"`
	Tag          string `json:"tag,omitempty"`
	Enabled      bool   `json:"enabled"`
	// ExpiresAt is the zero time when the credential never expires.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Realm is the digest realm the HA1 values were computed for.
	Realm string `json:"realm"`
	// HA1 maps a digest algorithm name ("MD5", "SHA-256", "SHA-512-256") to
	// the lowercase hex HA1 for Realm. Never exposed by the API.
	HA1 map[string]string `json:"ha1"`
	// Algorithms, when not empty, overrides the server-wide list of digest
	// algorithms offered in challenges to this credential, in order.
	Algorithms []string  `json:"algorithms,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// TokensNotBefore revokes every token issued for the credential before
	// it (revoke_tokens, a password change). Zero: none revoked.
	TokensNotBefore time.Time `json:"tokens_not_before,omitzero"`
}

// Expired reports whether the credential has an expiry that is not after now.
func (c Credential) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// Binding is one registered contact of an address-of-record (RFC 3261 10.3).
type Binding struct {
	ID           string `json:"id"`
	AOR          string `json:"aor"` // the SIP username the binding belongs to
	CredentialID string `json:"credential_id"`
	Contact      string `json:"contact"` // Contact URI as the device sent it
	// Source is the ip:port the REGISTER came from and Transport its
	// transport ("udp", "tcp", "tls"): the device's own flow, used to reach it
	// through NAT or over the connection it keeps open.
	Source    string `json:"source"`
	Transport string `json:"transport"`
	// LocalAddr is the listener address the REGISTER arrived on.
	LocalAddr    string    `json:"local_addr,omitempty"`
	CallID       string    `json:"call_id"`
	CSeq         uint32    `json:"cseq"`
	Expires      time.Time `json:"expires"`
	UserAgent    string    `json:"user_agent,omitempty"`
	InstanceID   string    `json:"instance_id,omitempty"`
	RegID        string    `json:"reg_id,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// TokenIssuedAt is, for a binding last registered with a Bearer token
	// (RFC 8898), the token's iat (TokenIssuedUnknown() for a token
	// without one); zero for one registered with a password. Revoking the
	// credential's tokens removes the bindings whose token it revokes.
	TokenIssuedAt time.Time `json:"token_issued_at,omitzero"`
}

// TokenIssuedUnknown returns Binding.TokenIssuedAt for a token without an
// iat: before every revocation, as the token itself is (auth refuses it
// once any is made).
func TokenIssuedUnknown() time.Time { return time.Unix(1, 0).UTC() }

// RevokedBy reports whether the revocation of tokens issued before
// notBefore ends b (a binding registered with such a token).
func (b *Binding) RevokedBy(notBefore time.Time) bool {
	return !b.TokenIssuedAt.IsZero() && !notBefore.IsZero() && b.TokenIssuedAt.Before(notBefore)
}

// APIKey is a management API key. Only a SHA-256 hash of its secret is kept.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	// Scope is ScopeAdmin or ScopeRead; CreateAPIKey stores "" as
	// ScopeAdmin.
	Scope string `json:"scope"`
}

// API key scopes.
const (
	// ScopeAdmin may do everything.
	ScopeAdmin = "admin"
	// ScopeRead may only read, and not what holds secrets (backups and
	// exports hold HA1s).
	ScopeRead = "read"
)
