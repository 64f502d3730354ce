package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// checkStrict walks the JSON text raw, to be decoded into a value of type
// t, for what encoding/json would let through silently:
//
//   - a key that is no field of t, at any depth: encoding/json's
//     DisallowUnknownFields is lost below a type with its own
//     UnmarshalJSON (optional), and it matches keys case-insensitively
//     ({"NAME": ...} sets name);
//   - a key given twice in one object (encoding/json keeps the last);
//   - a string that is not valid UTF-8, raw or as a lone surrogate escape
//     such as "\udc00" (encoding/json puts U+FFFD in its place: a
//     password would get the HA1 of another password);
//   - a value of the wrong JSON type below the top level (wrongType):
//     encoding/json names it without the indices of the arrays around it
//     (/outbound_routes/prefix for /outbound_routes/1/prefix) and says
//     "want number" of 1e3 for an integer field.
//
// It answers the first problem found as a 400 naming the JSON pointer of
// the field, or nil. Syntax errors are left to the decoder that follows,
// which reports them with their offset.
func checkStrict(raw []byte, t reflect.Type) *Error {
	c := &strictWalker{dec: json.NewDecoder(bytes.NewReader(raw)), raw: raw}
	c.dec.UseNumber() // no float conversion: only the structure matters
	e, _ := c.value(t, "")
	return e
}

type strictWalker struct {
	dec   *json.Decoder
	raw   []byte
	depth int // objects and arrays open around the current value
}

// maxDepth bounds the nesting of a body: no request body of the API nests
// deeper than a few levels, and each level keeps its JSON pointer on the
// stack, so that 100,000 brackets cost quadratic memory (9.9 GB) before
// this bound.
const maxDepth = 32

// errSyntax stops the walk; the decoder reports the syntax error itself.
var errSyntax = errors.New("syntax")

// token returns the next token and the raw text since the previous one
// (separators, white space, then the token's own text).
func (c *strictWalker) token() (json.Token, []byte, error) {
	start := c.dec.InputOffset()
	tok, err := c.dec.Token()
	if err != nil {
		return nil, nil, errSyntax
	}
	return tok, c.raw[start:c.dec.InputOffset()], nil
}

// value walks one value of type t (nil: any, its keys not checked) at
// pointer ptr.
func (c *strictWalker) value(t reflect.Type, ptr string) (*Error, error) {
	tok, text, err := c.token()
	if err != nil {
		return nil, err
	}
	t = bodyType(t)
	if ptr != "" { // the body itself: the decoder says it must be an object
		if e := wrongType(tok, t, ptr); e != nil {
			return e, nil
		}
	}
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '{' || tok == '[' {
			if c.depth++; c.depth > maxDepth {
				return strictError(CodeInvalidJSON, ptr, fmt.Sprintf("the value at %s nests deeper than %d levels", pointerName(ptr), maxDepth)), nil
			}
			defer func() { c.depth-- }()
		}
		switch tok {
		case '{':
			return c.object(t, ptr)
		case '[':
			return c.array(t, ptr)
		}
		return nil, errSyntax
	case string:
		if !validJSONString(text) {
			return strictError(CodeInvalidJSON, ptr, fmt.Sprintf("the string at %s is not valid UTF-8 (or holds a lone surrogate escape)", pointerName(ptr))), nil
		}
	}
	return nil, nil
}

func (c *strictWalker) object(t reflect.Type, ptr string) (*Error, error) {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t, nil)
		case reflect.Map:
			elem = t.Elem()
		default:
			t = nil // the wrong type: the decoder names it
		}
	}
	seen := map[string]bool{}
	for c.dec.More() {
		tok, text, err := c.token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errSyntax
		}
		kp := ptr + "/" + escapePointer(key)
		if !validJSONString(text) {
			return strictError(CodeInvalidJSON, ptr, fmt.Sprintf("a key of the object at %s is not valid UTF-8 (or holds a lone surrogate escape)", pointerName(ptr))), nil
		}
		if seen[key] {
			return strictError(CodeInvalidJSON, kp, fmt.Sprintf("field %q appears twice in the object at %s", key, pointerName(ptr))), nil
		}
		seen[key] = true
		vt := elem
		if fields != nil {
			ft, known := fields[key]
			if !known {
				// The exact name only: encoding/json would take "NAME"
				// for "name".
				return strictError(CodeUnknownField, kp, fmt.Sprintf("unknown field %q", key)), nil
			}
			vt = ft
		}
		if e, err := c.value(vt, kp); e != nil || err != nil {
			return e, err
		}
	}
	_, _, err := c.token() // '}'
	return nil, err
}

func (c *strictWalker) array(t reflect.Type, ptr string) (*Error, error) {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	for i := 0; c.dec.More(); i++ {
		if e, err := c.value(elem, ptr+"/"+strconv.Itoa(i)); e != nil || err != nil {
			return e, err
		}
	}
	_, _, err := c.token() // ']'
	return nil, err
}

// wrongType answers the JSON value starting with tok at ptr when it cannot
// be decoded into t (nil: anything can), or returns nil. null can be
// decoded into anything (it leaves a field alone, or clears an optional).
func wrongType(tok json.Token, t reflect.Type, ptr string) *Error {
	if t == nil || tok == nil {
		return nil
	}
	var got string
	switch tok := tok.(type) {
	case json.Delim:
		k := t.Kind()
		if tok == '{' && (k == reflect.Struct || k == reflect.Map) || tok == '[' && (k == reflect.Slice || k == reflect.Array) {
			return nil
		}
		got = "object"
		if tok == '[' {
			got = "array"
		}
	case string:
		if t.Kind() == reflect.String || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 { // base64
			return nil
		}
		got = "string"
	case bool:
		if t.Kind() == reflect.Bool {
			return nil
		}
		got = "boolean"
	case json.Number:
		if numberFits(tok.String(), t) {
			return nil
		}
		got = "number " + truncate(tok.String(), 32)
	default:
		return nil
	}
	want := jsonType(t)
	if want == "integer" {
		want = "an integer" + rangeOf(t)
	}
	return strictError(CodeInvalidJSON, ptr, fmt.Sprintf("wrong type for field %q: got %s, want %s", ptr[1:], got, want))
}

// numberFits reports whether the JSON number n decodes into t. A float is
// left to the decoder (1e400 overflows).
func numberFits(n string, t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, err := strconv.ParseInt(n, 10, t.Bits()) // 1e3, 5.0 and 1.5 are not integers to encoding/json
		return err == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		_, err := strconv.ParseUint(n, 10, t.Bits())
		return err == nil
	}
	return false
}

// bounded is an integer body field that knows its allowed range, which
// the answer to a number that is no integer (1e3, 5.0) then gives.
type bounded interface{ bounds() (lo, hi int) }

func rangeOf(t reflect.Type) string {
	b, ok := reflect.Zero(t).Interface().(bounded)
	if !ok {
		return ""
	}
	lo, hi := b.bounds()
	return fmt.Sprintf(" from %d to %d", lo, hi)
}

// bodyValue is optional[T]: checkStrict walks its T.
type bodyValue interface{ valueType() reflect.Type }

var (
	bodyValueType   = reflect.TypeFor[bodyValue]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// bodyType is the type whose fields a JSON value for t must use: t
// without pointers and optional; nil when t decodes itself (json.RawMessage,
// time.Time) or is an interface: anything goes there.
func bodyType(t reflect.Type) reflect.Type {
	for t != nil {
		switch {
		case t.Implements(bodyValueType):
			t = reflect.Zero(t).Interface().(bodyValue).valueType()
		case t.Kind() == reflect.Pointer:
			t = t.Elem()
		case t.Kind() == reflect.Interface,
			reflect.PointerTo(t).Implements(unmarshalerType), reflect.PointerTo(t).Implements(textType):
			return nil
		default:
			return t
		}
	}
	return nil
}

// jsonFields maps the JSON names of struct t's fields (embedded structs'
// included) to their types, as encoding/json names them.
func jsonFields(t reflect.Type, into map[string]reflect.Type) map[string]reflect.Type {
	if into == nil {
		into = map[string]reflect.Type{}
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := into[name]; !dup { // the outer field wins
			into[name] = f.Type
		}
	}
	return into
}

// validJSONString reports whether the JSON string literal at the end of
// text (after separators and white space) is valid UTF-8 and its \u
// escapes are whole characters (a high surrogate followed by a low one).
func validJSONString(text []byte) bool {
	i := bytes.IndexByte(text, '"')
	if i < 0 {
		return true
	}
	lit := text[i:]
	if !utf8.Valid(lit) {
		return false
	}
	for j := 0; j < len(lit); j++ {
		if lit[j] != '\\' {
			continue
		}
		j++
		if j >= len(lit) || lit[j] != 'u' {
			continue // \" \\ \n ...: one character
		}
		r, ok := hex4(lit, j+1)
		if !ok {
			return true // a syntax error: the decoder reports it
		}
		j += 4
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00: // high: a low one must follow
			if j+6 >= len(lit) || lit[j+1] != '\\' || lit[j+2] != 'u' {
				return false
			}
			lo, ok := hex4(lit, j+3)
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return false
			}
			j += 6
		case utf16.IsSurrogate(r): // a low one alone
			return false
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[at:at+4]), 16, 32)
	return rune(n), err == nil
}

// escapePointer escapes a key as a JSON pointer token (RFC 6901).
func escapePointer(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

func pointerName(ptr string) string {
	if ptr == "" {
		return "the top level"
	}
	return ptr
}

func strictError(code, ptr, detail string) *Error {
	e := newError(http.StatusBadRequest, code, detail)
	if ptr != "" {
		e.Errors[0].Source = &ErrorSource{Pointer: ptr}
	}
	return e
}
