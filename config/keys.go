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
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err // a syntax error, with its line
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	var errs []error
	walkKeys(doc.Content[0], reflect.TypeFor[Config](), "", &errs)
	return errors.Join(errs...)
}

const maxKeyErrors = 20

func walkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
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
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s (line %d): unknown key; %s has %s", key, k.Line, where(path), strings.Join(slices.Sorted(mapsKeys(fields)), ", ")))
				continue
			}
			walkKeys(v, f, key, errs)
		}
	case !custom && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, fmt.Errorf("%s (line %d): want a list, not %s", path, n.Line, describe(n)))
			return
		}
		for i, e := range n.Content {
			walkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	default:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			*errs = append(*errs, fmt.Errorf("%s (line %d): invalid value %s: %s", path, n.Line, describe(n), want(t, err, custom)))
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
