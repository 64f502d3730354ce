package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sipwarden/sipwarden/store"
)

// Error is a non-2xx answer of the API: its HTTP status and the error
// objects of the body. The server writes it as
//
//	{"errors":[{"code":"...","title":"...","detail":"...","source":{"pointer":"/username"}}]}
//
// and the Client returns it (as *Error) for every non-2xx response.
type Error struct {
	Status int           `json:"-"`
	Errors []ErrorObject `json:"errors"`
}

// ErrorObject is one problem, in the style of JSON:API error objects.
type ErrorObject struct {
	// Code is a stable, machine-readable snake_case identifier.
	Code string `json:"code"`
	// Title is the same for every occurrence of Code.
	Title string `json:"title"`
	// Detail explains this occurrence, naming the field or parameter.
	Detail string `json:"detail,omitempty"`
	// Source points at the field of the request body (JSON pointer, RFC
	// 6901) or the query parameter that caused the problem.
	Source *ErrorSource `json:"source,omitempty"`
}

// ErrorSource locates the cause of an error in the request.
type ErrorSource struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

// statusError is an error that knows the HTTP status it answers.
type statusError interface {
	error
	HTTPStatus() int
}

var _ statusError = (*Error)(nil)

// HTTPStatus returns the HTTP status code of the response.
func (e *Error) HTTPStatus() int { return e.Status }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "api: %d %s", e.Status, http.StatusText(e.Status))
	for i, o := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if o.Detail != "" {
			b.WriteString(o.Detail)
		} else {
			b.WriteString(o.Title)
		}
	}
	return b.String()
}

// Has reports whether e holds an error object with the given code.
func (e *Error) Has(code string) bool {
	for _, o := range e.Errors {
		if o.Code == code {
			return true
		}
	}
	return false
}

// Error codes. Each has one title (see titles) and one HTTP status.
const (
	CodeInvalidJSON        = "invalid_json"        // 400
	CodeUnknownField       = "unknown_field"       // 400
	CodeInvalidParameter   = "invalid_parameter"   // 400
	CodeUnauthorized       = "unauthorized"        // 401
	CodeForbidden          = "forbidden"           // 403
	CodeKeyInUse           = "key_in_use"          // 409
	CodeNotFound           = "not_found"           // 404
	CodeMethodNotAllowed   = "method_not_allowed"  // 405
	CodeUsernameTaken      = "username_taken"      // 409
	CodeConnectionInUse    = "connection_in_use"   // 409
	CodeDefaultConnection  = "default_connection"  // 409
	CodeCredentialUnusable = "credential_unusable" // 409
	CodeBodyTooLarge       = "body_too_large"      // 413
	CodeTooManyAttempts    = "too_many_attempts"   // 429
	CodeRequired           = "required"            // 422
	CodeTooShort           = "too_short"           // 422
	CodeTooLong            = "too_long"            // 422
	CodeWeakPassword       = "weak_password"       // 422
	CodeInvalidCharacters  = "invalid_characters"  // 422
	CodeInvalidValue       = "invalid_value"       // 422
	CodeInPast             = "in_past"             // 422
	CodeUnknownConnection  = "unknown_connection"  // 422
	CodeNumberTaken        = "number_taken"        // 409
	CodeIDTaken            = "id_taken"            // 409
	CodeInternal           = "internal_error"      // 500
	CodeUnavailable        = "unavailable"         // 503
	codeHTTPError          = "http_error"          // client side: a body that is not an API error
	statusUnprocessable    = http.StatusUnprocessableEntity
	maxValidationErrorObjs = 20
)

var titles = map[string]string{
	CodeInvalidJSON:        "Invalid JSON",
	CodeUnknownField:       "Unknown field",
	CodeInvalidParameter:   "Invalid query parameter",
	CodeUnauthorized:       "Missing or invalid API key",
	CodeForbidden:          "API key scope does not allow this",
	CodeKeyInUse:           "API key in use by this request",
	CodeNotFound:           "Not found",
	CodeMethodNotAllowed:   "Method not allowed",
	CodeUsernameTaken:      "Username already taken",
	CodeConnectionInUse:    "Connection has credentials",
	CodeDefaultConnection:  "Default connection cannot be deleted",
	CodeCredentialUnusable: "Credential disabled or expired",
	CodeBodyTooLarge:       "Request body too large",
	CodeTooManyAttempts:    "Too many failed API key attempts",
	CodeRequired:           "Required field missing",
	CodeTooShort:           "Value too short",
	CodeTooLong:            "Value too long",
	CodeWeakPassword:       "Password too easy to guess",
	CodeInvalidCharacters:  "Invalid characters",
	CodeInvalidValue:       "Invalid value",
	CodeInPast:             "Time in the past",
	CodeUnknownConnection:  "Connection does not exist",
	CodeNumberTaken:        "Number already assigned",
	CodeIDTaken:            "ID already in use",
	CodeInternal:           "Internal server error",
	CodeUnavailable:        "Service unavailable",
	codeHTTPError:          "Unexpected response",
}

// newError returns an *Error with one object.
func newError(status int, code, detail string) *Error {
	return &Error{Status: status, Errors: []ErrorObject{{Code: code, Title: titles[code], Detail: detail}}}
}

// fieldError is a 422 object about the body field at pointer; "" (the
// body as a whole) gives no source: an empty one, {}, is not a valid
// ErrorSource (openapi.json: minProperties 1).
func fieldError(pointer, code, detail string) ErrorObject {
	o := ErrorObject{Code: code, Title: titles[code], Detail: detail}
	if pointer != "" {
		o.Source = &ErrorSource{Pointer: pointer}
	}
	return o
}

// paramError is a 400 about a query parameter; a parameter without a name
// ("?=1") gives no source, as for fieldError.
func paramError(param, detail string) *Error {
	e := newError(http.StatusBadRequest, CodeInvalidParameter, detail)
	if param != "" {
		e.Errors[0].Source = &ErrorSource{Parameter: param}
	}
	return e
}

// validation collects 422 error objects.
type validation []ErrorObject

func (v *validation) add(pointer, code, format string, args ...any) {
	if len(*v) < maxValidationErrorObjs {
		*v = append(*v, fieldError(pointer, code, fmt.Sprintf(format, args...)))
	}
}

// err returns nil when nothing was added.
func (v validation) err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Status: statusUnprocessable, Errors: v}
}

// asAPIError turns any error a handler returns into the response to send;
// this is the one place where store errors become HTTP statuses. internal
// reports whether the error is a server fault (to be logged).
func asAPIError(err error) (e *Error, internal bool) {
	if se, ok := errors.AsType[statusError](err); ok {
		if ae, ok := se.(*Error); ok {
			return ae, false
		}
		code := CodeInternal
		if se.HTTPStatus() == http.StatusServiceUnavailable {
			code = CodeUnavailable // the cluster's Redis: retry later (openapi.json)
		}
		return newError(se.HTTPStatus(), code, se.Error()), se.HTTPStatus() >= 500
	}
	switch {
	case errors.Is(err, store.ErrUsernameTaken):
		e := newError(http.StatusConflict, CodeUsernameTaken, "username is already taken by another credential")
		e.Errors[0].Source = &ErrorSource{Pointer: "/username"}
		return e, false
	case errors.Is(err, store.ErrConnectionNotFound):
		e := &Error{Status: statusUnprocessable, Errors: []ErrorObject{
			fieldError("/connection_id", CodeUnknownConnection, "connection_id does not name an existing connection"),
		}}
		return e, false
	case errors.Is(err, store.ErrCredentialNotFound):
		e := &Error{Status: statusUnprocessable, Errors: []ErrorObject{
			fieldError("/credential_id", CodeInvalidValue, "credential_id does not name a credential of the number's connection"),
		}}
		return e, false
	case errors.Is(err, store.ErrConnectionInUse):
		return newError(http.StatusConflict, CodeConnectionInUse, "the connection still has credentials or numbers: delete or move them first"), false
	case errors.Is(err, store.ErrDefaultConnection):
		return newError(http.StatusConflict, CodeDefaultConnection, "the default connection always exists"), false
	case errors.Is(err, store.ErrExists):
		// Only a record given its own id can meet another (POST /v1/import;
		// a number is answered number_taken by its handler).
		e := newError(http.StatusConflict, CodeIDTaken, "id is already the id of another record")
		e.Errors[0].Source = &ErrorSource{Pointer: "/id"}
		return e, false
	case errors.Is(err, store.ErrInvalid):
		// Validation comes first and should leave nothing for this.
		return newError(statusUnprocessable, CodeInvalidValue, "the store refused the record: "+err.Error()), false
	case errors.Is(err, store.ErrNotFound):
		detail := "no such resource"
		if re, ok := errors.AsType[*resourceError](err); ok {
			detail = fmt.Sprintf("no %s with id %q", re.kind, re.id)
		}
		return newError(http.StatusNotFound, CodeNotFound, detail), false
	}
	return newError(http.StatusInternalServerError, CodeInternal, "the server failed to handle the request; see its log"), true
}

// resourceError says which resource a store call was about, for the 404
// detail and the log.
type resourceError struct {
	op, kind, id string
	err          error
}

func (e *resourceError) Error() string { return fmt.Sprintf("%s %s %q: %v", e.op, e.kind, e.id, e.err) }
func (e *resourceError) Unwrap() error { return e.err }

// storeErr wraps err, from a store call that did op on the resource kind
// with the given id.
func storeErr(op, kind, id string, err error) error {
	return &resourceError{op: op, kind: kind, id: id, err: err}
}
