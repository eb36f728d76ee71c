package sopsdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// sopsKey is the top-level key sops adds to every encrypted YAML/JSON document.
var sopsKey = []byte("sops")

// yamlDoc is one document of a YAML stream with the MAC of its sops metadata, if any.
// sops writes the same metadata (and so the same MAC) into every document of a multi-document
// file it encrypted, and the MAC covers all of them: documents sharing a MAC must be
// decrypted together, while files concatenated from separately encrypted ones carry
// different MACs and are decrypted one group at a time.
type yamlDoc struct {
	node *yaml.Node
	mac  string // "" when the document is not SOPS-encrypted
}

// splitYAML parses every document of data. The error names the line, as yaml.v3 reports it.
func splitYAML(data []byte) ([]yamlDoc, error) {
	var docs []yamlDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(n.Content) == 0 {
			continue // a document holding only comments
		}
		docs = append(docs, yamlDoc{node: &n, mac: yamlSopsMAC(&n)})
	}
}

// yamlSopsMAC returns the mac of the document's top-level sops mapping, "" when absent.
func yamlSopsMAC(doc *yaml.Node) string {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return ""
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "sops" || m.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		md := m.Content[i+1]
		for j := 0; j+1 < len(md.Content); j += 2 {
			if md.Content[j].Value == "mac" {
				// An empty MAC still marks the document as sops' (tampering shows up later).
				if md.Content[j+1].Value == "" {
					return "(empty)"
				}
				return md.Content[j+1].Value
			}
		}
		// sops metadata without a mac key: treat as encrypted so decryption reports it.
		return "(missing)"
	}
	return ""
}

// jsonSopsMAC checks a JSON document (also the layout of sops' binary store). It returns
// whether the JSON is valid, and the sops MAC when the top level is an object with sops metadata.
func jsonSopsMAC(data []byte) (mac string, err error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return "", fmt.Errorf("line %d: %s", lineOf(data, se.Offset), se.Error())
		}
		return "", fmt.Errorf("invalid JSON")
	}
	if !bytes.Contains(data, sopsKey) {
		return "", nil
	}
	var top struct {
		Sops *struct {
			MAC *string `json:"mac"`
		} `json:"sops"`
	}
	if json.Unmarshal(data, &top) != nil || top.Sops == nil {
		return "", nil // valid JSON, but not an object with sops metadata (e.g. a List array)
	}
	if top.Sops.MAC == nil {
		return "(missing)", nil
	}
	if *top.Sops.MAC == "" {
		return "(empty)", nil
	}
	return *top.Sops.MAC, nil
}

// lineOf returns the 1-based line of a byte offset.
func lineOf(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// flatSopsMarked reports whether a dotenv or INI file carries sops metadata (sops_mac= lines
// for dotenv, a [sops] section with mac for INI).
func flatSopsMarked(format Format, data []byte) bool {
	switch format {
	case FormatDotenv:
		return bytes.HasPrefix(data, []byte("sops_mac=")) || bytes.Contains(data, []byte("\nsops_mac="))
	case FormatINI:
		return bytes.Contains(data, []byte("[sops]")) && bytes.Contains(data, []byte("mac"))
	}
	return false
}

// Detect reports whether the file named name holds at least one SOPS-encrypted document.
// Files that cannot be parsed are not SOPS files.
func Detect(name string, data []byte) bool {
	if !bytes.Contains(data, sopsKey) {
		return false
	}
	switch f := FormatForPath(name); f {
	case FormatYAML:
		docs, err := splitYAML(data)
		if err != nil {
			return false
		}
		for _, d := range docs {
			if d.mac != "" {
				return true
			}
		}
		return false
	case FormatDotenv, FormatINI:
		return flatSopsMarked(f, data)
	default:
		mac, err := jsonSopsMAC(data)
		return err == nil && mac != ""
	}
}
