package api

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
)

// credentialBody is the body of POST and PATCH /v1/credentials; which
// fields each accepts is checked by the handler.
type credentialBody struct {
	ConnectionID optional[string]   `json:"connection_id"`
	Username     optional[string]   `json:"username"`
	Password     optional[string]   `json:"password"`
	Name         optional[string]   `json:"name"`
	Tag          optional[string]   `json:"tag"`
	ExpiresAt    optional[string]   `json:"expires_at"`
	Enabled      optional[bool]     `json:"enabled"`
	Algorithms   optional[[]string] `json:"algorithms"`
	// State is read-only: accepted here only to answer 422 naming it.
	State optional[json.RawMessage] `json:"state"`
}

// checkReadOnlyState refuses a state in a request body: it follows from
// enabled and expires_at.
func (v *validation) checkReadOnlyState(b *credentialBody) {
	if b.State.Set {
		v.add("/state", CodeInvalidValue, "state is read-only: set enabled (false disables) or expires_at instead")
	}
}

func (s *Server) createCredential(w http.ResponseWriter, r *http.Request) error {
	var b credentialBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	now := s.now()
	c := store.Credential{ConnectionID: store.DefaultConnectionID, Enabled: true, Realm: s.cfg.Realm}
	var v validation
	if id, ok := b.ConnectionID.value(); ok && id != "" {
		if len(id) > maxIDLen {
			v.add("/connection_id", CodeUnknownConnection, "connection_id does not name an existing connection")
		}
		c.ConnectionID = id
	}
	// An absent username or password is generated (Telnyx's on-demand
	// credentials: a connection_id and a name are enough); one given as ""
	// or null is still refused, naming the field: it is more likely a
	// client's bug than a request to generate one.
	genUser, genPassword := !b.Username.Set, !b.Password.Set
	if !genUser {
		c.Username, _ = b.Username.value()
		if c.Username == "" {
			v.add("/username", CodeRequired, "username must not be empty: omit it to have one generated")
		} else {
			v.checkUsername("/username", c.Username)
		}
	}
	var password string
	if !genPassword {
		password, _ = b.Password.value()
		if password == "" {
			v.add("/password", CodeRequired, "password must not be empty: omit it to have one generated")
		} else {
			v.checkPassword("/password", password, s.cfg.MinPasswordLength, c.Username)
		}
	}
	c.Name, _ = b.Name.value()
	v.checkText("/name", "name", c.Name)
	c.Tag, _ = b.Tag.value()
	v.checkText("/tag", "tag", c.Tag)
	if e, ok := b.ExpiresAt.value(); ok {
		c.ExpiresAt = v.checkTime("/expires_at", "expires_at", e, now)
	}
	if e, ok := b.Enabled.value(); ok {
		c.Enabled = e
	}
	if as, ok := b.Algorithms.value(); ok {
		c.Algorithms = v.checkAlgorithms("/algorithms", as)
	}
	v.checkReadOnlyState(&b)
	if err := v.err(); err != nil {
		return err
	}
	if genPassword {
		password = generatePassword(s.cfg.MinPasswordLength)
	}
	c.CreatedAt, c.UpdatedAt = now, now
	var err error
	for attempt := 1; ; attempt++ {
		if genUser {
			c.Username = s.newUsername()
		}
		c.HA1 = ha1s(c.Username, s.cfg.Realm, password) // the HA1 covers the username
		var created store.Credential
		created, err = s.db.CreateCredential(c)
		if err == nil {
			c = created
			break
		}
		// A generated username taken already is a collision of ~67 random
		// bits (or one generated on purpose): draw another.
		if !genUser || !errors.Is(err, store.ErrUsernameTaken) || attempt == maxGenerateAttempts {
			return fmt.Errorf("create credential: %w", err)
		}
	}
	s.cfg.Lifecycle.Watch(c)
	w.Header().Set("Location", "/v1/credentials/"+c.ID)
	out := credentialOut(c, now)
	if genPassword {
		out.Password = password // shown once: the store keeps only HA1s
	}
	writeJSON(w, http.StatusCreated, envelope{Data: out})
	return nil
}

// Generated usernames and passwords (POST /v1/credentials without them).
// A username is generatedUserPrefix and lowercase letters and digits, which
// every device and keypad takes and no escaping is needed for; a password
// comes from an alphabet without look-alikes (0/O/o, 1/l/I), as the CLI
// and the console generate them: people copy them into phones by hand.
const (
	generatedUserPrefix     = "gencred"
	generatedUserRandom     = 13 // 36^13: about 67 bits; 20 characters in all
	generatedPasswordLength = 24 // about 139 bits; longer when min_password_length asks
	usernameAlphabet        = "abcdefghijklmnopqrstuvwxyz0123456789"
	passwordAlphabet        = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
	maxGenerateAttempts     = 5
)

func generateUsername() string {
	return generatedUserPrefix + randomString(usernameAlphabet, generatedUserRandom)
}

// generatePassword returns a random password of at least minLen
// characters that checkPassword accepts.
func generatePassword(minLen int) string {
	n := max(generatedPasswordLength, minLen)
	for {
		// weak (a run, too few distinct characters) is all but impossible
		// for random characters, but a generated password must pass the
		// rules a chosen one does.
		if p := randomString(passwordAlphabet, n); weak(p, "") == "" {
			return p
		}
	}
}

// randomString returns n characters of alphabet (at most 256) drawn
// uniformly with crypto/rand: bytes at or above the largest multiple of
// len(alphabet) are dropped, so that no character is likelier.
func randomString(alphabet string, n int) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	buf := make([]byte, 64)
	for len(out) < n {
		_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) error {
	q, p, err := readQuery(r)
	if err != nil {
		return err
	}
	if err := checkCursor(p, isUUID); err != nil {
		return err
	}
	f := store.CredentialFilter{ConnectionID: q.Get("connection_id"), Tag: q.Get("tag"), Username: q.Get("username")}
	if f.Enabled, err = boolParam(q, "enabled"); err != nil {
		return err
	}
	cs, next, err := s.db.Credentials(f, store.Page{After: p.after, Limit: p.size})
	if err != nil {
		return fmt.Errorf("list credentials: %w", err)
	}
	now := s.now()
	out := make([]Credential, len(cs))
	for i, c := range cs {
		out[i] = credentialOut(c, now)
	}
	writeList(w, out, next, p.size)
	return nil
}

func (s *Server) getCredential(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.db.Credential(id)
	if err != nil {
		return storeErr("get", "credential", id, err)
	}
	writeJSON(w, http.StatusOK, envelope{Data: credentialOut(c, s.now())})
	return nil
}

// updateCredential applies a PATCH: absent fields stay, null clears
// expires_at (never expires), algorithms (server default), name and tag.
// Disabling the credential, or giving it an expiry that has passed,
// ends its bindings and calls at once (Config.Lifecycle).
func (s *Server) updateCredential(w http.ResponseWriter, r *http.Request) error {
	var b credentialBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var v validation
	for _, f := range []struct {
		set     bool
		pointer string
	}{{b.ConnectionID.Set, "/connection_id"}, {b.Username.Set, "/username"}} {
		if f.set {
			v.add(f.pointer, CodeInvalidValue, "%s cannot be changed: create a new credential", f.pointer[1:])
		}
	}
	if b.Password.Set {
		var username string
		if c, err := s.db.Credential(r.PathValue("id")); err == nil {
			username = c.Username // a missing credential is the 404 below
		}
		v.checkPassword("/password", b.Password.V, s.cfg.MinPasswordLength, username)
	}
	if b.Enabled.Null {
		v.add("/enabled", CodeInvalidValue, "enabled must be true or false, not null")
	}
	if b.Name.Set {
		v.checkText("/name", "name", b.Name.V)
	}
	if b.Tag.Set {
		v.checkText("/tag", "tag", b.Tag.V)
	}
	var expiresAt time.Time // zero: never (null)
	if e, ok := b.ExpiresAt.value(); ok {
		// An expiry in the past is allowed here: it ends the credential now.
		expiresAt = v.checkTime("/expires_at", "expires_at", e, time.Time{})
	}
	var algs []string
	if as, ok := b.Algorithms.value(); ok {
		algs = v.checkAlgorithms("/algorithms", as)
	}
	v.checkReadOnlyState(&b)
	if err := v.err(); err != nil {
		return err
	}

	id := r.PathValue("id")
	if !b.Password.Set && !b.Enabled.Set && !b.Name.Set && !b.Tag.Set && !b.ExpiresAt.Set && !b.Algorithms.Set {
		c, err := s.db.Credential(id)
		if err != nil {
			return storeErr("get", "credential", id, err)
		}
		writeJSON(w, http.StatusOK, envelope{Data: credentialOut(c, s.now())})
		return nil
	}
	now := s.now()
	var before store.Credential
	c, err := s.db.UpdateCredential(id, func(c *store.Credential) error {
		before = *c
		if p, ok := b.Password.value(); ok {
			c.Realm = s.cfg.Realm
			c.HA1 = ha1s(c.Username, c.Realm, p)
			// A new password revokes the tokens minted with the old one.
			revokeTokensOf(c, now)
		}
		if e, ok := b.Enabled.value(); ok {
			if c.Enabled && !e {
				// Disabling revokes the tokens: enabling again later must
				// not bring them back (mint new ones).
				revokeTokensOf(c, now)
			}
			c.Enabled = e
		}
		if b.Name.Set {
			c.Name = b.Name.V
		}
		if b.Tag.Set {
			c.Tag = b.Tag.V
		}
		if b.ExpiresAt.Set {
			c.ExpiresAt = expiresAt
			if !b.ExpiresAt.Null && !expiresAt.After(now) {
				// A time that has passed ends the credential now, and is
				// kept as now: the zero time (0001-01-01T00:00:00Z) would
				// read as "never expires", the opposite of what was asked.
				c.ExpiresAt = now.UTC()
			}
		}
		if b.Algorithms.Set {
			c.Algorithms = slices.Clone(algs) // nil when null: the server default
		}
		c.UpdatedAt = now
		return nil
	})
	if err != nil {
		return storeErr("update", "credential", id, err)
	}
	usableBefore := before.Enabled && !before.Expired(now)
	switch {
	case usableBefore && !c.Enabled:
		err = s.cfg.Lifecycle.End(c, lifecycle.Disabled)
	case usableBefore && c.Expired(now):
		err = s.cfg.Lifecycle.End(c, lifecycle.Expired)
	case !c.Expired(now):
		s.cfg.Lifecycle.Watch(c) // its expiry may have changed
		if c.TokensNotBefore.After(before.TokensNotBefore) {
			// A new password revoked the tokens: their registrations end.
			err = s.cfg.Lifecycle.Prune(c, lifecycle.TokensRevoked, revokedBindings(c))
		}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, envelope{Data: credentialOut(c, now)})
	return nil
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := s.db.DeleteCredential(id)
	if err != nil {
		return storeErr("delete", "credential", id, err)
	}
	if err := s.cfg.Lifecycle.End(c, lifecycle.Deleted); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
