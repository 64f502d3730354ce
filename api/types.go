package api

import (
	"encoding/json"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// Connection is a connection (trunk) as the API shows it.
type Connection struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
	// AllowedCIDRs are the only addresses the connection's credentials
	// authenticate from; empty: any.
	AllowedCIDRs []string `json:"allowed_cidrs"`
	// PublicTargets are the users and numbers a caller without any
	// credential may call over ws/wss (anonymous click-to-call); empty:
	// none.
	PublicTargets []string `json:"public_targets"`
	// Kind is "credential" (its credentials authenticate) or "ip"
	// (authenticated by its source address, AllowedCIDRs).
	Kind string `json:"kind"`
	// PBXURI is where calls to its numbers without a credential go.
	PBXURI string `json:"pbx_uri"`
	// CallerIDPolicy: "username", "connection_numbers" or "any".
	CallerIDPolicy string `json:"caller_id_policy"`
	// SIPURICallingPreference: "disabled", "internal" or "unrestricted".
	SIPURICallingPreference string `json:"sip_uri_calling_preference"`
	// MaxCalls and MaxRegistrations: 0 is no limit.
	MaxCalls         int `json:"max_calls"`
	MaxRegistrations int `json:"max_registrations"`
	// OutboundRoutes: its own gateways by prefix, with failover.
	OutboundRoutes []OutboundRoute `json:"outbound_routes"`
	// GatewayUsername answers gateways' challenges; the password is
	// write-only: GatewayPasswordSet tells whether one is stored.
	GatewayUsername    string `json:"gateway_username"`
	GatewayPasswordSet bool   `json:"gateway_password_set"`
	// Webhooks (Telnyx's names). WebhookSecret is in the answer that made
	// it only (creating the connection with a URL, or setting its first
	// URL): it signs every event (Sipwarden-Signature).
	WebhookEventURL         string    `json:"webhook_event_url"`
	WebhookEventFailoverURL string    `json:"webhook_event_failover_url"`
	WebhookTimeoutSecs      int       `json:"webhook_timeout_secs"`
	WebhookSecret           string    `json:"webhook_secret,omitempty"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
}

// OutboundRoute is a connection's route: calls whose Request-URI user
// starts with Prefix go to Gateways, in order.
type OutboundRoute struct {
	Prefix   string   `json:"prefix"`
	Gateways []string `json:"gateways"`
}

// Number is a telephone number assigned to a connection or a credential.
type Number struct {
	// Number is E.164: "+15551234567".
	Number       string `json:"number"`
	ConnectionID string `json:"connection_id"`
	// CredentialID is empty when calls go to the connection's PBX.
	CredentialID string    `json:"credential_id"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// CreateNumberRequest is the body of POST /v1/numbers: the number in
// E.164, with or without "+", or as a tel: URI; ConnectionID defaults to
// the credential's.
type CreateNumberRequest struct {
	Number       string `json:"number"`
	ConnectionID string `json:"connection_id,omitempty"`
	CredentialID string `json:"credential_id,omitempty"`
}

// UpdateNumberRequest is the body of PATCH /v1/numbers/{number}; nil
// fields are left alone, an empty CredentialID leaves the number to its
// connection alone.
type UpdateNumberRequest struct {
	ConnectionID *string `json:"connection_id,omitempty"`
	CredentialID *string `json:"credential_id,omitempty"`
}

func numberOut(n store.Number) Number {
	return Number{Number: n.Number, ConnectionID: n.ConnectionID, CredentialID: n.CredentialID,
		CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt}
}

// Credential is a SIP credential as the API shows it: never its HA1
// values, nor its password but once when the server generated it.
type Credential struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	Username     string `json:"username"`
	Name         string `json:"name"`
	Tag          string `json:"tag"`
	Enabled      bool   `json:"enabled"`
	// State is read-only, computed when the credential is read:
	// CredentialDisabled when not Enabled, else CredentialExpired once
	// ExpiresAt has passed, else CredentialActive.
	State string `json:"state"`
	// ExpiresAt is nil when the credential never expires.
	ExpiresAt *time.Time `json:"expires_at"`
	// Algorithms are the digest algorithms offered to this credential, in
	// order; empty means the server's default list.
	Algorithms []string  `json:"algorithms"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// TokensNotBefore: tokens issued before it are revoked (revoke_tokens,
	// a password change). Absent when none were.
	TokensNotBefore *time.Time `json:"tokens_not_before,omitempty"`
	// Password is in the answer of a POST that generated it only (no
	// password in the request): the server keeps only its HA1s, so it is
	// never shown again.
	Password string `json:"password,omitempty"`
}

// The states of a credential (Credential.State). Only an active credential
// can register, place calls or be given a token; a disabled one is refused
// first, as the registrar and the proxy do (403 Credential Disabled before
// 403 Credential Expired).
const (
	CredentialActive   = "active"
	CredentialDisabled = "disabled"
	CredentialExpired  = "expired"
)

// credentialState is the state of c at now.
func credentialState(c store.Credential, now time.Time) string {
	switch {
	case !c.Enabled:
		return CredentialDisabled
	case c.Expired(now):
		return CredentialExpired
	}
	return CredentialActive
}

// Registration is a live binding of the location table.
type Registration struct {
	ID           string `json:"id"`
	Username     string `json:"username"` // the AOR's user part
	CredentialID string `json:"credential_id,omitempty"`
	Contact      string `json:"contact"`
	// Source is the ip:port the REGISTER came from, over Transport.
	Source       string    `json:"source"`
	Transport    string    `json:"transport"`
	UserAgent    string    `json:"user_agent"`
	InstanceID   string    `json:"instance_id"`
	ExpiresAt    time.Time `json:"expires_at"`
	ExpiresIn    int64     `json:"expires_in"` // seconds, at the time of the response
	RegisteredAt time.Time `json:"registered_at"`
}

// CreateConnectionRequest is the body of POST /v1/connections.
type CreateConnectionRequest struct {
	Name string `json:"name"`
	// Active defaults to true.
	Active *bool `json:"active,omitempty"`
	// AllowedCIDRs: addresses or CIDRs; empty allows any address.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
	// PublicTargets: users and numbers anonymous callers may call over
	// ws/wss; empty: none.
	PublicTargets []string `json:"public_targets,omitempty"`
	// Kind: "credential" (the default) or "ip" (AllowedCIDRs required).
	Kind                    string          `json:"kind,omitempty"`
	PBXURI                  string          `json:"pbx_uri,omitempty"`
	CallerIDPolicy          string          `json:"caller_id_policy,omitempty"`
	SIPURICallingPreference string          `json:"sip_uri_calling_preference,omitempty"`
	MaxCalls                int             `json:"max_calls,omitempty"`
	MaxRegistrations        int             `json:"max_registrations,omitempty"`
	OutboundRoutes          []OutboundRoute `json:"outbound_routes,omitempty"`
	GatewayUsername         string          `json:"gateway_username,omitempty"`
	GatewayPassword         string          `json:"gateway_password,omitempty"`
	WebhookEventURL         string          `json:"webhook_event_url,omitempty"`
	WebhookEventFailoverURL string          `json:"webhook_event_failover_url,omitempty"`
	WebhookTimeoutSecs      int             `json:"webhook_timeout_secs,omitempty"`
}

// UpdateConnectionRequest is the body of PATCH /v1/connections/{id}; nil
// fields are left alone.
type UpdateConnectionRequest struct {
	Name   *string `json:"name,omitempty"`
	Active *bool   `json:"active,omitempty"`
	// AllowedCIDRs replaces the list; a pointer to an empty list clears it.
	AllowedCIDRs *[]string `json:"allowed_cidrs,omitempty"`
	// PublicTargets replaces the list; a pointer to an empty list clears it.
	PublicTargets           *[]string `json:"public_targets,omitempty"`
	PBXURI                  *string   `json:"pbx_uri,omitempty"`
	CallerIDPolicy          *string   `json:"caller_id_policy,omitempty"`
	SIPURICallingPreference *string   `json:"sip_uri_calling_preference,omitempty"`
	MaxCalls                *int      `json:"max_calls,omitempty"`
	MaxRegistrations        *int      `json:"max_registrations,omitempty"`
	// OutboundRoutes replaces the list; a pointer to an empty list clears it.
	OutboundRoutes  *[]OutboundRoute `json:"outbound_routes,omitempty"`
	GatewayUsername *string          `json:"gateway_username,omitempty"`
	GatewayPassword *string          `json:"gateway_password,omitempty"`
	// A pointer to "" clears a webhook URL.
	WebhookEventURL         *string `json:"webhook_event_url,omitempty"`
	WebhookEventFailoverURL *string `json:"webhook_event_failover_url,omitempty"`
	WebhookTimeoutSecs      *int    `json:"webhook_timeout_secs,omitempty"`
}

// CreateCredentialRequest is the body of POST /v1/credentials.
type CreateCredentialRequest struct {
	// ConnectionID defaults to "default".
	ConnectionID string `json:"connection_id,omitempty"`
	// Username "" lets the server generate one.
	Username string `json:"username,omitempty"`
	// Password is write-only: no response contains it. "" lets the server
	// generate one, in the answer's Password only.
	Password  string     `json:"password,omitempty"`
	Name      string     `json:"name,omitempty"`
	Tag       string     `json:"tag,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty"`
	// Algorithms, when not empty, is the list of digest algorithms offered
	// to this credential, in order: a subset of "MD5", "SHA-256",
	// "SHA-512-256".
	Algorithms []string `json:"algorithms,omitempty"`
}

// UpdateCredentialRequest is the body of PATCH /v1/credentials/{id}; nil
// fields are left alone.
type UpdateCredentialRequest struct {
	Password   *string
	Enabled    *bool
	Name       *string
	Tag        *string
	ExpiresAt  *time.Time
	Algorithms []string
	// ClearExpiresAt sends expires_at: null (never expires).
	ClearExpiresAt bool
	// ClearAlgorithms sends algorithms: null (the server's default list).
	ClearAlgorithms bool
}

// MarshalJSON writes only the fields to change, with null for the cleared.
func (u UpdateCredentialRequest) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if u.Password != nil {
		m["password"] = *u.Password
	}
	if u.Enabled != nil {
		m["enabled"] = *u.Enabled
	}
	if u.Name != nil {
		m["name"] = *u.Name
	}
	if u.Tag != nil {
		m["tag"] = *u.Tag
	}
	switch {
	case u.ClearExpiresAt:
		m["expires_at"] = nil
	case u.ExpiresAt != nil:
		m["expires_at"] = u.ExpiresAt.Format(time.RFC3339Nano)
	}
	switch {
	case u.ClearAlgorithms:
		m["algorithms"] = nil
	case u.Algorithms != nil:
		m["algorithms"] = u.Algorithms
	}
	return json.Marshal(m)
}

func connectionOut(c store.Connection) Connection {
	out := Connection{ID: c.ID, Name: c.Name, Active: c.Active, AllowedCIDRs: c.AllowedCIDRs, PublicTargets: c.PublicTargets,
		Kind: c.Kind, PBXURI: c.PBXURI, CallerIDPolicy: c.CallerIDPolicy, SIPURICallingPreference: c.SIPURICallingPreference,
		MaxCalls: c.MaxCalls, MaxRegistrations: c.MaxRegistrations, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	out.GatewayUsername, out.GatewayPasswordSet = c.GatewayUsername, c.GatewayPassword != ""
	out.WebhookEventURL, out.WebhookEventFailoverURL = maskURLPassword(c.WebhookEventURL), maskURLPassword(c.WebhookEventFailoverURL)
	out.WebhookTimeoutSecs = c.WebhookTimeoutSecs
	if out.WebhookTimeoutSecs == 0 {
		out.WebhookTimeoutSecs = 10
	}
	out.OutboundRoutes = make([]OutboundRoute, len(c.OutboundRoutes))
	for i, r := range c.OutboundRoutes {
		out.OutboundRoutes[i] = OutboundRoute{Prefix: r.Prefix, Gateways: r.Gateways}
	}
	// The defaults, spelt out.
	if out.Kind == "" {
		out.Kind = store.ConnectionCredential
	}
	if out.CallerIDPolicy == "" {
		out.CallerIDPolicy = store.CallerIDUsername
		if out.Kind == store.ConnectionIP {
			out.CallerIDPolicy = store.CallerIDAny
		}
	}
	if out.SIPURICallingPreference == "" {
		out.SIPURICallingPreference = store.URICallingUnrestricted
	}
	if out.AllowedCIDRs == nil {
		out.AllowedCIDRs = []string{}
	}
	if out.PublicTargets == nil {
		out.PublicTargets = []string{}
	}
	return out
}

// credentialOut shows c as it is at now (its state).
func credentialOut(c store.Credential, now time.Time) Credential {
	out := Credential{
		ID: c.ID, ConnectionID: c.ConnectionID, Username: c.Username,
		Name: c.Name, Tag: c.Tag, Enabled: c.Enabled, State: credentialState(c, now),
		Algorithms: c.Algorithms, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if out.Algorithms == nil {
		out.Algorithms = []string{}
	}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt
		out.ExpiresAt = &t
	}
	if !c.TokensNotBefore.IsZero() {
		t := c.TokensNotBefore
		out.TokensNotBefore = &t
	}
	return out
}

// unquote returns a +sip.instance value without the quotes its Contact
// parameter has (RFC 5626 4.1: "<urn:uuid:...>" in quotes); the API
// showed them, where its documentation shows the URN in brackets alone.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

func registrationOut(b store.Binding, now time.Time) Registration {
	in := int64(b.Expires.Sub(now) / time.Second)
	if in < 0 {
		in = 0
	}
	return Registration{
		ID: b.ID, Username: b.AOR, CredentialID: b.CredentialID, Contact: b.Contact,
		Source: b.Source, Transport: b.Transport, UserAgent: b.UserAgent, InstanceID: unquote(b.InstanceID),
		ExpiresAt: b.Expires, ExpiresIn: in, RegisteredAt: b.RegisteredAt,
	}
}
