package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// Load reads and strictly decodes the spec at path. It neither defaults nor validates: see
// LoadValid for the usual sequence.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading cluster spec: %w", err)
	}
	return Parse(data, path)
}

// LoadValid loads path, applies defaults and validates. warnings are worth showing even when
// err is nil.
func LoadValid(path string) (*Cluster, []string, error) {
	c, err := Load(path)
	if err != nil {
		return nil, nil, err
	}
	c.Default()
	warnings, err := c.Validate()
	if err != nil {
		return nil, warnings, err
	}
	return c, warnings, nil
}

// Parse strictly decodes a spec document. source names the document in errors (a path).
// Unknown fields, wrong value types, duplicate keys and YAML syntax errors are reported with
// the line and the field path, e.g. `nerv.yaml:14: spec.nodes[1].rol: unknown field`.
func Parse(data []byte, source string) (*Cluster, error) {
	if source == "" {
		source = "<spec>"
	}
	var doc yamlv3.Node
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty document: expected a %s %s", source, APIVersion, Kind)
		}
		return nil, fmt.Errorf("%s: %s", source, yamlMessage(err))
	}
	var extra yamlv3.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: more than one YAML document: a spec file holds exactly one Cluster", source, extra.Line)
	}
	if doc.Kind == yamlv3.DocumentNode && len(doc.Content) == 1 {
		var problems []string
		checkNode(doc.Content[0], reflect.TypeFor[Cluster](), "", &problems)
		if len(problems) > 0 {
			return nil, fmt.Errorf("%s: %s", source, strings.Join(problems, "\n"+source+": "))
		}
	}
	c := &Cluster{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		// checkNode catches what strict decoding would; this is a backstop.
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if c.APIVersion != APIVersion {
		return nil, fmt.Errorf("%s: apiVersion: %q is not supported: use %s", source, c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		return nil, fmt.Errorf("%s: kind: %q is not supported: use %s", source, c.Kind, Kind)
	}
	c.source = source
	return c, nil
}

// yamlMessage strips the library prefix from a YAML syntax error ("yaml: line 3: ...") into
// "line 3: ...".
func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// checkNode walks a YAML node against the Go type it decodes into, recording unknown fields
// and type mismatches with their line and field path. The json tags are the field names.
func checkNode(n *yamlv3.Node, t reflect.Type, path string, problems *[]string) {
	if n.Kind == yamlv3.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return // null is an absent value for every field
	}
	at := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "(document)"
		}
		*problems = append(*problems, fmt.Sprintf("line %d: %s: %s", n.Line, p, fmt.Sprintf(format, args...)))
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yamlv3.MappingNode {
			at("expected a mapping (key: value), got %s", describe(n))
			return
		}
		fields := jsonFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if first, dup := seen[k.Value]; dup {
				*problems = append(*problems, fmt.Sprintf("line %d: %s: duplicate key (first at line %d)", k.Line, join(path, k.Value), first))
				continue
			}
			seen[k.Value] = k.Line
			f, ok := fields[k.Value]
			sub := join(path, k.Value)
			if !ok {
				msg := fmt.Sprintf("line %d: %s: unknown field", k.Line, sub)
				if s := closest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				*problems = append(*problems, msg)
				continue
			}
			checkNode(v, f, sub, problems)
		}
	case reflect.Slice:
		if n.Kind != yamlv3.SequenceNode {
			at("expected a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			checkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), problems)
		}
	case reflect.Map:
		if n.Kind != yamlv3.MappingNode {
			at("expected a mapping (key: value), got %s", describe(n))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if first, dup := seen[k.Value]; dup {
				*problems = append(*problems, fmt.Sprintf("line %d: %s: duplicate key (first at line %d)", k.Line, join(path, k.Value), first))
				continue
			}
			seen[k.Value] = k.Line
			checkNode(v, t.Elem(), join(path, k.Value), problems)
		}
	case reflect.String:
		if n.Kind != yamlv3.ScalarNode || n.Tag != "!!str" {
			at("expected a string, got %s (quote the value)", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yamlv3.ScalarNode || n.Tag != "!!bool" {
			at("expected true or false, got %s", describe(n))
		}
	}
}

func describe(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.MappingNode:
		return "a mapping"
	case yamlv3.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return fmt.Sprintf("%q", n.Value)
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// jsonFields maps each json field name of struct type t to its type.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = f.Type
	}
	return m
}

// closest suggests the known field nearest to a misspelt one (edit distance ≤ 2, or a
// case-insensitive match).
func closest(name string, fields map[string]reflect.Type) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	best, bestD := "", 3
	for _, k := range keys {
		if strings.EqualFold(k, name) {
			return k
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
