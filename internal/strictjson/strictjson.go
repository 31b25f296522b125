// Package strictjson decodes JSON so that every reader of a privstats
// document sees the same thing: unknown fields, duplicate keys (including
// keys that differ only in case, which Go's encoding/json matches
// case-insensitively while Python and jq do not), keys that match a field
// only case-insensitively, and trailing data are all refused. A signed or
// published document that two parsers read differently is a way to show a
// verifier one value and a reader another (docs/threat-model.md).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Unmarshal decodes data into v (a pointer) strictly.
func Unmarshal(data []byte, v any) error {
	if err := checkKeys(data, fieldNames(reflect.TypeOf(v))); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// fold maps s to a key shared by every string bytes.EqualFold treats as
// equal to it (each rune replaced by the smallest rune of its simple-fold
// orbit), so "K", "k" and the Kelvin sign fold alike, as encoding/json
// matches them.
func fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

var namesCache sync.Map // reflect.Type → map[string]string (fold → exact)

// fieldNames collects the JSON names of every struct field reachable from
// t, by folded form, so that a key matching one only case-insensitively can
// be refused.
func fieldNames(t reflect.Type) map[string]string {
	if m, ok := namesCache.Load(t); ok {
		return m.(map[string]string)
	}
	names := map[string]string{}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				walk(f.Type)
				continue
			}
			if name == "" {
				name = f.Name
			}
			names[fold(name)] = name
			walk(f.Type)
		}
	}
	walk(t)
	namesCache.Store(t, names)
	return names
}

// checkKeys walks every object in data and refuses a key repeated in one
// object (up to case), or one that matches a known field name only up to
// case.
func checkKeys(data []byte, names map[string]string) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object    bool
		keys      map[string]string
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key := tok.(string)
			f := fold(key)
			if prev, dup := top.keys[f]; dup {
				if prev == key {
					return fmt.Errorf("key %q appears twice in one object", key)
				}
				return fmt.Errorf("keys %q and %q differ only in case", prev, key)
			}
			top.keys[f] = key
			if exact, known := names[f]; known && exact != key {
				return fmt.Errorf("key %q: the field is spelled %q", key, exact)
			}
			top.expectKey = false
			continue
		}
		if top != nil && top.object {
			top.expectKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]string{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}
