package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/sipwarden/sipwarden/guard"
)

// Bans lists and lifts the bans of the SIP brute-force guard: a single
// node's (LocalBans), or a cluster's.
type Bans interface {
	// Bans lists the live bans.
	Bans() []guard.Ban
	// Lift ends the ban of the source holding addr and reports whether
	// there was one; an error (a cluster's Redis down) lifts nothing.
	Lift(addr netip.Addr) (bool, error)
}

// LocalBans are a single node's bans: its guard's.
type LocalBans struct{ *guard.Guard }

// Lift ends the guard's ban of addr's source.
func (b LocalBans) Lift(addr netip.Addr) (bool, error) { return b.Guard.Lift(addr), nil }

// KeyAttempts limits failed API key attempts per source address.
// *guard.Guard satisfies it.
type KeyAttempts interface {
	// Banned reports whether addr is blocked, and until when.
	Banned(addr netip.Addr) (until time.Time, banned bool)
	// Failure counts a failed attempt from addr.
	Failure(addr netip.Addr, user, reason string) bool
}

// Ban is a banned source as the API shows it.
type Ban struct {
	// IP is the banned address; for IPv6 the first address of the banned
	// /64. DELETE /v1/bans/{ip} takes it (or any address of the /64).
	IP string `json:"ip"`
	// Prefix is what is banned: ip/32, or the IPv6 /64.
	Prefix   string    `json:"prefix"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"`
}

func banOut(b guard.Ban) Ban {
	return Ban{IP: b.Source.Addr().String(), Prefix: b.Source.String(), Reason: b.Reason,
		Since: b.Since.UTC(), Until: b.Until.UTC(), Failures: b.Failures}
}

// listBans answers GET /v1/bans: the live bans ordered by address, paged
// by the last address shown.
func (s *Server) listBans(w http.ResponseWriter, r *http.Request) error {
	_, p, err := readQuery(r)
	if err != nil {
		return err
	}
	var after netip.Addr
	if p.after != "" {
		if after, err = netip.ParseAddr(p.after); err != nil {
			return paramError(paramPageAfter, "page[after] is not a cursor this API returned")
		}
	}
	var bans []guard.Ban
	if s.cfg.Bans != nil {
		bans = s.cfg.Bans.Bans()
	}
	slices.SortFunc(bans, func(a, b guard.Ban) int { return a.Source.Addr().Compare(b.Source.Addr()) })
	start := 0
	if after.IsValid() {
		start, _ = slices.BinarySearchFunc(bans, after, func(b guard.Ban, a netip.Addr) int { return b.Source.Addr().Compare(a) })
		if start < len(bans) && bans[start].Source.Addr() == after {
			start++
		}
	}
	end := min(start+p.size, len(bans))
	out := make([]Ban, 0, end-start)
	for _, b := range bans[start:end] {
		out = append(out, banOut(b))
	}
	next := ""
	if end < len(bans) && len(out) > 0 {
		next = out[len(out)-1].IP
	}
	writeList(w, out, next, p.size)
	return nil
}

// liftBan answers DELETE /v1/bans/{ip}.
func (s *Server) liftBan(w http.ResponseWriter, r *http.Request) error {
	raw := r.PathValue("ip")
	addr, err := netip.ParseAddr(raw)
	if err != nil || addr.Zone() != "" {
		e := &Error{Status: statusUnprocessable, Errors: []ErrorObject{{
			Code: CodeInvalidValue, Title: titles[CodeInvalidValue],
			Detail: fmt.Sprintf("ip must be an IPv4 or IPv6 address such as 192.0.2.7, not %q", truncate(raw, 64)),
			Source: &ErrorSource{Parameter: "ip"},
		}}}
		return e
	}
	lifted := false
	if s.cfg.Bans != nil {
		if lifted, err = s.cfg.Bans.Lift(addr); err != nil {
			return err // a cluster's Redis: 503, nothing lifted
		}
	}
	if !lifted {
		return newError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no ban for %s", addr))
	}
	s.log.Info("ban lifted", "source", addr.String())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// keyBlocked answers 429 when the request's address has failed too many
// API key attempts, before its key is looked at; it reports whether it did.
func (s *Server) keyBlocked(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.KeyAttempts == nil {
		return false
	}
	addr, ok := remoteAddr(r)
	if !ok {
		return false
	}
	until, blocked := s.cfg.KeyAttempts.Banned(addr)
	if !blocked {
		return false
	}
	secs := max(int((until.Sub(s.now())+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, newError(http.StatusTooManyRequests, CodeTooManyAttempts,
		fmt.Sprintf("too many failed API key attempts from %s; retry after %d seconds", addr, secs)))
	return true
}

// keyFailed counts a failed API key attempt.
func (s *Server) keyFailed(r *http.Request) {
	if s.cfg.KeyAttempts == nil {
		return
	}
	if addr, ok := remoteAddr(r); ok && s.cfg.KeyAttempts.Failure(addr, "", "api_key") {
		s.log.Warn("API clients blocked after failed key attempts", "source", addr.String())
	}
}

func remoteAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
