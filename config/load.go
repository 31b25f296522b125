// Package config is the YAML files of each privstats role: their schema,
// their defaults and their validation.
//
// Each role has one file: the tally server's tally.yaml ([Tally]), a share
// keeper's keeper.yaml ([Keeper]), a collector's collector.yaml
// ([Collector]), and privacy.yaml ([PrivacyPlan]), the input of
// `privstats plan`. The testdata directory of the repository holds an
// example of each.
//
// All of them are read by [Load], which is strict in the ways that protect a
// privacy deployment from a typo: unknown keys are rejected (with the key
// the author probably meant), every value is checked, and every problem is
// reported as FILE:LINE: problem (hint). Syntax, key and type problems are
// reported together; when there are none, so are all problems with values.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/privstats/privstats/internal/suggest"
	"github.com/privstats/privstats/policy"
)

// Error is one problem with a config file. Load returns all the problems it
// finds joined with errors.Join, so errors.As finds the first.
type Error struct {
	File string
	// Line is 1-based; 0 means the file as a whole.
	Line    int
	Problem string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Problem
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Problem)
}

// The role types implement these. setDefaults sets the defaults before the
// file is decoded over them; complete then fills in what derives from other
// settings, makes paths relative to dir (the file's directory) absolute,
// and reports every invalid value to c.
type (
	defaulter interface{ setDefaults() }
	completer interface {
		complete(c *checker, dir string)
	}
)

// Load reads the YAML file at path into the struct into points to: one of
// *Tally, *Keeper, *Collector, *PrivacyPlan or *policy.Policy.
//
// For the role types Load first sets the documented defaults, so a key left
// out keeps its default while a key given (even as 0 or "") keeps what the
// file says; it then makes relative paths relative to the file's directory
// and validates every value. A *policy.Policy is decoded over what it holds
// (start from policy.Defaults()) and validated. Any other struct is only
// decoded, with the same strictness about keys and types.
func Load(path string, into any) error { return load(path, into, nil) }

// load is Load; complete, when set, replaces the role's own validation of
// values (keys and types are checked strictly either way).
func load(path string, into any, complete func(c *checker, dir string)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	rv := reflect.ValueOf(into)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, not %T", into)
	}
	c := &checker{file: path, lines: map[string]int{}}

	root, err := parse(path, data)
	if err != nil {
		return err
	}
	if d, ok := into.(defaulter); ok {
		d.setDefaults()
	}
	c.lines[""] = root.Line
	walk(c, root, rv.Type().Elem(), "")
	unknownKeys := len(c.errs) > 0

	// The walk above knows the keys; the decoder knows the values. Keep
	// KnownFields on as well, so that nothing the walk missed gets through.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return c.yamlError(err, data)
		}
		for _, msg := range te.Errors {
			if unknownKeys && strings.Contains(msg, " not found in type ") {
				continue // reported by the walk, with a hint
			}
			c.typeError(msg)
		}
	}
	if err := c.err(); err != nil {
		return err
	}

	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	switch v := into.(type) {
	case completer:
		if complete != nil {
			complete(c, dir)
			break
		}
		v.complete(c, dir)
	case *policy.Policy:
		c.policy("", *v)
	}
	return c.err()
}

// loadAs is Load into a new T, for the LoadRole functions.
func loadAs[T any](path string) (*T, error) {
	v := new(T)
	if err := Load(path, v); err != nil {
		return nil, err
	}
	return v, nil
}

// parse reads the file's single YAML document as a node tree.
func parse(file string, data []byte) (*yaml.Node, error) {
	c := &checker{file: file}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Problem: "the file is empty (see testdata/ in the privstats repository for examples)"}
		}
		return nil, c.yamlError(err, data)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &Error{File: file, Line: next.Line, Problem: "a second YAML document (after ---); a config file holds one"}
	case !errors.Is(err, io.EOF):
		return nil, c.yamlError(err, data)
	}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		return nil, &Error{File: file, Problem: "the file has no settings (see testdata/ in the privstats repository for examples)"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Problem: "want a mapping of settings (key: value lines) at the top of the file"}
	}
	return root, nil
}

// walk follows the node tree along the Go type it will be decoded into,
// records the line of every key and list item under its path
// ("statistics[2].sigma"), and reports unknown keys and keys without a
// value. Type mismatches are left to the decoder, which reports them.
func walk(c *checker, n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // it checks its own node (policy.Duration)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key: its mapping's keys are ours
				walk(c, v, t, path)
				continue
			}
			p := join(path, k.Value)
			c.lines[p] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				c.errorAt(k.Line, fmt.Sprintf("unknown key %q%s (%s)", k.Value, where(path), keyHint(k.Value, fields)))
				continue
			}
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
				switch f.Type.Kind() {
				case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
				default:
					c.errorAt(k.Line, fmt.Sprintf("%s has no value (give one, or leave the key out for the default; write \"\" for an empty string)", p))
					continue
				}
			}
			walk(c, v, f.Type, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.lines[p] = item.Line
			walk(c, item, t.Elem(), p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			c.lines[p] = n.Content[i].Line
			walk(c, n.Content[i+1], t.Elem(), p)
		}
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// yamlFields maps each YAML key of a struct type to its field, as yaml.v3
// names them: the tag's name, or the lower-cased field name.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// keyHint names the key a mistyped key was probably meant to be, or lists
// the keys allowed there.
func keyHint(key string, fields map[string]reflect.StructField) string {
	valid := make([]string, 0, len(fields))
	for k := range fields {
		valid = append(valid, k)
	}
	slices.Sort(valid)
	best, bestDist := "", len(key)
	for _, v := range valid {
		if d := suggest.Distance(strings.ToLower(key), v); d < bestDist {
			best, bestDist = v, d
		}
	}
	if best != "" && bestDist <= max(2, len(best)/3) {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "valid keys here: " + strings.Join(valid, ", ")
}

// checker collects problems with a file and knows on which line each
// setting was written.
type checker struct {
	file  string
	lines map[string]int
	errs  []*Error
}

func (c *checker) errorAt(line int, problem string) {
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Problem: problem})
}

// errorf reports a problem with the setting at path, at its line, or at its
// nearest enclosing setting's line when the file leaves it out.
func (c *checker) errorf(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.errorAt(c.line(path), msg)
}

func (c *checker) line(path string) int {
	for {
		if l, ok := c.lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// given reports whether the file sets the key at path.
func (c *checker) given(path string) bool {
	_, ok := c.lines[path]
	return ok
}

// pathAt is the deepest setting written on a line, to name in a decoder
// error that knows only the line.
func (c *checker) pathAt(line int) string {
	best := ""
	for p, l := range c.lines {
		if l == line && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(c.errs, func(a, b *Error) int { return a.Line - b.Line })
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var (
	lineRE      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
)

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: mapping values
// are not allowed in this context") into FILE:LINE: YAML syntax: ..., at the
// line the problem is on (see syntaxLine).
func (c *checker) yamlError(err error, data []byte) error {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if l := syntaxLine(data, m[2]); l > 0 {
			line = l
		}
		return &Error{File: c.file, Line: line, Problem: "YAML syntax: " + m[2]}
	}
	return &Error{File: c.file, Problem: strings.TrimPrefix(msg, "yaml: ")}
}

// maxSyntaxSearch bounds syntaxLine's work, a parse per line, to files of
// config size (the commented examples are a few KiB); a larger file gets
// yaml.v3's line.
const maxSyntaxSearch = 64 << 10

// syntaxLine finds the line a YAML syntax error is on: the first line that,
// read with the lines before it, makes the parser fail with the same
// problem. yaml.v3's own line is where the enclosing construct began,
// counted from 0 for parser errors, so a bad key on line 5 of a file whose
// settings start on line 2, after a comment, is reported at "line 1".
// 0 means not found (the problem shows only with the whole file).
func syntaxLine(data []byte, problem string) int {
	if len(data) > maxSyntaxSearch {
		return 0
	}
	end := 0
	for n := 1; end < len(data); n++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		if syntaxProblem(data[:end]) == problem {
			return n
		}
	}
	return 0
}

// syntaxProblem is the problem yaml.v3 reports for every document in data,
// without its "yaml: line N: " prefix, or "" if data parses.
func syntaxProblem(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
				return m[2]
			}
			return strings.TrimPrefix(err.Error(), "yaml: ")
		}
	}
}

// typeError reports one of the decoder's "line N: ..." messages, naming the
// setting and saying in words what was expected.
func (c *checker) typeError(msg string) {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		c.errorAt(0, msg)
		return
	}
	line, _ := strconv.Atoi(m[1])
	problem := m[2]
	if u := unmarshalRE.FindStringSubmatch(problem); u != nil {
		var got string
		switch u[1] {
		case "seq":
			got = "a list"
		case "map":
			got = "a mapping"
		default:
			got = strconv.Quote(u[2])
		}
		problem = fmt.Sprintf("cannot use %s as %s", got, goTypeWords(u[3]))
	}
	if p := c.pathAt(line); p != "" {
		problem = p + ": " + problem
	}
	c.errorAt(line, problem)
}

// goTypeWords says what kind of value a Go type named by yaml.v3 takes.
func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list (write one item per line starting with \"- \")"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a single value"
	default:
		return "a mapping of settings"
	}
}
