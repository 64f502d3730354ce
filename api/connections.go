package api

import (
	"fmt"
	"net/http"

	"github.com/sipwarden/sipwarden/store"
)

type connectionBody struct {
	Name          optional[string]   `json:"name"`
	Active        optional[bool]     `json:"active"`
	AllowedCIDRs  optional[[]string] `json:"allowed_cidrs"`
	PublicTargets optional[[]string] `json:"public_targets"`
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) error {
	var b connectionBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var v validation
	name, _ := b.Name.value()
	v.checkName("/name", name)
	active := true
	if a, ok := b.Active.value(); ok {
		active = a
	}
	var cidrs []string
	if l, ok := b.AllowedCIDRs.value(); ok {
		cidrs = v.checkCIDRs("/allowed_cidrs", l) // acl.go
	}
	var targets []string
	if l, ok := b.PublicTargets.value(); ok {
		targets = v.checkPublicTargets("/public_targets", l) // acl.go
	}
	if err := v.err(); err != nil {
		return err
	}
	now := s.now()
	c, err := s.db.CreateConnection(store.Connection{Name: name, Active: active, AllowedCIDRs: cidrs, PublicTargets: targets,
		CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return fmt.Errorf("create connection: %w", err)
	}
	w.Header().Set("Location", "/v1/connections/"+c.ID)
	writeJSON(w, http.StatusCreated, envelope{Data: connectionOut(c)})
	return nil
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	_, p, err := readQuery(r)
	if err != nil {
		return err
	}
	cs, next, err := s.db.Connections(store.Page{After: p.after, Limit: p.size})
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	out := make([]Connection, len(cs))
	for i, c := range cs {
		out[i] = connectionOut(c)
	}
	writeList(w, out, next, p.size)
	return nil
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := readQuery(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := s.db.Connection(id)
	if err != nil {
		return storeErr("get", "connection", id, err)
	}
	writeJSON(w, http.StatusOK, envelope{Data: connectionOut(c)})
	return nil
}

func (s *Server) updateConnection(w http.ResponseWriter, r *http.Request) error {
	var b connectionBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var v validation
	if b.Name.Set {
		v.checkName("/name", b.Name.V)
	}
	if b.Active.Null {
		v.add("/active", CodeInvalidValue, "active must be true or false, not null")
	}
	var cidrs []string
	if l, ok := b.AllowedCIDRs.value(); ok {
		cidrs = v.checkCIDRs("/allowed_cidrs", l) // acl.go; null or [] clears
	}
	var targets []string
	if l, ok := b.PublicTargets.value(); ok {
		targets = v.checkPublicTargets("/public_targets", l) // acl.go; null or [] clears
	}
	if err := v.err(); err != nil {
		return err
	}
	id := r.PathValue("id")
	var (
		c         store.Connection
		err       error
		wasActive bool
	)
	if !b.Name.Set && !b.Active.Set && !b.AllowedCIDRs.Set && !b.PublicTargets.Set {
		c, err = s.db.Connection(id)
	} else {
		c, err = s.db.UpdateConnection(id, func(c *store.Connection) error {
			wasActive = c.Active
			if name, ok := b.Name.value(); ok {
				c.Name = name
			}
			if a, ok := b.Active.value(); ok {
				c.Active = a
			}
			if b.AllowedCIDRs.Set {
				c.AllowedCIDRs = cidrs
			}
			if b.PublicTargets.Set {
				c.PublicTargets = targets
			}
			c.UpdatedAt = s.now()
			return nil
		})
	}
	if err != nil {
		return storeErr("update", "connection", id, err)
	}
	if wasActive && !c.Active {
		// Its credentials stop authenticating (auth refuses them) and lose
		// their registrations and calls now.
		n, err := s.cfg.Lifecycle.EndConnection(c.ID)
		if err != nil {
			return err
		}
		s.log.InfoContext(r.Context(), "connection deactivated", "connection_id", c.ID, "credentials_ended", n)
	}
	writeJSON(w, http.StatusOK, envelope{Data: connectionOut(c)})
	return nil
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.db.DeleteConnection(id); err != nil {
		return storeErr("delete", "connection", id, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
