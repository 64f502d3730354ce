package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client is a typed client of the management API. Every method returns an
// *Error for a non-2xx answer.
type Client struct {
	base string
	key  string
	hc   *http.Client
}

// maxResponseBytes bounds what the client reads of one response.
const maxResponseBytes = 64 << 20

// NewClient returns a client of the API at baseURL (e.g.
// "http://127.0.0.1:8080") that sends key as its bearer token. hc nil
// means a client with a 30 s timeout.
func NewClient(baseURL, key string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), key: key, hc: hc}
}

// WithHTTPClient returns a copy of c that sends its requests through hc
// (for long transfers: a client without NewClient's 30 s timeout).
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	cp := *c
	cp.hc = hc
	return &cp
}

// PageRequest asks for one page of a list: Size items (0: the server's
// default, 100) after the cursor After (the NextCursor of the previous
// page; "" for the first page).
type PageRequest struct {
	Size  int
	After string
}

func (p PageRequest) addTo(q url.Values) {
	if p.Size > 0 {
		q.Set(paramPageSize, strconv.Itoa(p.Size))
	}
	if p.After != "" {
		q.Set(paramPageAfter, p.After)
	}
}

// CredentialQuery filters ListCredentials; empty fields do not filter.
type CredentialQuery struct {
	ConnectionID string
	Tag          string
	Username     string
	Enabled      *bool
	Page         PageRequest
}

// RegistrationQuery filters ListRegistrations.
type RegistrationQuery struct {
	Username string
	Page     PageRequest
}

// Health checks GET /healthz.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// CreateConnection creates a connection.
func (c *Client) CreateConnection(ctx context.Context, req CreateConnectionRequest) (Connection, error) {
	var out Connection
	err := c.do(ctx, http.MethodPost, "/v1/connections", nil, req, &out)
	return out, err
}

// ListConnections returns one page of connections and the cursor of the
// next page ("" after the last).
func (c *Client) ListConnections(ctx context.Context, p PageRequest) ([]Connection, string, error) {
	q := url.Values{}
	p.addTo(q)
	var out []Connection
	next, err := c.list(ctx, "/v1/connections", q, &out)
	return out, next, err
}

// GetConnection returns one connection.
func (c *Client) GetConnection(ctx context.Context, id string) (Connection, error) {
	var out Connection
	err := c.do(ctx, http.MethodGet, "/v1/connections/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// UpdateConnection changes the non-nil fields of req.
func (c *Client) UpdateConnection(ctx context.Context, id string, req UpdateConnectionRequest) (Connection, error) {
	var out Connection
	err := c.do(ctx, http.MethodPatch, "/v1/connections/"+url.PathEscape(id), nil, req, &out)
	return out, err
}

// RotateWebhookSecret gives the connection a new webhook secret, in the
// answer's WebhookSecret only.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string) (Connection, error) {
	var out Connection
	err := c.do(ctx, http.MethodPost, "/v1/connections/"+url.PathEscape(id)+"/actions/rotate_webhook_secret", nil, nil, &out)
	return out, err
}

// DeleteConnection deletes a connection without credentials.
func (c *Client) DeleteConnection(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/connections/"+url.PathEscape(id), nil, nil, nil)
}

// NumberQuery filters ListNumbers.
type NumberQuery struct {
	ConnectionID string
	CredentialID string
	Page         PageRequest
}

// CreateNumber assigns a number.
func (c *Client) CreateNumber(ctx context.Context, req CreateNumberRequest) (Number, error) {
	var out Number
	err := c.do(ctx, http.MethodPost, "/v1/numbers", nil, req, &out)
	return out, err
}

// ListNumbers returns one page of the numbers q selects and the cursor of
// the next page ("" after the last).
func (c *Client) ListNumbers(ctx context.Context, q NumberQuery) ([]Number, string, error) {
	v := url.Values{}
	for k, s := range map[string]string{"connection_id": q.ConnectionID, "credential_id": q.CredentialID} {
		if s != "" {
			v.Set(k, s)
		}
	}
	q.Page.addTo(v)
	var out []Number
	next, err := c.list(ctx, "/v1/numbers", v, &out)
	return out, next, err
}

// GetNumber returns one number's assignment.
func (c *Client) GetNumber(ctx context.Context, number string) (Number, error) {
	var out Number
	err := c.do(ctx, http.MethodGet, "/v1/numbers/"+url.PathEscape(number), nil, nil, &out)
	return out, err
}

// UpdateNumber reassigns a number.
func (c *Client) UpdateNumber(ctx context.Context, number string, req UpdateNumberRequest) (Number, error) {
	var out Number
	err := c.do(ctx, http.MethodPatch, "/v1/numbers/"+url.PathEscape(number), nil, req, &out)
	return out, err
}

// DeleteNumber releases a number.
func (c *Client) DeleteNumber(ctx context.Context, number string) error {
	return c.do(ctx, http.MethodDelete, "/v1/numbers/"+url.PathEscape(number), nil, nil, nil)
}

// CreateCredential creates a credential.
func (c *Client) CreateCredential(ctx context.Context, req CreateCredentialRequest) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodPost, "/v1/credentials", nil, req, &out)
	return out, err
}

// ListCredentials returns one page of the credentials q selects and the
// cursor of the next page ("" after the last).
func (c *Client) ListCredentials(ctx context.Context, q CredentialQuery) ([]Credential, string, error) {
	v := url.Values{}
	for k, s := range map[string]string{"connection_id": q.ConnectionID, "tag": q.Tag, "username": q.Username} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Enabled != nil {
		v.Set("enabled", strconv.FormatBool(*q.Enabled))
	}
	q.Page.addTo(v)
	var out []Credential
	next, err := c.list(ctx, "/v1/credentials", v, &out)
	return out, next, err
}

// GetCredential returns one credential.
func (c *Client) GetCredential(ctx context.Context, id string) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodGet, "/v1/credentials/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// UpdateCredential changes what req sets.
func (c *Client) UpdateCredential(ctx context.Context, id string, req UpdateCredentialRequest) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodPatch, "/v1/credentials/"+url.PathEscape(id), nil, req, &out)
	return out, err
}

// CreateToken mints a JWT for a credential (POST /v1/credentials/{id}/token).
func (c *Client) CreateToken(ctx context.Context, credentialID string) (Token, error) {
	var out Token
	err := c.do(ctx, http.MethodPost, "/v1/credentials/"+url.PathEscape(credentialID)+"/token", nil, nil, &out)
	return out, err
}

// RevokeTokens revokes every token minted for a credential until now.
func (c *Client) RevokeTokens(ctx context.Context, credentialID string) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodPost, "/v1/credentials/"+url.PathEscape(credentialID)+"/actions/revoke_tokens", nil, nil, &out)
	return out, err
}

// DeleteCredential deletes a credential; the server drops its bindings.
func (c *Client) DeleteCredential(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/credentials/"+url.PathEscape(id), nil, nil, nil)
}

// ListRegistrations returns one page of live registrations and the cursor
// of the next page ("" after the last).
func (c *Client) ListRegistrations(ctx context.Context, q RegistrationQuery) ([]Registration, string, error) {
	v := url.Values{}
	if q.Username != "" {
		v.Set("username", q.Username)
	}
	q.Page.addTo(v)
	var out []Registration
	next, err := c.list(ctx, "/v1/registrations", v, &out)
	return out, next, err
}

// DeleteRegistration removes one binding from the location table.
func (c *Client) DeleteRegistration(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/registrations/"+url.PathEscape(id), nil, nil, nil)
}

func (c *Client) list(ctx context.Context, path string, q url.Values, data any) (string, error) {
	var meta listMeta
	err := c.doEnvelope(ctx, http.MethodGet, path, q, nil, data, &meta)
	return meta.NextCursor, err
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, data any) error {
	return c.doEnvelope(ctx, method, path, q, body, data, nil)
}

// doEnvelope sends one request and decodes the "data" (and "meta") of the
// answer into data and meta, when not nil.
func (c *Client) doEnvelope(ctx context.Context, method, path string, q url.Values, body, data any, meta *listMeta) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return responseError(res.StatusCode, raw)
	}
	if data == nil && meta == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	env := struct {
		Data json.RawMessage `json:"data"`
		Meta *listMeta       `json:"meta"`
	}{Meta: meta}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	if data != nil {
		if len(env.Data) == 0 {
			return fmt.Errorf("%s %s: response has no data", method, path)
		}
		if err := json.Unmarshal(env.Data, data); err != nil {
			return fmt.Errorf("%s %s: decode response data: %w", method, path, err)
		}
	}
	return nil
}

// responseError decodes an error body; a body that is not one (a proxy's
// HTML page, say) becomes a single object quoting its start.
func responseError(status int, raw []byte) *Error {
	e := &Error{Status: status}
	if err := json.Unmarshal(raw, e); err == nil && len(e.Errors) > 0 {
		return e
	}
	e.Errors = []ErrorObject{{Code: codeHTTPError, Title: titles[codeHTTPError], Detail: fmt.Sprintf("HTTP %d: %s", status, truncate(strings.TrimSpace(string(raw)), 200))}}
	return e
}

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// ListBans returns one page of live bans and the next cursor.
func (c *Client) ListBans(ctx context.Context, p PageRequest) ([]Ban, string, error) {
	q := url.Values{}
	p.addTo(q)
	var out []Ban
	next, err := c.list(ctx, "/v1/bans", q, &out)
	return out, next, err
}

// LiftBan ends the ban of the source holding ip.
func (c *Client) LiftBan(ctx context.Context, ip string) error {
	return c.do(ctx, http.MethodDelete, "/v1/bans/"+url.PathEscape(ip), nil, nil, nil)
}

// ListCalls returns one page of live calls (of one credential when
// credentialID is not empty) and the next cursor.
func (c *Client) ListCalls(ctx context.Context, credentialID string, p PageRequest) ([]Call, string, error) {
	q := url.Values{}
	if credentialID != "" {
		q.Set("credential_id", credentialID)
	}
	p.addTo(q)
	var out []Call
	next, err := c.list(ctx, "/v1/calls", q, &out)
	return out, next, err
}

// HangupCall ends a live call: the proxy sends BYE to both sides.
func (c *Client) HangupCall(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/calls/"+url.PathEscape(id), nil, nil, nil)
}

// CreateAPIKey creates an API key; the answer's Key is the only copy of
// the key.
func (c *Client) CreateAPIKey(ctx context.Context, req CreateAPIKeyRequest) (APIKey, error) {
	var out APIKey
	err := c.do(ctx, http.MethodPost, "/v1/api-keys", nil, req, &out)
	return out, err
}

// ListAPIKeys returns every API key (without secrets).
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var out []APIKey
	_, err := c.list(ctx, "/v1/api-keys", nil, &out)
	return out, err
}

// DeleteAPIKey deletes an API key.
func (c *Client) DeleteAPIKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/api-keys/"+url.PathEscape(id), nil, nil, nil)
}

// LogLevel returns the server's log level.
func (c *Client) LogLevel(ctx context.Context) (string, error) {
	var out LogLevel
	err := c.do(ctx, http.MethodGet, "/v1/log-level", nil, nil, &out)
	return out.Level, err
}

// SetLogLevel sets the server's log level: debug, info, warn or error.
func (c *Client) SetLogLevel(ctx context.Context, level string) (string, error) {
	var out LogLevel
	err := c.do(ctx, http.MethodPut, "/v1/log-level", nil, LogLevel{Level: level}, &out)
	return out.Level, err
}

// Backup copies the server's live store (GET /v1/backup) to w and returns
// the bytes copied; a copy shorter than announced is an error. A large
// store needs an http.Client without a short Timeout (NewClient's hc).
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return c.download(ctx, "/v1/backup", w)
}

// Export copies every credential with its HA1 values (GET /v1/export,
// CredentialRecord lines) to w.
func (c *Client) Export(ctx context.Context, w io.Writer) (int64, error) {
	return c.download(ctx, "/v1/export", w)
}

// Import creates the credentials of records in one transaction (all or
// none) and returns how many were created. The server takes at most 10,000
// records and its body limit (1 MiB by default) a call: send batches.
func (c *Client) Import(ctx context.Context, records []CredentialRecord) (int, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return 0, fmt.Errorf("encode import record %q: %w", r.Username, err)
		}
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/import", &buf)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		return 0, fmt.Errorf("POST /v1/import: read response: %w", err)
	}
	if res.StatusCode != http.StatusCreated {
		return 0, responseError(res.StatusCode, raw)
	}
	var env struct{ Data ImportResult }
	if err := json.Unmarshal(raw, &env); err != nil {
		return 0, fmt.Errorf("POST /v1/import: decode response: %w", err)
	}
	return env.Data.Created, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// download copies the body of GET path to w, checking its length against
// Content-Length when the server sent one.
func (c *Client) download(ctx context.Context, path string, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
		return 0, responseError(res.StatusCode, raw)
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: after %d bytes: %w", path, n, err)
	}
	if res.ContentLength >= 0 && n != res.ContentLength {
		return n, fmt.Errorf("GET %s: got %d bytes of %d", path, n, res.ContentLength)
	}
	return n, nil
}
