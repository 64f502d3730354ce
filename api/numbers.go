package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/sipwarden/sipwarden/e164"
	"github.com/sipwarden/sipwarden/store"
)

type numberBody struct {
	Number       optional[string] `json:"number"`
	ConnectionID optional[string] `json:"connection_id"`
	CredentialID optional[string] `json:"credential_id"`
}

// checkNumber normalises a number from a body (e164: "+1555…", "1555…",
// tel: URIs), naming the field when it is not one.
func (v *validation) checkNumber(pointer, s string) string {
	n, code, detail := parseNumber(s)
	if code != "" {
		v.add(pointer, code, "%s", detail)
	}
	return n
}

// parseNumber normalises a number given to the API, in a body or a path,
// or says what is wrong with it: an error code and its detail.
func parseNumber(s string) (n, code, detail string) {
	// e164.Normalize reads numbers from SIP too, where ";npdi" and the like
	// may follow and are dropped unread, as are spaces and line breaks
	// around it. A number given here is stored or looked up, so all of it
	// must be the number: "+1555;evil\r\nVia: x" is not +1555.
	if i := strings.IndexFunc(s, func(r rune) bool { return r == ';' || unicode.IsControl(r) }); i >= 0 {
		return "", CodeInvalidValue, fmt.Sprintf("number must be an E.164 number such as +15551234567 or tel:+1-555-123-4567, without parameters (;...) or control characters, not %q",
			truncate(s, 32))
	}
	n, err := e164.NormalizePattern(s)
	switch {
	case err == nil:
		return n, "", ""
	case s == "":
		return "", CodeRequired, "number is required: an E.164 number such as +15551234567"
	case errors.Is(err, e164.ErrEmpty):
		// "+", "*", "tel:": something was given, only no digits.
		return "", CodeInvalidValue, fmt.Sprintf("number must be an E.164 number such as +15551234567 or a pattern such as +1555123*, not %q: it holds no digits",
			truncate(s, 32))
	}
	return "", CodeInvalidValue, fmt.Sprintf("number must be an E.164 number such as +15551234567, 15551234567 or tel:+1-555-123-4567, or a pattern such as +1555123*, not %q: %s",
		truncate(s, 32), strings.TrimPrefix(err.Error(), "e164: "))
}

// resolveOwner fills in the connection of a number assigned to a
// credential, and checks that a named connection exists (422 naming the
// field otherwise).
func (s *Server) resolveOwner(n *store.Number) error {
	if n.CredentialID != "" {
		c, err := s.db.Credential(n.CredentialID)
		if errors.Is(err, store.ErrNotFound) {
			return &Error{Status: statusUnprocessable, Errors: []ErrorObject{
				fieldError("/credential_id", CodeInvalidValue, "credential_id does not name an existing credential"),
			}}
		}
		if err != nil {
			return fmt.Errorf("number owner: %w", err)
		}
		if n.ConnectionID == "" {
			n.ConnectionID = c.ConnectionID
		} else if n.ConnectionID != c.ConnectionID {
			return &Error{Status: statusUnprocessable, Errors: []ErrorObject{
				fieldError("/credential_id", CodeInvalidValue, "credential_id names a credential of another connection than connection_id"),
			}}
		}
	}
	if n.ConnectionID == "" {
		return &Error{Status: statusUnprocessable, Errors: []ErrorObject{
			fieldError("/connection_id", CodeRequired, "connection_id or credential_id is required"),
		}}
	}
	return nil
}

func (s *Server) createNumber(w http.ResponseWriter, r *http.Request) error {
	var b numberBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var v validation
	raw, _ := b.Number.value()
	num := v.checkNumber("/number", raw)
	connID, _ := b.ConnectionID.value()
	credID, _ := b.CredentialID.value()
	if err := v.err(); err != nil {
		return err
	}
	n := store.Number{Number: num, ConnectionID: connID, CredentialID: credID}
	if err := s.resolveOwner(&n); err != nil {
		return err
	}
	now := s.now()
	n.CreatedAt, n.UpdatedAt = now, now
	n, err := s.db.CreateNumber(n)
	if errors.Is(err, store.ErrExists) {
		e := newError(http.StatusConflict, CodeNumberTaken, fmt.Sprintf("%s is already assigned", num))
		e.Errors[0].Source = &ErrorSource{Pointer: "/number"}
		return e
	}
	if err != nil {
		return fmt.Errorf("create number: %w", err)
	}
	w.Header().Set("Location", "/v1/numbers/"+n.Number)
	writeJSON(w, http.StatusCreated, envelope{Data: numberOut(n)})
	return nil
}

func (s *Server) listNumbers(w http.ResponseWriter, r *http.Request) error {
	q, p, err := readQuery(r)
	if err != nil {
		return err
	}
	if err := checkCursor(p, func(n string) bool {
		norm, err := e164.NormalizePattern(n)
		return err == nil && norm == n
	}); err != nil {
		return err
	}
	ns, next, err := s.db.Numbers(store.NumberFilter{ConnectionID: q.Get("connection_id"), CredentialID: q.Get("credential_id")},
		store.Page{After: p.after, Limit: p.size})
	if err != nil {
		return fmt.Errorf("list numbers: %w", err)
	}
	out := make([]Number, len(ns))
	for i, n := range ns {
		out[i] = numberOut(n)
	}
	writeList(w, out, next, p.size)
	return nil
}

// pathNumber is the number of the path, normalised: /v1/numbers/15551234567
// and /v1/numbers/+15551234567 name the same one. What a body may not
// hold is a 422 naming the parameter: normalising alone read
// /v1/numbers/+1555;foo and /v1/numbers/+1555%0A as +1555 (and deleted it).
func pathNumber(r *http.Request) (string, error) {
	n, code, detail := parseNumber(r.PathValue("number"))
	if code != "" {
		return "", &Error{Status: statusUnprocessable, Errors: []ErrorObject{{
			Code: code, Title: titles[code], Detail: detail, Source: &ErrorSource{Parameter: "number"},
		}}}
	}
	return n, nil
}

func (s *Server) getNumber(w http.ResponseWriter, r *http.Request) error {
	num, err := pathNumber(r)
	if err != nil {
		return err
	}
	n, err := s.db.Number(num)
	if err != nil {
		return storeErr("get", "number", num, err)
	}
	writeJSON(w, http.StatusOK, envelope{Data: numberOut(n)})
	return nil
}

func (s *Server) updateNumber(w http.ResponseWriter, r *http.Request) error {
	num, err := pathNumber(r)
	if err != nil {
		return err
	}
	var b numberBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var v validation
	if b.Number.Set {
		v.add("/number", CodeInvalidValue, "number is the resource's identity and cannot change: delete it and create another")
	}
	if b.ConnectionID.Null {
		v.add("/connection_id", CodeInvalidValue, "connection_id cannot be null")
	}
	if err := v.err(); err != nil {
		return err
	}
	cur, err := s.db.Number(num)
	if err != nil {
		return storeErr("update", "number", num, err)
	}
	want := cur
	if c, ok := b.ConnectionID.value(); ok {
		want.ConnectionID = c
		if !b.CredentialID.Set && c != cur.ConnectionID {
			want.CredentialID = "" // moved to another connection: not its credential's any more
		}
	}
	if b.CredentialID.Set {
		want.CredentialID, _ = b.CredentialID.value()
		if want.CredentialID != "" && !b.ConnectionID.Set {
			want.ConnectionID = ""
		}
	}
	if err := s.resolveOwner(&want); err != nil {
		return err
	}
	n, err := s.db.UpdateNumber(num, func(n *store.Number) error {
		n.ConnectionID, n.CredentialID = want.ConnectionID, want.CredentialID
		n.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return storeErr("update", "number", num, err)
	}
	writeJSON(w, http.StatusOK, envelope{Data: numberOut(n)})
	return nil
}

func (s *Server) deleteNumber(w http.ResponseWriter, r *http.Request) error {
	num, err := pathNumber(r)
	if err != nil {
		return err
	}
	if err := s.db.DeleteNumber(num); err != nil {
		return storeErr("delete", "number", num, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
