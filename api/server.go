package api

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sipwarden/sipwarden/lifecycle"
	"github.com/sipwarden/sipwarden/store"
)

// Config configures a Server. The zero value of each field means its
// default.
type Config struct {
	// Realm is the digest realm the HA1 values of new passwords are
	// computed for. Required.
	Realm string
	// MinPasswordLength in characters. Default 12.
	MinPasswordLength int
	// MaxBodyBytes bounds request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// AdminKeyFile is where the admin key created on first start is written
	// (mode 0600), e.g. <data_dir>/admin.key.
	AdminKeyFile string
	// AdminKey, when set (config or SIPWARDEN_API_KEY), is accepted as an
	// admin key, and no key file is generated.
	AdminKey string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Bans, when set, backs GET /v1/bans and DELETE /v1/bans/{ip} (bans.go).
	Bans Bans
	// KeyAttempts, when set, blocks addresses after failed API keys: a
	// blocked address gets 429 for every request that needs a key, without
	// its key being checked. Exemptions are the KeyAttempts' own.
	KeyAttempts KeyAttempts
	// Lifecycle ends what a credential holds when it stops being valid and
	// watches expiries. Required.
	Lifecycle Lifecycle
}

// Lifecycle is told of credentials that stop being valid, or whose expiry
// may have changed: *lifecycle.Keeper.
type Lifecycle interface {
	// End removes the bindings of c and ends its calls, and returns once
	// the removal is durable.
	End(c store.Credential, why lifecycle.Reason) error
	// EndConnection ends every credential of a deactivated connection.
	EndConnection(connectionID string) (int, error)
	// Watch schedules c's expiry (ending it at once when it has passed).
	Watch(c store.Credential)
	// Prune removes the bindings of c that drop reports (a revoked
	// token's), and PruneConnection those of every credential of a
	// connection (outside its narrowed allowed_cidrs).
	Prune(c store.Credential, why lifecycle.Reason, drop func(store.Binding) bool) error
	PruneConnection(connectionID string, why lifecycle.Reason, drop func(store.Binding) bool) (int, error)
}

const (
	defaultMinPasswordLength = 12
	maxPasswordLength        = 1024
	defaultMaxBodyBytes      = 1 << 20
)

// Locations is the live location table the API shows and prunes. The
// registrar's *Location satisfies it.
type Locations interface {
	// Bindings lists the unexpired bindings of aor, or of every AOR when
	// aor is "". The caller may keep but must not modify the slice.
	Bindings(aor string) []store.Binding
	// Sync makes the removals durable (the store writes bindings in
	// batches; a cluster's node writes them to Redis); a DELETE answers
	// only after it.
	Sync() error
	// Writable returns nil when a removal can be stored now; an error
	// (503: a cluster's Redis is down) refuses a DELETE before anything
	// is removed.
	Writable() error
	// RemoveBinding removes one binding by ID and reports whether it
	// existed.
	RemoveBinding(id string) (store.Binding, bool)
}

// Server is the HTTP management API.
type Server struct {
	cfg       Config
	db        *store.DB
	locs      Locations
	log       *slog.Logger
	now       func() time.Time
	adminHash []byte // SHA-256 of cfg.AdminKey; nil when none
	mux       *http.ServeMux
	calls     Calls
	minter    Minter
	webhooks  WebhookLog // SetWebhookLog; nil: no deliveries listed
	keys      KeySet
	level     LevelVar        // HandleLogLevel; nil: the log-level routes answer 404
	public    map[string]bool // patterns served without an API key, from routeTable
	adminOnly map[string]bool // GET patterns a read key may not use (adminOnlyReads)
	// newUsername draws a username for a credential created without one:
	// generateUsername; a test makes it collide.
	newUsername func() string
}

// New returns the API server. On first start (no API key in the store and
// no cfg.AdminKey) it creates an admin key and writes it to
// cfg.AdminKeyFile; the log names the file, never the key. logger nil
// discards.
func New(cfg Config, db *store.DB, locs Locations, logger *slog.Logger) (*Server, error) {
	if cfg.Realm == "" {
		return nil, fmt.Errorf("api: empty realm")
	}
	if db == nil || locs == nil || cfg.Lifecycle == nil {
		return nil, fmt.Errorf("api: nil store, location table or lifecycle")
	}
	if cfg.MinPasswordLength <= 0 {
		cfg.MinPasswordLength = defaultMinPasswordLength
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, db: db, locs: locs, log: logger, now: cfg.Now, newUsername: generateUsername}
	if cfg.AdminKey != "" {
		h := sha256.Sum256([]byte(cfg.AdminKey))
		s.adminHash = h[:]
	}
	if err := s.ensureAdminKey(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// route is one route of the API: the pattern http.ServeMux reads
// ("METHOD /path/{wildcard}"), whether it is served without an API key,
// and its handler.
type route struct {
	pattern string
	public  bool
	handler http.Handler
}

// routeTable is every route of the API, in one place: routes registers
// exactly these, and the tests check api/openapi.json against them (every
// route documented, every documented operation routed, its query
// parameters those of routeQuery).
func (s *Server) routeTable() []route {
	return []route{
		{"GET /healthz", true, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})},
		{"GET /v1/openapi.json", true, http.HandlerFunc(serveOpenAPI)}, // openapi.go
		{"GET /v1/jwks", true, http.HandlerFunc(s.jwks)},

		{"POST /v1/connections", false, s.h(s.createConnection)},
		{"GET /v1/connections", false, s.h(s.listConnections)},
		{"GET /v1/connections/{id}", false, s.h(s.getConnection)},
		{"PATCH /v1/connections/{id}", false, s.h(s.updateConnection)},
		{"DELETE /v1/connections/{id}", false, s.h(s.deleteConnection)},
		{"GET /v1/connections/{id}/webhook_deliveries", false, s.h(s.listWebhookDeliveries)},
		{"POST /v1/connections/{id}/actions/rotate_webhook_secret", false, s.h(s.rotateWebhookSecret)},
		{"POST /v1/numbers", false, s.h(s.createNumber)},
		{"GET /v1/numbers", false, s.h(s.listNumbers)},
		{"GET /v1/numbers/{number}", false, s.h(s.getNumber)},
		{"PATCH /v1/numbers/{number}", false, s.h(s.updateNumber)},
		{"DELETE /v1/numbers/{number}", false, s.h(s.deleteNumber)},

		{"POST /v1/credentials", false, s.h(s.createCredential)},
		{"GET /v1/credentials", false, s.h(s.listCredentials)},
		{"GET /v1/credentials/{id}", false, s.h(s.getCredential)},
		{"PATCH /v1/credentials/{id}", false, s.h(s.updateCredential)},
		{"DELETE /v1/credentials/{id}", false, s.h(s.deleteCredential)},

		{"GET /v1/registrations", false, s.h(s.listRegistrations)},
		{"DELETE /v1/registrations/{id}", false, s.h(s.deleteRegistration)},

		{"GET /v1/calls", false, s.h(s.listCalls)},

		{"POST /v1/credentials/{id}/token", false, s.h(s.createToken)},
		{"POST /v1/credentials/{id}/actions/revoke_tokens", false, s.h(s.revokeTokens)},
		{"GET /v1/bans", false, s.h(s.listBans)},
		{"DELETE /v1/bans/{ip}", false, s.h(s.liftBan)},

		{"GET /v1/log-level", false, s.h(s.getLogLevel)}, // loglevel.go
		{"PUT /v1/log-level", false, s.h(s.putLogLevel)},

		{"DELETE /v1/calls/{id}", false, s.h(s.hangupCall)}, // calls.go
		{"POST /v1/api-keys", false, s.h(s.createAPIKey)},   // apikeys.go
		{"GET /v1/api-keys", false, s.h(s.listAPIKeys)},
		{"DELETE /v1/api-keys/{id}", false, s.h(s.deleteAPIKey)},
		// Backup and export take as long as the store is large: past the
		// listener's read and write deadlines.
		{"GET /v1/backup", false, LiftDeadlines(s.h(s.backup))}, // transfer.go
		{"GET /v1/export", false, LiftDeadlines(s.h(s.export))},
		{"POST /v1/import", false, s.h(s.importCredentials)},
	}
}

// adminOnlyReads are the GET routes a read-only key may not use: they hand
// out HA1s (backup, export) or list the API keys. Every other route but a
// GET needs an admin key too.
func adminOnlyReads() []string {
	return []string{"GET /v1/api-keys", "GET /v1/backup", "GET /v1/export"}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	s.public = map[string]bool{}
	s.adminOnly = map[string]bool{}
	for _, p := range adminOnlyReads() {
		s.adminOnly[p] = true
	}
	for _, r := range s.routeTable() {
		m.Handle(r.pattern, acceptQuery(r.pattern, r.handler)) // query.go
		if r.public {
			s.public[r.pattern] = true
		}
	}
	s.mux = m
}

// serveHTTP authenticates (all but the public routes), routes, turns the mux's own
// 404 and 405 into JSON errors, and logs the request once it is done.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer func() { s.logRequest(r, rec, time.Since(start)) }()

	h, pattern := s.mux.Handler(r)
	if !s.public[pattern] {
		// A blocked address gets 429 whatever key it sends, the right one
		// included, and its key is not even compared: were the right key
		// answered 200, a 429 would only mean "wrong" and the guessing
		// would go on at full speed. An operator who must never be locked
		// out lists his addresses in guard.exempt_cidrs (never counted,
		// so never blocked); anyone else waits limits.api_key_block.
		if s.keyBlocked(rec, r) { // bans.go
			return
		}
		scope, ok, err := s.authenticate(r)
		if err != nil {
			rec.err = err
			writeError(rec, newError(http.StatusInternalServerError, CodeInternal, "the server failed to check the API key; see its log"))
			return
		}
		if !ok {
			// Only a request that sends a key guesses one: those without
			// (a browser's /apple-touch-icon.png, a health check at the
			// wrong path, a CORS preflight) are not counted, or they
			// would block the operator's own address.
			if r.Header.Get("Authorization") != "" {
				s.keyFailed(r)
			}
			rec.Header().Set("WWW-Authenticate", `Bearer realm="sipwarden"`)
			detail := "send an API key as Authorization: Bearer <key>"
			if r.Header.Get("Authorization") != "" {
				detail = "the API key is not valid"
			}
			writeError(rec, newError(http.StatusUnauthorized, CodeUnauthorized, detail))
			return
		}
		if pattern != "" && !s.allowed(scope, pattern, r) {
			writeError(rec, newError(http.StatusForbidden, CodeForbidden,
				fmt.Sprintf("a %s key may not %s %s: use an admin key", scope, r.Method, r.URL.Path)))
			return
		}
	}
	if pattern == "" {
		// The mux's "404 page not found" or "405 method not allowed"
		// (with Allow): keep the status and headers, answer in JSON.
		c := &capture{header: http.Header{}}
		h.ServeHTTP(c, r)
		if allow := c.header.Get("Allow"); allow != "" {
			rec.Header().Set("Allow", allow)
		}
		switch c.status {
		case http.StatusMethodNotAllowed:
			writeError(rec, newError(c.status, CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, c.header.Get("Allow"))))
		default:
			writeError(rec, newError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
		}
		return
	}
	// w, not rec: MaxBytesReader tells the real writer to close the
	// connection after an oversized body.
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	s.mux.ServeHTTP(rec, r)
}

func (s *Server) logRequest(r *http.Request, rec *recorder, d time.Duration) {
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.statusCode()),
		slog.Float64("duration_s", d.Seconds()),
		slog.String("remote", r.RemoteAddr),
	}
	level := slog.LevelInfo
	switch {
	case rec.err != nil:
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", rec.err.Error()))
	case r.URL.Path == "/healthz":
		level = slog.LevelDebug
	}
	s.log.LogAttrs(r.Context(), level, "api request", attrs...)
}

// h adapts a handler that returns an error; the error is answered in JSON
// and, when it is a server fault, recorded for the request log.
func (s *Server) h(f func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := f(w, r)
		if err == nil {
			return
		}
		e, internal := asAPIError(err)
		if internal {
			if rec, ok := w.(*recorder); ok {
				rec.err = err
			}
		}
		writeError(w, e)
	})
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, e)
}

// recorder remembers the status written and a server fault to log.
type recorder struct {
	http.ResponseWriter
	status int
	err    error
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// capture is a ResponseWriter that keeps only the status and headers.
type capture struct {
	header http.Header
	status int
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(b), nil
}

// LiftDeadlines returns h with its connection's read and write deadlines
// lifted, for a handler that may rightly take longer than the HTTP server
// allows every request (a backup of a large store, a CPU profile): the
// write deadline would cut its answer. The read deadline goes too, so
// that nothing of the connection expires under the handler. Only for
// handlers an admin key (or a private listener) reaches.
func LiftDeadlines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// http.ErrNotSupported (a test's recorder): no deadline to lift.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(w, r)
	})
}
