package sopsdoc

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/getsops/sops/v3"
	"go.yaml.in/yaml/v3"
)

// emitYAML writes decrypted sops branches as YAML, byte for byte what sops' YAML store
// (EmitPlainFile, indent 2) writes. sops turns every key and scalar into a yaml.Node with
// Node.Encode, which runs a whole YAML encoder and parser per value: at a thousand files a sync
// that was a third of the plugin's allocations and a sixth of its CPU time. Here the scalars
// whose node is known without that round trip are built directly; every other value still goes
// through Node.Encode. TestEmitYAMLMatchesSops holds the two outputs equal.
func emitYAML(branches sops.TreeBranches) ([]byte, error) {
	if len(branches) == 0 {
		return []byte{}, nil // an encoder closed before its first document fails
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, branch := range branches {
		mapping := &yaml.Node{Kind: yaml.MappingNode}
		if err := appendBranch(branch, mapping); err != nil {
			return nil, err
		}
		if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mapping}}); err != nil {
			return nil, fmt.Errorf("marshaling to YAML: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// valueNode returns the node for one tree value: a mapping, a sequence or a scalar.
func valueNode(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case sops.TreeBranch:
		n := &yaml.Node{Kind: yaml.MappingNode}
		return n, appendBranch(v, n)
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		return n, appendItems(v, n)
	}
	return scalarNode(v)
}

// appendBranch adds a branch's keys and values to mapping. sops keeps comments as tree items
// of their own; they become head comments of the next key, line comments of the value they
// follow, and foot comments when nothing follows, as in sops' store.
func appendBranch(branch sops.TreeBranch, mapping *yaml.Node) error {
	var c pendingComments
	var last *yaml.Node
	for _, item := range branch {
		if c.add(item.Key) {
			continue
		}
		if last == nil {
			c.head = addHeadComments(mapping, c.head)
		}
		key, err := scalarNode(item.Key)
		if err != nil {
			return err
		}
		c.head = addHeadComments(key, c.head)
		value, err := valueNode(item.Value)
		if err != nil {
			return err
		}
		c.inline = addLineComments(value, c.inline)
		mapping.Content = append(mapping.Content, key, value)
		last = key
	}
	c.flush(mapping, last)
	return nil
}

// appendItems adds a sequence's items, with comments placed as in appendBranch.
func appendItems(items []any, seq *yaml.Node) error {
	var c pendingComments
	var last *yaml.Node
	for _, item := range items {
		if c.add(item) {
			continue
		}
		if last == nil {
			c.head = addHeadComments(seq, c.head)
		}
		n, err := valueNode(item)
		if err != nil {
			return err
		}
		c.head = addHeadComments(n, c.head)
		c.inline = addLineComments(n, c.inline)
		seq.Content = append(seq.Content, n)
		last = n
	}
	c.flush(seq, last)
	return nil
}

// pendingComments holds the comment items met since the last value.
type pendingComments struct{ head, inline []string }

// add records v when it is a comment and reports whether it was one.
func (c *pendingComments) add(v any) bool {
	comment, ok := v.(sops.Comment)
	switch {
	case !ok:
	case comment.Inline:
		c.inline = append(c.inline, comment.Value)
	default:
		c.head = append(c.head, comment.Value)
	}
	return ok
}

// flush places the comments after the last value: as foot comments of last (the last key or
// item), or as head comments of the collection when it holds no value.
func (c *pendingComments) flush(collection, last *yaml.Node) {
	rest := append(c.head, c.inline...)
	if len(rest) == 0 {
		return
	}
	if last == nil {
		addHeadComments(collection, rest)
	} else {
		addFootComments(last, rest)
	}
}

func commentText(lines []string) string { return "#" + strings.Join(lines, "\n#") }

// The add*Comments helpers attach pending comments to n and return the emptied pending list.
func addHeadComments(n *yaml.Node, lines []string) []string {
	if len(lines) > 0 {
		if c := commentText(lines); n.HeadComment != "" {
			n.HeadComment = c + "\n" + n.HeadComment
		} else {
			n.HeadComment = c
		}
	}
	return nil
}

func addFootComments(n *yaml.Node, lines []string) {
	if len(lines) > 0 {
		if c := commentText(lines); n.FootComment != "" {
			n.FootComment += "\n" + c
		} else {
			n.FootComment = c
		}
	}
}

func addLineComments(n *yaml.Node, lines []string) []string {
	if len(lines) > 0 {
		if c := commentText(lines); n.LineComment != "" {
			n.LineComment += "\n" + c
		} else {
			n.LineComment = c
		}
	}
	return nil
}

// scalarNode returns the node Node.Encode would make for v. Node.Encode marshals v and parses
// the text back, so its node carries the style the marshaller chose. For the values handled
// directly, re-emitting the node without that style gives the same text: a string the
// marshaller writes plain (or single-quoted, when the emitter refuses plain) is emitted the
// same way from a plain !!str node, and one it double-quotes because it would read as another
// type is double-quoted again because the !!str tag then has to be kept. The exceptions are
// the strings the marshaller quotes for YAML 1.1 readers only (yes/no/on/off, sexagesimal
// numbers): those, multi-line strings, floats and anything unusual take the slow path.
func scalarNode(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case string:
		if plainSafe(v) {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}, nil
		}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, fmt.Errorf("marshaling a %T value to YAML: %w", v, err)
	}
	return n, nil
}

// plainSafe reports whether s is a string whose node scalarNode may build directly: printable
// ASCII on one line, starting with a letter (so never a number, a sexagesimal or a
// timestamp), and not one of YAML 1.1's boolean words. Other text (line breaks, Unicode the
// emitter treats specially) keeps sops' path.
func plainSafe(s string) bool {
	if s == "" || !isASCIILetter(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
		"on", "On", "ON", "off", "Off", "OFF":
		return false
	}
	return true
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
