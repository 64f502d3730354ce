package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sipwarden/sipwarden/store"
)

// API key scopes (APIKey.Scope): an admin key may do everything; a read
// key may only read (GET), and not the routes that hand out secrets
// (backup, export) or list the keys.
const (
	ScopeAdmin = store.ScopeAdmin
	ScopeRead  = store.ScopeRead
)

// APIKey is an API key as the API shows it: never its secret, except once
// in Key, in the answer to its creation.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	CreatedAt time.Time `json:"created_at"`
	// Key is the key to send as Authorization: Bearer <key>: only in the
	// answer to POST /v1/api-keys; the server keeps a hash of it.
	Key string `json:"key,omitempty"`
}

// CreateAPIKeyRequest is the body of POST /v1/api-keys.
type CreateAPIKeyRequest struct {
	Name string `json:"name"`
	// Scope is admin or read.
	Scope string `json:"scope"`
}

func apiKeyOut(k store.APIKey) APIKey {
	return APIKey{ID: k.ID, Name: k.Name, Scope: k.Scope, CreatedAt: k.CreatedAt.UTC()}
}

func (s *Server) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Name  optional[string] `json:"name"`
		Scope optional[string] `json:"scope"`
	}
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var v validation
	name, _ := b.Name.value()
	if name == "" {
		v.add("/name", CodeRequired, "name is required: it tells the keys apart in GET /v1/api-keys")
	} else {
		v.checkText("/name", "name", name)
	}
	scope, ok := b.Scope.value()
	switch {
	case !ok:
		v.add("/scope", CodeRequired, "scope is required: admin or read")
	case scope != ScopeAdmin && scope != ScopeRead:
		v.add("/scope", CodeInvalidValue, "scope must be admin or read, not %q", truncate(scope, 64))
	}
	if err := v.err(); err != nil {
		return err
	}
	secret, hash := newKeySecret()
	k, err := s.db.CreateAPIKey(store.APIKey{Name: name, Scope: scope, Hash: hash, CreatedAt: s.now()})
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	out := apiKeyOut(k)
	out.Key = formatKey(k.ID, secret)
	s.log.Info("api key created", "key_id", k.ID, "scope", k.Scope)
	w.Header().Set("Location", "/v1/api-keys/"+k.ID)
	writeJSON(w, http.StatusCreated, envelope{Data: out})
	return nil
}

// listAPIKeys answers GET /v1/api-keys: every key (there are few), in
// creation order, in one page.
func (s *Server) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.db.APIKeys()
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	out := make([]APIKey, len(keys))
	for i, k := range keys {
		out[i] = apiKeyOut(k)
	}
	writeList(w, out, "", len(out))
	return nil
}

func (s *Server) deleteAPIKey(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if id == callerKeyID(r) {
		return newError(http.StatusConflict, CodeKeyInUse, "this request is made with that key: delete it with another admin key")
	}
	if err := s.db.DeleteAPIKey(id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return storeErr("delete", "api key", id, err)
		}
		return fmt.Errorf("delete api key: %w", err)
	}
	s.log.Info("api key deleted", "key_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// callerKeyID is the ID of the stored key the request was made with ("" for
// the configured admin key).
func callerKeyID(r *http.Request) string {
	id, _, _ := parseKey(bearerKey(r))
	return id
}
