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
