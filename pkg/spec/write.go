package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nerv-platform/nerv/pkg/atomicfile"
	"io/fs"
	"os"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Marshal encodes c as YAML, fields in declaration order (apiVersion, kind, metadata, spec:
// network, admin, ...), the way a person would write it.
func Marshal(c *Cluster) ([]byte, error) { return marshal(c, nil) }

// Write saves c to path atomically (a temp file in the same directory, synced, then renamed),
// so a crash never leaves a half-written spec. An existing file keeps its mode and its
// comments: a comment above or beside a field (or a node, matched by name) stays with it.
func Write(path string, c *Cluster) error {
	mode := fs.FileMode(0o644)
	var old *yamlv3.Node
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
		if data, err := os.ReadFile(path); err == nil {
			var n yamlv3.Node
			// A file that no longer parses just loses its comments.
			if yamlv3.Unmarshal(data, &n) == nil && n.Kind == yamlv3.DocumentNode {
				old = &n
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("writing cluster spec: %w", err)
	}
	data, err := marshal(c, old)
	if err != nil {
		return fmt.Errorf("writing cluster spec %s: %w", path, err)
	}
	if err := writeAtomic(path, data, mode); err != nil {
		return fmt.Errorf("writing cluster spec: %w", err)
	}
	return nil
}

func marshal(c *Cluster, old *yamlv3.Node) ([]byte, error) {
	// JSON keeps the struct's field order and honours omitempty; YAML is a superset of JSON,
	// so decoding it as a YAML node tree keeps that order.
	j, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(j, &doc); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	plain(&doc)
	if old != nil {
		copyComments(old, &doc)
	}
	var buf bytes.Buffer
	enc := yamlv3.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	return buf.Bytes(), nil
}

// plain turns JSON's flow style and double quotes into block YAML; the encoder still quotes
// any string that would otherwise read as another type.
func plain(n *yamlv3.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plain(c)
	}
}

// copyComments moves comments from the previous file's nodes onto the matching new nodes.
func copyComments(from, to *yamlv3.Node) {
	to.HeadComment, to.LineComment, to.FootComment = from.HeadComment, from.LineComment, from.FootComment
	switch {
	case from.Kind == yamlv3.DocumentNode && to.Kind == yamlv3.DocumentNode:
		if len(from.Content) == 1 && len(to.Content) == 1 {
			copyComments(from.Content[0], to.Content[0])
		}
	case from.Kind == yamlv3.MappingNode && to.Kind == yamlv3.MappingNode:
		for i := 0; i+1 < len(to.Content); i += 2 {
			for j := 0; j+1 < len(from.Content); j += 2 {
				if from.Content[j].Value == to.Content[i].Value {
					copyComments(from.Content[j], to.Content[i])
					copyComments(from.Content[j+1], to.Content[i+1])
					break
				}
			}
		}
	case from.Kind == yamlv3.SequenceNode && to.Kind == yamlv3.SequenceNode:
		for i, t := range to.Content {
			// List items that are named (nodes) follow their name; others their position.
			if name := mapValue(t, "name"); name != "" {
				for _, f := range from.Content {
					if mapValue(f, "name") == name {
						copyComments(f, t)
						break
					}
				}
			} else if i < len(from.Content) {
				copyComments(from.Content[i], t)
			}
		}
	}
}

func mapValue(n *yamlv3.Node, key string) string {
	if n.Kind != yamlv3.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// writeAtomic writes data to a temp file beside path, syncs it and renames it over path.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	return atomicfile.WriteFile(path, data, mode)
}
