package store

import "errors"

// Errors returned by DB methods, wrapped with the operation and the record
// concerned: test for them with errors.Is.
var (
	// ErrNotFound is returned when the record a call names does not exist:
	// Connection, Credential, CredentialByUsername, APIKey and the Update
	// and Delete methods.
	ErrNotFound = errors.New("store: not found")

	// ErrUsernameTaken is returned by CreateCredential when another
	// credential, in any connection, has the username.
	ErrUsernameTaken = errors.New("store: username already taken")

	// ErrConnectionNotFound is returned by CreateCredential and
	// UpdateCredential when the credential's ConnectionID names no
	// connection. It is not ErrNotFound: the credential call is about a
	// record that exists, the reference in it is what is wrong.
	ErrConnectionNotFound = errors.New("store: connection not found")

	// ErrCredentialNotFound is returned by CreateNumber and UpdateNumber
	// when the number's CredentialID names no credential of its
	// connection.
	ErrCredentialNotFound = errors.New("store: credential not found in the connection")

	// ErrConnectionInUse is returned by DeleteConnection while credentials
	// or numbers belong to the connection.
	ErrConnectionInUse = errors.New("store: connection has credentials")

	// ErrDefaultConnection is returned by DeleteConnection for the default
	// connection, which always exists.
	ErrDefaultConnection = errors.New("store: the default connection cannot be deleted")

	// ErrExists is returned by the Create methods when the caller supplied
	// an ID that is already in use.
	ErrExists = errors.New("store: id already exists")

	// ErrInvalid is returned by the Create and Update methods for a record
	// the store cannot keep: an empty username, an ID with a NUL byte, a key
	// longer than bbolt allows.
	ErrInvalid = errors.New("store: invalid record")

	// ErrLocked is returned by Open when another process (or another DB in
	// this process) has the database file open.
	ErrLocked = errors.New("store: database is locked by another process")

	// ErrSchemaTooNew is returned by Open for a database written by a newer
	// sipwarden, whose schema this build does not know.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this build supports")

	// ErrCorrupt is returned when a stored value cannot be decoded or an
	// index points to a record that does not exist. Check reports it too.
	ErrCorrupt = errors.New("store: corrupt record")
)
