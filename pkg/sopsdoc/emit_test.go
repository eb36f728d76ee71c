package sopsdoc

import (
	"bytes"
	"strings"
	"testing"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/config"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
)

// emitDocs are YAML texts whose sops trees cover what emitYAML builds itself (plain
// strings, ints, bools, nulls, comments in every position) and what it leaves to Node.Encode
// (strings YAML would read as something else, YAML 1.1 words, multi-line and Unicode text,
// floats).
var emitDocs = map[string]string{
	"secret": `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app.kubernetes.io/name: db
type: Opaque
stringData:
  username: admin
  password: s3cr3t-P@ss w0rd
  url: postgres://db.prod.svc:5432/app?sslmode=require
`,
	"comments": `# head of the document
a: 1 # inline after a
# before b
b:
  # first in b
  c: x
  d: y # inline after d
  # trailing in b
list:
  # before the first item
  - one # inline one
  - two
  # after the last item
e: {}
f: []
# at the very end
`,
	"tricky strings": `s1: "yes"
s2: "no"
s3: "on"
s4: "Off"
s5: "y"
s6: "N"
s7: "true"
s8: "False"
s9: "null"
s10: "~"
s11: "123"
s12: "1:20"
s13: "0x1F"
s14: "1e3"
s15: ".inf"
s16: "2001-12-14"
s17: ""
s18: " leading"
s19: "trailing "
s20: "- dash"
s21: "a: b"
s22: "#hash"
s23: "x #y"
s24: "tab	in"
s25: "quote ' and \" both"
s26: "grüße"
s27: "line\u2028sep"
s28: "@at"
s29: "` + "`" + `tick"
s30: "a,b[c]{d}"
s31: "<<"
s32: "Yes please"
s33: "!tag"
s34: "&anchor"
s35: "*alias"
s36: "%percent"
s37: "|pipe"
s38: ">fold"
s39: "?q"
s40: "Null"
s41: "NaN"
s42: "=eq"
s43: "-"
s44: "a\rb"
`,
	"scalars": `i: 42
neg: -7
big: 123456789012345678901
f: 1.5
e: 1e-9
inf: .inf
nan: .nan
t: true
n: null
tilde: ~
empty:
date: 2001-12-14
bin: !!binary aGVsbG8=
`,
	"multi-line": `cert: |
  -----BEGIN CERTIFICATE-----
  MIIBszCCAVmgAwIBAgIU
  -----END CERTIFICATE-----
folded: >
  one
  two
keep: |+
  kept

strip: |-
  stripped
indented: |2
   leading space
`,
	"nested": `a:
  - b: 1
    c:
      - d
      - - e
        - f
  - [g, h]
  - {i: j}
1: int key
true: bool key
`,
	"documents": `a: 1
---
b: 2
---
# only a comment
c: [3]
`,
}

// TestEmitYAMLMatchesSops holds emitYAML to the bytes sops' own YAML store writes for the
// same tree.
func TestEmitYAMLMatchesSops(t *testing.T) {
	for name, doc := range emitDocs {
		t.Run(name, func(t *testing.T) {
			store := sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: 2})
			branches, err := store.LoadPlainFile([]byte(doc))
			if err != nil {
				t.Fatalf("sops cannot load the fixture: %v", err)
			}
			assertEmitMatches(t, branches)
		})
	}
}

// TestScalarNodeFastPath checks that the values the fast path takes produce sops' bytes on
// their own, as keys, as values and as sequence items.
func TestScalarNodeFastPath(t *testing.T) {
	values := []any{"plain", "Plain words here", "a:b", "v1.2.3", "a#b", "x-y_z.w/v", "yesterday",
		"Norway", "one two", "True1", "nullable", strings.Repeat("long words wrap ", 20), 0, 1, -1, 1 << 62,
		true, false, nil}
	for _, v := range values {
		assertEmitMatches(t, scalarTree(v))
	}
}

func scalarTree(v any) sops.TreeBranches {
	key := v
	if v == nil {
		key = "nil" // a nil key is not a tree sops makes
	}
	return sops.TreeBranches{{
		{Key: key, Value: v},
		{Key: "list", Value: []any{v, v}},
		{Key: "map", Value: sops.TreeBranch{{Key: key, Value: v}}},
	}}
}

func assertEmitMatches(t *testing.T, branches sops.TreeBranches) {
	t.Helper()
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: 2})
	want, wantErr := store.EmitPlainFile(branches)
	got, err := emitYAML(branches)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("error mismatch: emitYAML %v, sops %v", err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("emitYAML differs from sops\n--- sops:\n%s\n--- emitYAML:\n%s", want, got)
	}
}

// FuzzEmitYAML compares emitYAML with sops' store on any YAML sops loads, and on any string
// used as a key and a value.
func FuzzEmitYAML(f *testing.F) {
	for _, doc := range emitDocs {
		f.Add(doc, "")
	}
	for _, s := range []string{"yes", "1:2", "a: b", " x", "x ", "é", "a\nb", "0o17", "+1", "Y"} {
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, doc, scalar string) {
		assertEmitMatches(t, scalarTree(scalar))
		store := sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: 2})
		branches, err := store.LoadPlainFile([]byte(doc))
		if err != nil {
			return
		}
		assertEmitMatches(t, branches)
	})
}
