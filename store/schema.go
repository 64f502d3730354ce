package store

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unsafe"
)

// The whole on-disk schema is in this file: bucket names, key layouts,
// value layouts and the schema version. A change to any of them changes
// this file, and one that old builds cannot read bumps schemaVersion.
//
// Values are a compact binary encoding rather than JSON: CredentialByUsername
// runs on every REGISTER and LoadBindings on every start with up to a
// million bindings. Measured on one record each (Go 1.26, amd64), JSON
// decoded a credential with three HA1s in 3.9us and 22 allocations, this
// encoding in 0.8us and 3; a binding in 4.2us and 17 against 0.4us and 1
// (4s against 0.4s for a million).
//
// Each value begins with a format byte, so that a record type can gain
// fields by bumping its format and decoding the older format with zero
// values for the new fields, without a schema version change; the
// round-trip test fails for a field the codec does not carry. A decoder
// accepts exactly its layout: a short or long value is ErrCorrupt.
// Strings, byte slices and counts are
// varint-length-prefixed; integers are varints; a bool is one byte 0 or 1;
// a time is varint unix seconds then uvarint nanoseconds (UTC, zero time
// included).

// schemaVersion is the version this build writes and the newest it opens.
// 1: the first schema.
const schemaVersion = 1

// Buckets, all at the top level.
var (
	// meta: keySchemaVersion -> uint64 big-endian; keyIDClock -> uint64
	// big-endian, the state of the ID generator (unix ms<<12 | counter of
	// the last ID made, see id.go).
	bucketMeta = []byte("meta")
	// connections: Connection.ID -> Connection (connectionFormat).
	bucketConnections = []byte("connections")
	// credentials: Credential.ID -> Credential (credentialFormat).
	bucketCredentials = []byte("credentials")
	// credential_usernames: Credential.Username -> Credential.ID. Unique:
	// a username names one credential across all connections.
	bucketCredentialUsernames = []byte("credential_usernames")
	// credentials_by_connection: connectionKey(ConnectionID, ID) -> empty.
	// Lists a connection's credentials in ID order, and tells whether a
	// connection is in use.
	bucketCredentialsByConnection = []byte("credentials_by_connection")
	// bindings: AOR -> the AOR's complete binding set (bindingsFormat).
	bucketBindings = []byte("bindings")
	// api_keys: APIKey.ID -> APIKey (apiKeyFormat).
	bucketAPIKeys = []byte("api_keys")
	// numbers: Number.Number (E.164, "+" and digits) -> Number
	// (numberFormat). Added without a schema version change: Open
	// creates it in an older file, which had no numbers.
	bucketNumbers = []byte("numbers")

	allBuckets = [][]byte{
		bucketMeta, bucketConnections, bucketCredentials, bucketCredentialUsernames,
		bucketCredentialsByConnection, bucketBindings, bucketAPIKeys, bucketNumbers,
	}

	keySchemaVersion = []byte("schema_version")
	keyIDClock       = []byte("id_clock")
)

// IDs are the 36-character text of a UUIDv7 (id.go), so that key order is
// creation order. The default connection's ID, "default", is the exception;
// Connections lists it first. IDs supplied by callers are any bytes but NUL,
// at most maxIDLen long.
const maxIDLen = 256

// connectionKey is a credentials_by_connection key: the connection ID, a
// NUL, the credential ID. IDs contain no NUL, so the prefix
// connectionPrefix(conn) selects exactly that connection's credentials.
func connectionKey(conn, cred string) []byte {
	k := make([]byte, 0, len(conn)+1+len(cred))
	k = append(k, conn...)
	k = append(k, 0)
	return append(k, cred...)
}

func connectionPrefix(conn string) []byte {
	return append([]byte(conn), 0)
}

func encodeUint64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}

func decodeUint64(b []byte, what string) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: %s is %d bytes, want 8", ErrCorrupt, what, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Connection format 5: ID, Name, Active, CreatedAt, UpdatedAt,
// AllowedCIDRs (count, then each), PublicTargets (count, then each),
// Kind, PBXURI, CallerIDPolicy, SIPURICallingPreference, MaxCalls,
// MaxRegistrations, OutboundRoutes (count, then per route its Prefix and
// Gateways), GatewayUsername, GatewayPassword, WebhookEventURL,
// WebhookEventFailoverURL, WebhookTimeoutSecs, WebhookSecret. Format 5
// ends before WebhookEventURL, format 4 before OutboundRoutes, format 3 before Kind (a credential connection with the
// defaults), format 2 before PublicTargets, format 1 before
// AllowedCIDRs; all decode with none.
const connectionFormat = 6

func appendConnection(b []byte, c *Connection) []byte {
	e := encoder{b}
	e.byte(connectionFormat)
	e.str(c.ID)
	e.str(c.Name)
	e.bool(c.Active)
	e.time(c.CreatedAt)
	e.time(c.UpdatedAt)
	e.strs(c.AllowedCIDRs)
	e.strs(c.PublicTargets)
	e.str(c.Kind)
	e.str(c.PBXURI)
	e.str(c.CallerIDPolicy)
	e.str(c.SIPURICallingPreference)
	e.uvarint(uint64(max(c.MaxCalls, 0)))
	e.uvarint(uint64(max(c.MaxRegistrations, 0)))
	e.uvarint(uint64(len(c.OutboundRoutes)))
	for _, r := range c.OutboundRoutes {
		e.str(r.Prefix)
		e.strs(r.Gateways)
	}
	e.str(c.GatewayUsername)
	e.str(c.GatewayPassword)
	e.str(c.WebhookEventURL)
	e.str(c.WebhookEventFailoverURL)
	e.uvarint(uint64(max(c.WebhookTimeoutSecs, 0)))
	e.str(c.WebhookSecret)
	return e.b
}

func decodeConnection(c *Connection, v []byte) error {
	d := decoder{s: string(v)}
	format := d.version("connection", connectionFormat)
	*c = Connection{
		ID:        d.str(),
		Name:      d.str(),
		Active:    d.bool(),
		CreatedAt: d.time(),
		UpdatedAt: d.time(),
	}
	if format >= 2 {
		c.AllowedCIDRs = d.strs()
	}
	if format >= 3 {
		c.PublicTargets = d.strs()
	}
	if format >= 4 {
		c.Kind = d.str()
		c.PBXURI = d.str()
		c.CallerIDPolicy = d.str()
		c.SIPURICallingPreference = d.str()
		c.MaxCalls = int(d.uint32())
		c.MaxRegistrations = int(d.uint32())
	}
	if format >= 5 {
		if n := d.count(2); n > 0 {
			c.OutboundRoutes = make([]OutboundRoute, n)
			for i := range c.OutboundRoutes {
				c.OutboundRoutes[i] = OutboundRoute{Prefix: d.str(), Gateways: d.strs()}
			}
		}
		c.GatewayUsername = d.str()
		c.GatewayPassword = d.str()
	}
	if format >= 6 {
		c.WebhookEventURL = d.str()
		c.WebhookEventFailoverURL = d.str()
		c.WebhookTimeoutSecs = int(d.uint32())
		c.WebhookSecret = d.str()
	}
	return d.done()
}

// Number format 1: Number, ConnectionID, CredentialID, CreatedAt,
// UpdatedAt.
const numberFormat = 1

func appendNumber(b []byte, n *Number) []byte {
	e := encoder{b}
	e.byte(numberFormat)
	e.str(n.Number)
	e.str(n.ConnectionID)
	e.str(n.CredentialID)
	e.time(n.CreatedAt)
	e.time(n.UpdatedAt)
	return e.b
}

func decodeNumber(n *Number, v []byte) error {
	d := decoder{s: string(v)}
	d.version("number", numberFormat)
	*n = Number{
		Number:       d.str(),
		ConnectionID: d.str(),
		CredentialID: d.str(),
		CreatedAt:    d.time(),
		UpdatedAt:    d.time(),
	}
	return d.done()
}

// Credential format 2: ID, ConnectionID, Username, Name, Tag, Enabled,
// ExpiresAt, Realm, HA1 (count, then algorithm and hex pairs in algorithm
// order), Algorithms (count, then each), CreatedAt, UpdatedAt,
// TokensNotBefore. Format 1 ends before TokensNotBefore and decodes with
// the zero time.
const credentialFormat = 2

func appendCredential(b []byte, c *Credential) []byte {
	e := encoder{b}
	e.byte(credentialFormat)
	e.str(c.ID)
	e.str(c.ConnectionID)
	e.str(c.Username)
	e.str(c.Name)
	e.str(c.Tag)
	e.bool(c.Enabled)
	e.time(c.ExpiresAt)
	e.str(c.Realm)
	e.uvarint(uint64(len(c.HA1)))
	for _, alg := range slices.Sorted(maps.Keys(c.HA1)) {
		e.str(alg)
		e.str(c.HA1[alg])
	}
	e.strs(c.Algorithms)
	e.time(c.CreatedAt)
	e.time(c.UpdatedAt)
	e.time(c.TokensNotBefore)
	return e.b
}

// decodeCredential makes one allocation for all the strings, one for the
// HA1 map and one for Algorithms when it is not empty. Empty maps and
// slices decode as nil.
func decodeCredential(c *Credential, v []byte) error {
	d := decoder{s: string(v)}
	format := d.version("credential", credentialFormat)
	*c = Credential{
		ID:           d.str(),
		ConnectionID: d.str(),
		Username:     d.str(),
		Name:         d.str(),
		Tag:          d.str(),
		Enabled:      d.bool(),
		ExpiresAt:    d.time(),
		Realm:        d.str(),
	}
	if n := d.count(2); n > 0 {
		c.HA1 = make(map[string]string, n)
		for range n {
			alg := d.str()
			c.HA1[alg] = d.str()
		}
	}
	c.Algorithms = d.strs()
	c.CreatedAt = d.time()
	c.UpdatedAt = d.time()
	if format >= 2 {
		c.TokensNotBefore = d.time()
	}
	return d.done()
}

// Bindings format 2: the AOR, a count, then per binding: ID, CredentialID,
// Contact, Source, Transport, LocalAddr, CallID, CSeq, Expires, UserAgent,
// InstanceID, RegID, RegisteredAt, UpdatedAt, TokenIssuedAt. Format 1
// ends each binding at UpdatedAt, and decodes with a zero TokenIssuedAt.
// Binding.AOR is not repeated: every binding of the set belongs to the
// AOR it was saved under.
const bindingsFormat = 2

func appendBindings(b []byte, aor string, bs []Binding) []byte {
	e := encoder{b}
	e.byte(bindingsFormat)
	e.str(aor)
	e.uvarint(uint64(len(bs)))
	for i := range bs {
		x := &bs[i]
		e.str(x.ID)
		e.str(x.CredentialID)
		e.str(x.Contact)
		e.str(x.Source)
		e.str(x.Transport)
		e.str(x.LocalAddr)
		e.str(x.CallID)
		e.uvarint(uint64(x.CSeq))
		e.time(x.Expires)
		e.str(x.UserAgent)
		e.str(x.InstanceID)
		e.str(x.RegID)
		e.time(x.RegisteredAt)
		e.time(x.UpdatedAt)
		e.time(x.TokenIssuedAt)
	}
	return e.b
}

// decodeBindings appends the set in v to dst. It reads v in place (v
// may be bbolt's memory, valid only in its transaction) and copies out what
// it keeps: every string of the set but three packed into one allocation
// that holds only the strings' bytes, not the encoding around them, and
// Transport, LocalAddr and UserAgent (few distinct values among many
// bindings) shared through in (nil: each copied). At a million bindings
// the table's strings took 309 MB as substrings of a copy of each value,
// 217 MB packed and shared.
func decodeBindings(dst []Binding, v []byte, in *interner) ([]Binding, error) {
	// Not retained: every string decoded from d is copied below.
	d := decoder{s: unsafe.String(unsafe.SliceData(v), len(v))}
	format := d.version("bindings", bindingsFormat)
	aor := d.str()
	// A binding takes at least 17 bytes: 10 string lengths, CSeq and three
	// times of two varints.
	n := d.count(17)
	start := len(dst)
	dst = slices.Grow(dst, n)
	for range n {
		dst = append(dst, Binding{
			AOR:          aor,
			ID:           d.str(),
			CredentialID: d.str(),
			Contact:      d.str(),
			Source:       d.str(),
			Transport:    d.str(),
			LocalAddr:    d.str(),
			CallID:       d.str(),
			CSeq:         d.uint32(),
			Expires:      d.time(),
			UserAgent:    d.str(),
			InstanceID:   d.str(),
			RegID:        d.str(),
			RegisteredAt: d.time(),
			UpdatedAt:    d.time(),
		})
		if format >= 2 {
			dst[len(dst)-1].TokenIssuedAt = d.time()
		}
	}
	if err := d.done(); err != nil {
		clear(dst[start:]) // no reference to v may outlive the call
		return dst[:start], err
	}
	packBindings(dst[start:], aor, in)
	return dst, nil
}

// packBindings replaces every string of bs (decoded in place, AOR aor) by
// a copy: the shared ones through in, the rest in one allocation.
func packBindings(bs []Binding, aor string, in *interner) {
	total := len(aor)
	for i := range bs {
		b := &bs[i]
		b.Transport = in.get(b.Transport)
		b.LocalAddr = in.get(b.LocalAddr)
		b.UserAgent = in.get(b.UserAgent)
		for _, p := range b.ownStrings() {
			total += len(*p)
		}
	}
	var sb strings.Builder
	sb.Grow(total)
	sb.WriteString(aor)
	for i := range bs {
		for _, p := range bs[i].ownStrings() {
			sb.WriteString(*p)
		}
	}
	all := sb.String()
	off := 0
	next := func(n int) string {
		v := all[off : off+n]
		off += n
		return v
	}
	aor = next(len(aor))
	for i := range bs {
		b := &bs[i]
		b.AOR = aor
		for _, p := range b.ownStrings() {
			*p = next(len(*p))
		}
	}
}

// ownStrings are the strings of a binding that packBindings packs.
func (b *Binding) ownStrings() [7]*string {
	return [7]*string{&b.ID, &b.CredentialID, &b.Contact, &b.Source, &b.CallID, &b.InstanceID, &b.RegID}
}

// interner shares copies of repeated strings, up to max distinct values;
// a nil interner (or a full one, for a new value) copies.
type interner struct {
	m   map[string]string
	max int
}

func newInterner(max int) *interner { return &interner{m: make(map[string]string), max: max} }

func (in *interner) get(s string) string {
	switch s {
	case "":
		return ""
	case "udp":
		return "udp"
	case "tcp":
		return "tcp"
	case "tls":
		return "tls"
	}
	if in == nil {
		return strings.Clone(s)
	}
	if v, ok := in.m[s]; ok {
		return v
	}
	v := strings.Clone(s)
	if len(in.m) < in.max {
		in.m[v] = v
	}
	return v
}

// APIKey format 2: ID, Name, Hash, CreatedAt, Scope. Format 1 ends before
// Scope and decodes as ScopeAdmin (every key was an admin key).
const apiKeyFormat = 2

func appendAPIKey(b []byte, k *APIKey) []byte {
	e := encoder{b}
	e.byte(apiKeyFormat)
	e.str(k.ID)
	e.str(k.Name)
	e.bytes(k.Hash)
	e.time(k.CreatedAt)
	e.str(k.Scope)
	return e.b
}

func decodeAPIKey(k *APIKey, v []byte) error {
	d := decoder{s: string(v)}
	format := d.version("api key", apiKeyFormat)
	*k = APIKey{
		ID:        d.str(),
		Name:      d.str(),
		Hash:      d.bytes(),
		CreatedAt: d.time(),
		Scope:     ScopeAdmin,
	}
	if format >= 2 {
		k.Scope = d.str()
	}
	return d.done()
}

// checkID validates an ID supplied by a caller.
func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty id", ErrInvalid)
	case len(id) > maxIDLen:
		return fmt.Errorf("%w: id longer than %d bytes", ErrInvalid, maxIDLen)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%w: id contains a NUL byte", ErrInvalid)
	}
	return nil
}
