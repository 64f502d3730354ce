package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkKeys walks the YAML document b along the Config type and returns
// an error for each unknown key and each value its field cannot hold,
// naming the key as the file spells it (sip.listen.udp, proxy.routes[0].prefix)
// and its line, never a Go type: the YAML decoder's own errors read
// "field foo not found in type config.Listen".
func checkKeys(b []byte) error {
	_, err := scanKeys(b)
	return err
}

// scanned is what scanKeys learns of a file besides its errors.
type scanned struct {
	zeros []zeroKey
	// lines maps each key the file sets, as Validate names it
	// (sip.listen.udp, proxy.routes[0], sip.websocket.origins[1]), to its
	// line, so that Validate's errors say where to look.
	lines map[string]int
}

// line returns the line of key, or of the list element a key such as
// proxy.routes[0].prefix/domain belongs to; 0 when the file does not set it.
func (s scanned) line(key string) int {
	if n := s.lines[key]; n > 0 {
		return n
	}
	if i := strings.LastIndexByte(key, '.'); i > 0 && strings.HasSuffix(key[:i], "]") {
		return s.lines[key[:i]]
	}
	return 0
}

// zeroKey is a key the file sets to a number that is zero: setDefaults
// cannot tell it from a key left out (zeroReplaced).
type zeroKey struct {
	path string
	line int
}

// scanKeys is checkKeys, and returns as well the keys set to zero and the
// line of each key.
func scanKeys(b []byte) (scanned, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return scanned{}, err // a syntax error, with its line
	}
	if len(doc.Content) == 0 {
		return scanned{}, nil // an empty file
	}
	var errs []error
	s := scanned{lines: map[string]int{}}
	walkKeys(doc.Content[0], reflect.TypeFor[Config](), "", &errs, &s)
	return s, errors.Join(errs...)
}

// zeroReplaced returns an error for each key the file set to zero that
// setDefaults replaced with its default: 0 is no value those keys take
// (guard.ban_duration: 0s, meant as "no bans", gave 15-minute bans, and
// guard.max_failures: 0 the default 20, without a word).
func zeroReplaced(c *Config, zeros []zeroKey) error {
	var errs []error
	for _, z := range zeros {
		v, ok := fieldByPath(reflect.ValueOf(c).Elem(), z.path)
		if !ok || v.IsZero() {
			continue
		}
		shown := fmt.Sprint(v.Interface())
		if d, ok := v.Interface().(Duration); ok {
			shown = d.D().String()
		}
		errs = append(errs, fmt.Errorf("config: %s (line %d): 0 is not a value this key takes: leave the key out for the default (%s), or see config/example.yaml for its range", z.path, z.line, shown))
	}
	return errors.Join(errs...)
}

// fieldByPath returns the field of the struct v at a dotted YAML path
// (no list or map elements).
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	for part := range strings.SplitSeq(path, ".") {
		if v.Kind() != reflect.Struct || strings.ContainsAny(part, "[]") {
			return reflect.Value{}, false
		}
		found := false
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if f.IsExported() && name == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

const maxKeyErrors = 20

func walkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]error, s *scanned) {
	if len(*errs) >= maxKeyErrors {
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value: the zero value, the default
	}
	custom := reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]())
	switch {
	case !custom && t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, fmt.Errorf("%s (line %d): want a mapping of keys, not %s", where(path), n.Line, describe(n)))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			s.lines[key] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s (line %d): unknown key; %s has %s", key, k.Line, where(path), strings.Join(slices.Sorted(mapsKeys(fields)), ", ")))
				continue
			}
			walkKeys(v, f, key, errs, s)
		}
	case !custom && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, fmt.Errorf("%s (line %d): want a list, not %s", path, n.Line, describe(n)))
			return
		}
		for i, e := range n.Content {
			key := fmt.Sprintf("%s[%d]", path, i)
			s.lines[key] = e.Line
			walkKeys(e, t.Elem(), key, errs, s)
		}
	default:
		// The elements of a list of values and the keys of a map, by the
		// names Validate gives them (sip.websocket.origins[1],
		// auth.transport_algorithms.udp).
		switch n.Kind {
		case yaml.SequenceNode:
			for i, e := range n.Content {
				s.lines[fmt.Sprintf("%s[%d]", path, i)] = e.Line
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				s.lines[path+"."+n.Content[i].Value] = n.Content[i].Line
			}
		}
		p := reflect.New(t)
		if err := n.Decode(p.Interface()); err != nil {
			*errs = append(*errs, fmt.Errorf("%s (line %d): invalid value %s: %s", path, n.Line, describe(n), want(t, err, custom)))
			return
		}
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			if p.Elem().IsZero() {
				s.zeros = append(s.zeros, zeroKey{path: path, line: n.Line})
			}
		}
	}
}

func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// yamlFields maps the YAML keys of struct type t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func mapsKeys(m map[string]reflect.Type) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// describe quotes a node's value for an error.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if len(n.Value) > 64 {
		return fmt.Sprintf("%q...", n.Value[:64])
	}
	return fmt.Sprintf("%q", n.Value)
}

// want says what a field of type t holds, in the file's terms. A type
// with its own UnmarshalYAML says it in its error.
func want(t reflect.Type, err error, custom bool) string {
	if custom {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err.Error()
		}
	}
	switch t.Kind() {
	case reflect.String:
		return "want a string"
	case reflect.Bool:
		return "want true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "want a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "want a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "want a number"
	case reflect.Slice:
		return "want a list of " + strings.TrimPrefix(want(t.Elem(), err, false), "want ") + " values"
	case reflect.Map:
		return "want a mapping"
	}
	return "not a valid value here"
}
