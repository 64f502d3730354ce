package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sipwarden/sipwarden/store"
)

// Registrations are paged over a snapshot of the location table sorted by
// (username, binding ID); the cursor encodes the last pair shown, so that
// a page never repeats or skips a binding that stays registered while the
// table changes.

func (s *Server) listRegistrations(w http.ResponseWriter, r *http.Request) error {
	q, p, err := readQuery(r)
	if err != nil {
		return err
	}
	var after struct{ aor, id string }
	if p.after != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.after)
		var ok bool
		if err == nil {
			after.aor, after.id, ok = strings.Cut(string(b), "\x00")
		}
		if !ok {
			return paramError(paramPageAfter, "page[after] is not a cursor this API returned")
		}
	}
	bs := slices.Clone(s.locs.Bindings(q.Get("username")))
	slices.SortFunc(bs, compareBinding)
	start := 0
	if p.after != "" {
		start, _ = slices.BinarySearchFunc(bs, after, func(b store.Binding, k struct{ aor, id string }) int {
			if c := strings.Compare(b.AOR, k.aor); c != 0 {
				return c
			}
			return strings.Compare(b.ID, k.id)
		})
		if start < len(bs) && bs[start].AOR == after.aor && bs[start].ID == after.id {
			start++
		}
	}
	end := min(start+p.size, len(bs))
	now := s.now()
	out := make([]Registration, 0, end-start)
	for _, b := range bs[start:end] {
		out = append(out, registrationOut(b, now))
	}
	next := ""
	if end < len(bs) {
		last := bs[end-1]
		next = base64.RawURLEncoding.EncodeToString([]byte(last.AOR + "\x00" + last.ID))
	}
	writeList(w, out, next, p.size)
	return nil
}

func compareBinding(a, b store.Binding) int {
	if c := strings.Compare(a.AOR, b.AOR); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func (s *Server) deleteRegistration(w http.ResponseWriter, r *http.Request) error {
	if err := s.locs.Writable(); err != nil {
		return fmt.Errorf("remove registration %s: %w", r.PathValue("id"), err)
	}
	b, ok := s.locs.RemoveBinding(r.PathValue("id"))
	if !ok {
		return newError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no registration %q", r.PathValue("id")))
	}
	if err := s.locs.Sync(); err != nil {
		// A cluster's Redis that did not confirm in time (slow, not known
		// down: that was refused above): the removal is made here and
		// queued, and the node retries it until Redis takes it; a retry
		// of this DELETE gets 404.
		return fmt.Errorf("registration %s removed on this node, not yet confirmed by the shared store (retried until it is): %w", b.ID, err)
	}
	s.log.InfoContext(r.Context(), "registration removed", "aor", b.AOR, "contact", b.Contact, "source", b.Source)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
