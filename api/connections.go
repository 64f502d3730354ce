package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/sipwarden/sipwarden/auth"
	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/sipuri"
	"github.com/sipwarden/sipwarden/store"
)

type connectionBody struct {
	Name          optional[string]   `json:"name"`
	Active        optional[bool]     `json:"active"`
	AllowedCIDRs  optional[[]string] `json:"allowed_cidrs"`
	PublicTargets optional[[]string] `json:"public_targets"`
	// Kind is set at creation only.
	Kind                    optional[string]              `json:"kind"`
	PBXURI                  optional[string]              `json:"pbx_uri"`
	CallerIDPolicy          optional[string]              `json:"caller_id_policy"`
	SIPURICallingPreference optional[string]              `json:"sip_uri_calling_preference"`
	MaxCalls                optional[connLimit]           `json:"max_calls"`
	MaxRegistrations        optional[connLimit]           `json:"max_registrations"`
	OutboundRoutes          optional[[]outboundRouteBody] `json:"outbound_routes"`
	GatewayUsername         optional[string]              `json:"gateway_username"`
	GatewayPassword         optional[string]              `json:"gateway_password"`
	WebhookEventURL         optional[string]              `json:"webhook_event_url"`
	WebhookEventFailoverURL optional[string]              `json:"webhook_event_failover_url"`
	WebhookTimeoutSecs      optional[timeoutSecs]         `json:"webhook_timeout_secs"`
}

// connLimit is max_calls or max_registrations, and timeoutSecs
// webhook_timeout_secs: integers whose range checkStrict gives when the
// number sent is not an integer (bounded); checkPolicy and checkWebhooks
// refuse an integer out of it.
type (
	connLimit   int
	timeoutSecs int
)

func (connLimit) bounds() (lo, hi int)   { return 0, maxConnectionLimit }
func (timeoutSecs) bounds() (lo, hi int) { return 0, maxWebhookTimeout }

type outboundRouteBody struct {
	// Prefix is required: "" (given) routes every number, so a route
	// whose "prefix" key is missing, or misspelt, must not become one.
	Prefix   optional[string] `json:"prefix"`
	Gateways []string         `json:"gateways"`
}

// Bounds of a connection's outbound routes.
const (
	maxOutboundRoutes  = 50
	maxRouteGateways   = 10
	maxGatewayCredsLen = 128
)

// checkOutbound validates outbound routes and gateway credentials.
func (v *validation) checkOutbound(b *connectionBody) []store.OutboundRoute {
	if s, ok := b.GatewayUsername.value(); ok && (len(s) > maxGatewayCredsLen || strings.ContainsAny(s, "\"\r\n\x00")) {
		v.add("/gateway_username", CodeInvalidValue, "gateway_username must be at most %d bytes without quotes or line breaks", maxGatewayCredsLen)
	}
	if s, ok := b.GatewayPassword.value(); ok && (len(s) > maxGatewayCredsLen || strings.ContainsAny(s, "\r\n\x00")) {
		v.add("/gateway_password", CodeInvalidValue, "gateway_password must be at most %d bytes without line breaks", maxGatewayCredsLen)
	}
	l, ok := b.OutboundRoutes.value()
	if !ok || len(l) == 0 {
		return nil
	}
	if len(l) > maxOutboundRoutes {
		v.add("/outbound_routes", CodeTooLong, "outbound_routes holds more than %d routes", maxOutboundRoutes)
		return nil
	}
	out := make([]store.OutboundRoute, 0, len(l))
	seen := map[string]bool{}
	for i, r := range l {
		ptr := "/outbound_routes/" + strconv.Itoa(i)
		prefix, given := r.Prefix.value()
		switch {
		case !given:
			v.add(ptr+"/prefix", CodeRequired, "prefix is required: the start of the numbers the route takes, such as +1, or \"\" for every number")
		case len(prefix) > 32 || strings.ContainsAny(prefix, " \"<>;@:\r\n\x00"):
			v.add(ptr+"/prefix", CodeInvalidValue, "prefix must be at most 32 characters of a SIP user part, such as +1 or 00, not %q", truncate(prefix, 40))
		case seen[prefix]:
			v.add(ptr+"/prefix", CodeInvalidValue, "prefix %q is routed twice", truncate(prefix, 40))
		}
		seen[prefix] = true
		switch {
		case len(r.Gateways) == 0:
			v.add(ptr+"/gateways", CodeRequired, "a route needs at least one gateway")
		case len(r.Gateways) > maxRouteGateways:
			v.add(ptr+"/gateways", CodeTooLong, "a route has at most %d gateways", maxRouteGateways)
		}
		for j, g := range r.Gateways {
			if err := checkHop(g); err != nil {
				v.add(ptr+"/gateways/"+strconv.Itoa(j), CodeInvalidValue, "gateway must be a sip: or sips: URI such as sip:192.0.2.10:5060;transport=tcp: %v", err)
			}
		}
		out = append(out, store.OutboundRoute{Prefix: prefix, Gateways: r.Gateways})
	}
	return out
}

// checkHop validates the URI of a next hop (a gateway, pbx_uri) as the
// proxy will read it (sipuri.Hop), and its port strictly: Hop reads
// sip:192.0.2.1:0 as port 0, sip:gw:5060abc as port 5060 and
// sip:[2001:db8::1]:99999 as the host "2001:db8::1]:99999".
func checkHop(uri string) error {
	if _, _, _, err := sipuri.Hop(uri); err != nil {
		return err
	}
	_, rest, _ := strings.Cut(strings.TrimSpace(uri), ":") // after the scheme Hop checked
	hostport, _, _ := strings.Cut(rest, ";")
	var port string
	var has bool
	if inside, ok := strings.CutPrefix(hostport, "["); ok {
		_, after, _ := strings.Cut(inside, "]")
		if port, has = strings.CutPrefix(after, ":"); !has && after != "" {
			return fmt.Errorf("%q after the IPv6 address: want :port", truncate(after, 16))
		}
	} else if strings.Count(hostport, ":") == 1 {
		_, port, has = strings.Cut(hostport, ":")
	}
	if has {
		return checkPort(port)
	}
	return nil
}

// checkPort checks a URI's port: digits only, 1 to 65535.
func checkPort(port string) error {
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", truncate(port, 16))
	}
	return nil
}

// policy holds the validated policy fields of a connection body.
type policy struct {
	pbxURI, callerID, uriCalling string
	maxCalls, maxRegs            int
	routes                       []store.OutboundRoute
}

// checkPolicy validates the policy fields the body sets.
func (v *validation) checkPolicy(b *connectionBody) policy {
	var out policy
	out.routes = v.checkOutbound(b)
	if s, ok := b.PBXURI.value(); ok && s != "" {
		if err := checkHop(s); err != nil {
			v.add("/pbx_uri", CodeInvalidValue, "pbx_uri must be a sip: or sips: URI of a host such as sip:192.0.2.10:5060;transport=tcp: %v", err)
		}
		out.pbxURI = s
	}
	if s, ok := b.CallerIDPolicy.value(); ok {
		switch s {
		case "", store.CallerIDUsername, store.CallerIDConnectionNumbers, store.CallerIDAny:
			out.callerID = s
		default:
			v.add("/caller_id_policy", CodeInvalidValue, "caller_id_policy must be username, connection_numbers or any, not %q", truncate(s, 32))
		}
	}
	if s, ok := b.SIPURICallingPreference.value(); ok {
		switch s {
		case "", store.URICallingDisabled, store.URICallingInternal, store.URICallingUnrestricted:
			out.uriCalling = s
		default:
			v.add("/sip_uri_calling_preference", CodeInvalidValue, "sip_uri_calling_preference must be disabled, internal or unrestricted, not %q", truncate(s, 32))
		}
	}
	for _, f := range []struct {
		name string
		o    optional[connLimit]
		dst  *int
	}{{"max_calls", b.MaxCalls, &out.maxCalls}, {"max_registrations", b.MaxRegistrations, &out.maxRegs}} {
		if n, ok := f.o.value(); ok {
			if n < 0 || n > maxConnectionLimit {
				v.add("/"+f.name, CodeInvalidValue, "%s must be from 0 (no limit) to %d, not %d", f.name, maxConnectionLimit, n)
			}
			*f.dst = int(n)
		}
	}
	return out
}

// maxConnectionLimit bounds max_calls and max_registrations.
const maxConnectionLimit = 1_000_000

// apply sets the policy fields the body set on c.
func (pol policy) apply(b *connectionBody, c *store.Connection) {
	if b.PBXURI.Set {
		c.PBXURI = pol.pbxURI
	}
	if b.CallerIDPolicy.Set {
		c.CallerIDPolicy = pol.callerID
	}
	if b.SIPURICallingPreference.Set {
		c.SIPURICallingPreference = pol.uriCalling
	}
	if b.MaxCalls.Set {
		c.MaxCalls = pol.maxCalls
	}
	if b.MaxRegistrations.Set {
		c.MaxRegistrations = pol.maxRegs
	}
	if b.OutboundRoutes.Set {
		c.OutboundRoutes = pol.routes
	}
	if b.GatewayUsername.Set {
		c.GatewayUsername, _ = b.GatewayUsername.value()
	}
	if b.GatewayPassword.Set {
		c.GatewayPassword, _ = b.GatewayPassword.value()
	}
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
	kind := store.ConnectionCredential
	if k, ok := b.Kind.value(); ok {
		switch k {
		case store.ConnectionCredential, store.ConnectionIP:
			kind = k
		default:
			v.add("/kind", CodeInvalidValue, "kind must be credential or ip, not %q", truncate(k, 32))
		}
	}
	if kind == store.ConnectionIP && len(cidrs) == 0 && !b.AllowedCIDRs.Set {
		v.add("/allowed_cidrs", CodeRequired, "an ip connection is authenticated by its addresses: allowed_cidrs must list them")
	} else if kind == store.ConnectionIP && len(cidrs) == 0 {
		v.add("/allowed_cidrs", CodeTooShort, "an ip connection is authenticated by its addresses: allowed_cidrs must list at least one")
	} else if ptr, msg := ipConnectionTooBroad(cidrs); kind == store.ConnectionIP && msg != "" {
		v.add(ptr, CodeInvalidValue, "%s", msg)
	}
	pol := v.checkPolicy(&b)
	v.checkWebhooks(r.Context(), &b)
	if err := v.err(); err != nil {
		return err
	}
	now := s.now()
	c := store.Connection{Name: name, Active: active, AllowedCIDRs: cidrs, PublicTargets: targets, Kind: kind,
		CreatedAt: now, UpdatedAt: now}
	pol.apply(&b, &c)
	secret, err := applyWebhooks(&b, &c)
	if err != nil {
		return err
	}
	c, err = s.db.CreateConnection(c)
	if err != nil {
		return fmt.Errorf("create connection: %w", err)
	}
	out := connectionOut(c)
	out.WebhookSecret = secret // shown once
	w.Header().Set("Location", "/v1/connections/"+c.ID)
	writeJSON(w, http.StatusCreated, envelope{Data: out})
	return nil
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	_, p, err := readQuery(r)
	if err != nil {
		return err
	}
	if err := checkCursor(p, func(id string) bool { return id == store.DefaultConnectionID || isUUID(id) }); err != nil {
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
	if b.Kind.Set {
		v.add("/kind", CodeInvalidValue, "kind is set when a connection is created and cannot change")
	}
	pol := v.checkPolicy(&b)
	v.checkWebhooks(r.Context(), &b)
	if err := v.err(); err != nil {
		return err
	}
	id := r.PathValue("id")
	var secret string
	var (
		c         store.Connection
		err       error
		wasActive bool
	)
	if !b.Name.Set && !b.Active.Set && !b.AllowedCIDRs.Set && !b.PublicTargets.Set && !b.PBXURI.Set &&
		!b.CallerIDPolicy.Set && !b.SIPURICallingPreference.Set && !b.MaxCalls.Set && !b.MaxRegistrations.Set &&
		!b.OutboundRoutes.Set && !b.GatewayUsername.Set && !b.GatewayPassword.Set &&
		!b.WebhookEventURL.Set && !b.WebhookEventFailoverURL.Set && !b.WebhookTimeoutSecs.Set {
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
			if c.Kind == store.ConnectionIP && len(c.AllowedCIDRs) == 0 {
				return &Error{Status: statusUnprocessable, Errors: []ErrorObject{fieldError("/allowed_cidrs", CodeTooShort,
					"an ip connection is authenticated by its addresses: allowed_cidrs must list at least one")}}
			}
			if ptr, msg := ipConnectionTooBroad(c.AllowedCIDRs); c.Kind == store.ConnectionIP && msg != "" {
				return &Error{Status: statusUnprocessable, Errors: []ErrorObject{fieldError(ptr, CodeInvalidValue, msg)}}
			}
			pol.apply(&b, c)
			var err error
			if secret, err = applyWebhooks(&b, c); err != nil {
				return err
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
	} else if b.AllowedCIDRs.Set && c.Active && len(c.AllowedCIDRs) > 0 {
		// Registrations from an address the list no longer holds would not
		// authenticate again: they end now, not at their next refresh.
		allowed := c.AllowedCIDRs
		n, err := s.cfg.Lifecycle.PruneConnection(c.ID, lifecycle.OutsideAllowedCIDRs,
			func(b store.Binding) bool { return !auth.SourceAllowed(allowed, b.Source) })
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.InfoContext(r.Context(), "registrations outside allowed_cidrs removed", "connection_id", c.ID, "bindings", n)
		}
	}
	out := connectionOut(c)
	out.WebhookSecret = secret // shown once, when made
	writeJSON(w, http.StatusOK, envelope{Data: out})
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
