package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
	"github.com/sipwarden/sipwarden/token"
)

// CredentialRecord is one line of GET /v1/export and POST /v1/import
// (JSON lines): a credential with its HA1 values, enough to recreate it
// on another server with the same realm. It holds secrets: the routes
// that carry it need an admin key.
type CredentialRecord struct {
	// ID is kept on import when given (a UUID); empty: a new one.
	ID           string `json:"id,omitempty"`
	Username     string `json:"username"`
	ConnectionID string `json:"connection_id,omitempty"`
	// Realm the HA1 values were computed for; empty on import: the
	// server's. A realm other than the server's is refused.
	Realm string `json:"realm,omitempty"`
	// HA1 maps MD5, SHA-256 and SHA-512-256 to the lowercase hex
	// H(username:realm:password). At least one. A credential is offered
	// only the algorithms it has an HA1 for (until its password changes,
	// which computes them all).
	HA1 map[string]string `json:"ha1"`
	// Enabled: absent on import means true.
	Enabled    *bool      `json:"enabled,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Name       string     `json:"name,omitempty"`
	Tag        string     `json:"tag,omitempty"`
	Algorithms []string   `json:"algorithms,omitempty"`
}

// ImportResult is the answer to POST /v1/import.
type ImportResult struct {
	Created int `json:"created"`
}

// maxImportRecords bounds one POST /v1/import (the body limit applies
// too): clients send bigger files in batches.
const maxImportRecords = 10000

// backup answers GET /v1/backup: a consistent copy of the live bbolt file
// (store.DB.Backup), with its Content-Length, so that a client can tell a
// copy cut short (a failure after the first byte closes the connection).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	started := false
	n, err := s.db.Backup(w, func(size int64) {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="sipwarden-%s.db"`, s.now().UTC().Format("20060102T150405Z")))
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		started = true
	})
	if err != nil {
		if !started {
			return fmt.Errorf("backup: %w", err)
		}
		// Too late for an error answer: the short body tells the client.
		if rec, ok := w.(*recorder); ok {
			rec.err = fmt.Errorf("backup after %d bytes: %w", n, err)
		}
		return nil
	}
	s.log.Info("backup taken", "bytes", n)
	return nil
}

// export answers GET /v1/export: every credential as a CredentialRecord,
// one JSON object a line, in ID order.
func (s *Server) export(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	after, n := "", 0
	for {
		cs, next, err := s.db.Credentials(store.CredentialFilter{}, store.Page{After: after, Limit: 1000})
		if err != nil {
			if n == 0 && bw.Buffered() == 0 {
				return fmt.Errorf("export credentials: %w", err)
			}
			if rec, ok := w.(*recorder); ok {
				rec.err = fmt.Errorf("export after %d credentials: %w", n, err)
			}
			return nil
		}
		for _, c := range cs {
			_ = enc.Encode(recordOf(c)) // a write error: the client went away
			n++
		}
		if next == "" {
			break
		}
		after = next
	}
	_ = bw.Flush()
	s.log.Info("credentials exported", "count", n)
	return nil
}

func recordOf(c store.Credential) CredentialRecord {
	enabled := c.Enabled
	out := CredentialRecord{ID: c.ID, Username: c.Username, ConnectionID: c.ConnectionID, Realm: c.Realm,
		HA1: c.HA1, Enabled: &enabled, Name: c.Name, Tag: c.Tag, Algorithms: c.Algorithms}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

// importCredentials answers POST /v1/import: a body of CredentialRecord
// lines, created in one transaction (all, or none and the errors naming
// the lines and fields).
func (s *Server) importCredentials(w http.ResponseWriter, r *http.Request) error {
	now := s.now()
	var (
		creds []store.Credential
		lines []int // line number of each record
		v     validation
	)
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if len(creds) == maxImportRecords {
			return newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				fmt.Sprintf("more than %d records: send them in batches", maxImportRecords))
		}
		var rec CredentialRecord
		if err := decodeStrict(raw, &rec); err != nil {
			e, _ := errors.AsType[*Error](err)
			for i := range e.Errors {
				e.Errors[i].Detail = fmt.Sprintf("line %d: %s", line, e.Errors[i].Detail)
				if src := e.Errors[i].Source; src != nil && src.Pointer != "" {
					src.Pointer = "/" + strconv.Itoa(len(creds)) + src.Pointer
				}
			}
			return e
		}
		creds = append(creds, s.checkRecord(&v, len(creds), line, rec, now))
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				fmt.Sprintf("the body is larger than %d bytes: send the records in batches", s.cfg.MaxBodyBytes))
		}
		return newError(http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("line %d: %v", line+1, err))
	}
	if len(creds) == 0 {
		v.add("", CodeRequired, "no records: send one JSON object a line")
	}
	if err := v.err(); err != nil {
		return err
	}
	out, err := s.db.CreateCredentials(creds)
	if be, ok := errors.AsType[*store.BatchError](err); ok {
		e, internal := asAPIError(be.Err)
		if internal {
			return fmt.Errorf("import credentials: %w", err)
		}
		for i := range e.Errors {
			e.Errors[i].Detail = fmt.Sprintf("line %d (%s): %s", lines[be.Index], creds[be.Index].Username, e.Errors[i].Detail)
			if src := e.Errors[i].Source; src != nil && src.Pointer != "" {
				src.Pointer = "/" + strconv.Itoa(be.Index) + src.Pointer
			}
		}
		return e
	}
	if err != nil {
		return fmt.Errorf("import credentials: %w", err)
	}
	for _, c := range out {
		if !c.ExpiresAt.IsZero() {
			s.cfg.Lifecycle.Watch(c)
		}
	}
	s.log.Info("credentials imported", "count", len(out))
	writeJSON(w, http.StatusCreated, envelope{Data: ImportResult{Created: len(out)}})
	return nil
}

// checkRecord validates the record at index i (from line) and returns the
// credential to create; problems go to v, with pointers /i/field.
func (s *Server) checkRecord(v *validation, i, line int, rec CredentialRecord, now time.Time) store.Credential {
	p := "/" + strconv.Itoa(i)
	var lv validation
	// Tokens minted before the import are revoked: a record keeps its id,
	// so a credential exported, deleted (or its tokens revoked) and
	// imported again would otherwise take back every token minted for it,
	// the export holding no tokens_not_before.
	c := store.Credential{ID: rec.ID, ConnectionID: rec.ConnectionID, Username: rec.Username, Name: rec.Name, Tag: rec.Tag,
		Enabled: rec.Enabled == nil || *rec.Enabled, Realm: s.cfg.Realm, CreatedAt: now, UpdatedAt: now,
		TokensNotBefore: token.RevokedBefore(now, time.Time{})}
	if c.ID != "" {
		if _, err := uuid.Parse(c.ID); err != nil {
			lv.add(p+"/id", CodeInvalidValue, "id must be a UUID, or absent for a new one")
		}
	}
	if c.ConnectionID == "" {
		c.ConnectionID = store.DefaultConnectionID
	} else if len(c.ConnectionID) > maxIDLen {
		lv.add(p+"/connection_id", CodeUnknownConnection, "connection_id does not name an existing connection")
	}
	lv.checkUsername(p+"/username", c.Username)
	lv.checkText(p+"/name", "name", c.Name)
	lv.checkText(p+"/tag", "tag", c.Tag)
	if rec.Realm != "" && rec.Realm != s.cfg.Realm {
		lv.add(p+"/realm", CodeInvalidValue, "realm %q is not this server's realm %q: HA1 values only work in the realm they were computed for",
			truncate(rec.Realm, 64), s.cfg.Realm)
	}
	if rec.ExpiresAt != nil {
		c.ExpiresAt = rec.ExpiresAt.UTC()
	}
	if rec.Algorithms != nil {
		c.Algorithms = lv.checkAlgorithms(p+"/algorithms", rec.Algorithms)
	}
	c.HA1 = lv.checkHA1s(p+"/ha1", rec.HA1)
	for _, o := range lv {
		o.Detail = fmt.Sprintf("line %d: %s", line, o.Detail)
		if len(*v) < maxValidationErrorObjs {
			*v = append(*v, o)
		}
	}
	return c
}

// checkHA1s validates a map of algorithm name to hex HA1 and returns it
// with canonical names and lowercase hex.
func (v *validation) checkHA1s(pointer string, m map[string]string) map[string]string {
	if len(m) == 0 {
		v.add(pointer, CodeRequired, "ha1 is required: an object such as {\"MD5\": \"<32 hex digits>\"}")
		return nil
	}
	out := make(map[string]string, len(m))
	for name, hex := range m {
		a, err := digest.ParseAlgorithm(name)
		if err != nil || name == "" {
			v.add(pointer+"/"+name, CodeInvalidValue, "unknown digest algorithm %q; known: MD5, SHA-256, SHA-512-256", truncate(name, 32))
			continue
		}
		want := 64
		if a == digest.MD5 {
			want = 32
		}
		hex = strings.ToLower(hex)
		if len(hex) != want || strings.Trim(hex, "0123456789abcdef") != "" {
			v.add(pointer+"/"+name, CodeInvalidValue, "ha1 %s must be %d hex digits", a.String(), want)
			continue
		}
		out[a.String()] = hex
	}
	return out
}
