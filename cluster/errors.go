package cluster

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrUnavailable is wrapped by the errors of operations that could not
// reach Redis in time: the shared state was neither read nor written.
var ErrUnavailable = errors.New("cluster: redis unavailable")

// unavailableError is an operation that failed for want of Redis; it
// becomes a 503 in the management API (its statusError interface).
type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("cluster: %s: redis unavailable: %v", e.op, e.err)
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// HTTPStatus is 503: try again once Redis answers.
func (e *unavailableError) HTTPStatus() int { return http.StatusServiceUnavailable }

// unavailable wraps err, from an operation c could not do for want of
// Redis, and marks c down (Down) until Watch sees Redis answer.
func (c *Cluster) unavailable(op string, err error) error {
	c.failed()
	return &unavailableError{op: op, err: err}
}
