package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// BatchError is returned by CreateCredentials: the credential at Index
// (0-based) could not be created, and nothing of the batch was.
type BatchError struct {
	Index int
	Err   error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("credential %d of the batch: %v", e.Index, e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// CreateCredentials creates every credential of cs in one transaction,
// fsynced before it returns: all of them, or none and a *BatchError naming
// the first that failed (wrapping ErrUsernameTaken, ErrConnectionNotFound,
// ErrExists or ErrInvalid as CreateCredential would). It returns them as
// stored, in the order given.
func (db *DB) CreateCredentials(cs []Credential) ([]Credential, error) {
	for i, c := range cs {
		if err := checkUsername(c.Username); err != nil {
			return nil, &BatchError{Index: i, Err: fmt.Errorf("create credential: %w", err)}
		}
		if c.ID != "" {
			if err := checkID(c.ID); err != nil {
				return nil, &BatchError{Index: i, Err: fmt.Errorf("create credential %q: %w", c.ID, err)}
			}
		}
	}
	out := make([]Credential, len(cs))
	err := db.update(func(tx *bolt.Tx) error {
		for i, c := range cs {
			if err := db.createCredentialTx(tx, c, &out[i]); err != nil {
				return &BatchError{Index: i, Err: err}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
