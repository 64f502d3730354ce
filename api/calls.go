package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Call is a live call through the proxy, as GET /v1/calls shows it.
type Call struct {
	// ID identifies the dialog: Call-ID, caller tag and callee tag.
	ID     string `json:"id"`
	CallID string `json:"call_id"`
	// Caller and Callee are the From and To URIs of the INVITE.
	Caller string `json:"caller"`
	Callee string `json:"callee"`
	// CallerCredentialID and CalleeCredentialID are empty for a trusted
	// peer or a gateway.
	CallerCredentialID string    `json:"caller_credential_id,omitempty"`
	CalleeCredentialID string    `json:"callee_credential_id,omitempty"`
	StartedAt          time.Time `json:"started_at"`
	// Node is the cluster node relaying the call (cluster.node_name);
	// absent on a single node.
	Node string `json:"node,omitempty"`
}

// Calls lists and ends the live calls (the proxy's dialog table; in a
// cluster, every node's). An error carrying HTTPStatus 503 (the cluster's
// Redis did not answer) is answered so.
type Calls interface {
	ActiveCalls(ctx context.Context) ([]Call, error)
	// EndCall ends the call with the ID (Call.ID), sending BYE to both
	// sides (through the node relaying it), and reports whether there
	// was one.
	EndCall(ctx context.Context, id string) (bool, error)
}

// SetCalls gives the API the proxy's call list. Call it before serving;
// without it GET /v1/calls lists nothing.
func (s *Server) SetCalls(c Calls) { s.calls = c }

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) error {
	q, p, err := readQuery(r)
	if err != nil {
		return err
	}
	var calls []Call
	if s.calls != nil {
		if calls, err = s.calls.ActiveCalls(r.Context()); err != nil {
			return err
		}
	}
	if id := q.Get("credential_id"); id != "" {
		calls = slices.DeleteFunc(calls, func(c Call) bool { return c.CallerCredentialID != id && c.CalleeCredentialID != id })
	}
	slices.SortFunc(calls, func(a, b Call) int { return strings.Compare(a.ID, b.ID) })
	start := 0
	if p.after != "" {
		after, err := base64.RawURLEncoding.DecodeString(p.after)
		if err != nil {
			return paramError(paramPageAfter, "page[after] is not a cursor this API returned")
		}
		start, _ = slices.BinarySearchFunc(calls, string(after), func(c Call, k string) int { return strings.Compare(c.ID, k) })
		for start < len(calls) && calls[start].ID == string(after) {
			start++ // every entry of that ID: one left after it returned the same page for ever
		}
	}
	end := min(start+p.size, len(calls))
	next := ""
	if end < len(calls) {
		next = base64.RawURLEncoding.EncodeToString([]byte(calls[end-1].ID))
	}
	writeList(w, calls[start:end], next, p.size)
	return nil
}

// hangupCall answers DELETE /v1/calls/{id}: the proxy sends BYE to both
// sides.
func (s *Server) hangupCall(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	found := false
	if s.calls != nil {
		var err error
		if found, err = s.calls.EndCall(r.Context(), id); err != nil {
			return err
		}
	}
	if !found {
		return newError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no live call with id %q", truncate(id, 200)))
	}
	s.log.Info("call ended through the API", "call_id", strings.SplitN(id, ";", 2)[0])
	w.WriteHeader(http.StatusNoContent)
	return nil
}
