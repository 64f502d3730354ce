package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sipwarden/sipwarden/keyfile"
	"github.com/sipwarden/sipwarden/store"
)

// An API key reads swk_<key id>_<secret>: the key ID finds the stored
// record, whose hash is SHA-256(secret). The secret is 32 random bytes in
// unpadded base64url.
const (
	keyPrefix      = "swk_"
	keySecretBytes = 32
	maxKeyLen      = 512
)

// newKeySecret returns a fresh secret and its hash.
func newKeySecret() (secret string, hash []byte) {
	b := make([]byte, keySecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	secret = base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(secret))
	return secret, h[:]
}

func formatKey(id, secret string) string { return keyPrefix + id + "_" + secret }

// parseKey splits a key into its ID and secret. Key IDs never contain '_'
// (the secret may).
func parseKey(key string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

// ensureAdminKey creates the admin key on first start: when the store
// holds no API key and no key is configured. The plaintext goes to the key
// file (mode 0600, written atomically) and nowhere else.
func (s *Server) ensureAdminKey() error {
	if s.adminHash != nil {
		return nil
	}
	keys, err := s.db.APIKeys()
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	path := s.cfg.AdminKeyFile
	if path == "" {
		return errors.New("api: no API key exists: set Config.AdminKey or Config.AdminKeyFile")
	}
	secret, hash := newKeySecret()
	k, err := s.db.CreateAPIKey(store.APIKey{Name: "admin", Hash: hash, CreatedAt: s.now()})
	if err != nil {
		return fmt.Errorf("create admin api key: %w", err)
	}
	if strings.Contains(k.ID, "_") || k.ID == "" {
		_ = s.db.DeleteAPIKey(k.ID)
		return fmt.Errorf("create admin api key: unusable key id %q", k.ID)
	}
	if err := keyfile.WriteAtomic(path, []byte(formatKey(k.ID, secret)+"\n"), 0o600); err != nil {
		// Without the file nobody could use the key: forget it, so that
		// the next start tries again.
		if derr := s.db.DeleteAPIKey(k.ID); derr != nil {
			return fmt.Errorf("write admin key file %s: %w (and remove the key: %v)", path, err, derr)
		}
		return fmt.Errorf("write admin key file %s: %w", path, err)
	}
	s.log.Info("admin API key created", "path", path)
	return nil
}

// bearerKey is the key of the request's Authorization: Bearer header, or
// "".
func bearerKey(r *http.Request) string {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	key = strings.TrimSpace(key)
	if len(key) > maxKeyLen {
		return ""
	}
	return key
}

// authenticate checks the request's bearer key and returns its scope. An
// unknown or wrong key is ("", false, nil); err is only for a store
// failure.
func (s *Server) authenticate(r *http.Request) (scope string, ok bool, err error) {
	key := bearerKey(r)
	if key == "" {
		return "", false, nil
	}
	if s.adminHash != nil {
		h := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(h[:], s.adminHash) == 1 {
			return ScopeAdmin, true, nil
		}
	}
	id, secret, ok := parseKey(key)
	if !ok {
		return "", false, nil
	}
	k, err := s.db.APIKey(id)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up api key: %w", err)
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], k.Hash) != 1 {
		return "", false, nil
	}
	return k.Scope, true, nil
}

// allowed reports whether a key of scope may use the route pattern: an
// admin key everything, a read key the GET routes but those in adminOnly.
func (s *Server) allowed(scope, pattern string, r *http.Request) bool {
	if scope == ScopeAdmin {
		return true
	}
	return scope == ScopeRead && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !s.adminOnly[pattern]
}
