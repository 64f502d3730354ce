package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// optional is a body field that tells absent, null and a value apart, for
// PATCH semantics: absent leaves a value alone, null clears it.
type optional[T any] struct {
	Set  bool // the field was present
	Null bool // ... as null
	V    T
}

// UnmarshalJSON decodes with plain json.Unmarshal, which would accept
// unknown and wrongly cased keys in a T that is a struct: decodeBody's
// checkStrict has refused those before (valueType tells it T).
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.V)
}

func (optional[T]) valueType() reflect.Type { return reflect.TypeFor[T]() }

// value returns the value when one was given.
func (o optional[T]) value() (T, bool) { return o.V, o.Set && !o.Null }

// decodeBody decodes the request body, one JSON object with only known
// fields, into dst. Its errors are *Error values: 400 naming the syntax
// error's offset, the field of a wrong type, the unknown field (at any
// depth; names match exactly), a field given twice or a string that is
// not UTF-8 (checkStrict); 413 for a body over the limit.
func decodeBody(r *http.Request, dst any) error {
	raw, err := io.ReadAll(r.Body) // bounded by MaxBytesReader
	if err != nil {
		return bodyError(err)
	}
	return decodeStrict(raw, dst)
}

// decodeOptionalEmpty accepts an empty body or an empty JSON object, for
// routes that take no fields: anything else is the 400 decodeBody gives
// (unknown_field naming the first field).
func decodeOptionalEmpty(r *http.Request) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var none struct{}
	return decodeStrict(raw, &none)
}

// decodeStrict decodes raw, one JSON object, into dst as decodeBody does.
func decodeStrict(raw []byte, dst any) error {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		// encoding/json decodes null into a struct as nothing at all: a
		// PATCH of null answered 200, changing nothing.
		return newError(http.StatusBadRequest, CodeInvalidJSON, "the body must be a JSON object, not null")
	}
	if e := checkStrict(raw, reflect.TypeOf(dst)); e != nil {
		if len(e.Errors) > 0 && e.Errors[0].Code == CodeUnknownField && !json.Valid(raw) {
			// checkStrict names the first unknown field it meets, before
			// the end: {"x":1 (cut short) was answered unknown_field
			// where the body is not JSON at all.
			var v any
			dec := json.NewDecoder(bytes.NewReader(raw))
			err := dec.Decode(&v)
			if err == nil {
				if _, err = dec.Token(); errors.Is(err, io.EOF) {
					err = nil
				}
			}
			if err != nil {
				return bodyError(err)
			}
		}
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bodyError(err)
	}
	// Exactly one value: trailing garbage is as wrong as a syntax error.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return newError(http.StatusBadRequest, CodeInvalidJSON,
			fmt.Sprintf("unexpected data after the JSON object at offset %d", dec.InputOffset()))
	}
	return nil
}

func bodyError(err error) *Error {
	if mb, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
			fmt.Sprintf("the request body is larger than the limit of %d bytes (limits.api_max_body_bytes)", mb.Limit))
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return newError(http.StatusBadRequest, CodeInvalidJSON,
			fmt.Sprintf("syntax error at offset %d: %s", se.Offset, se.Error()))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return newError(http.StatusBadRequest, CodeInvalidJSON,
				fmt.Sprintf("the body must be a JSON object, not %s", te.Value))
		}
		e := newError(http.StatusBadRequest, CodeInvalidJSON,
			fmt.Sprintf("wrong type for field %q: got %s, want %s", te.Field, te.Value, jsonType(te.Type)))
		e.Errors[0].Source = &ErrorSource{Pointer: "/" + strings.ReplaceAll(te.Field, ".", "/")}
		return e
	}
	switch {
	case errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, CodeInvalidJSON, "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, CodeInvalidJSON, "the body ends in the middle of a JSON value")
	}
	// encoding/json has no type for this one.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		e := newError(http.StatusBadRequest, CodeUnknownField, fmt.Sprintf("unknown field %s", name))
		e.Errors[0].Source = &ErrorSource{Pointer: "/" + field}
		return e
	}
	return newError(http.StatusBadRequest, CodeInvalidJSON, err.Error())
}

// jsonType names a Go type the way a JSON user thinks of it.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + jsonType(t.Elem()) + "s"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return t.String()
}

// envelope is the body of every 2xx answer with content.
type envelope struct {
	Data any       `json:"data"`
	Meta *listMeta `json:"meta,omitempty"`
}

// listMeta describes one page of a list.
type listMeta struct {
	NextCursor string `json:"next_cursor,omitempty"`
	PageSize   int    `json:"page_size"`
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // '&' may appear in a username
	_ = enc.Encode(v)        // the client went away; nothing left to tell it
}
