package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	ex := string(Example())
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error, in order
	}{
		{
			name: "unknown field with suggestion",
			doc:  strings.Replace(ex, "      role: server\n", "      rol: server\n", 1),
			want: []string{"nerv.yaml: line 49: spec.nodes[0].rol: unknown field (did you mean \"role\"?)"},
		},
		{
			name: "unknown top-level field",
			doc:  ex + "status: {}\n",
			want: []string{"nerv.yaml: line 52: status: unknown field"},
		},
		{
			name: "unknown field in nested struct, case",
			doc:  strings.Replace(ex, "    repoURL:", "    repoUrl:", 1),
			want: []string{"spec.gitops.repoUrl: unknown field (did you mean \"repoURL\"?)"},
		},
		{
			name: "bool expected",
			doc:  strings.Replace(ex, "clusterInit: true", "clusterInit: yes please", 1),
			want: []string{"line 51: spec.nodes[0].clusterInit: expected true or false, got \"yes please\""},
		},
		{
			name: "string expected",
			doc:  strings.Replace(ex, `release: "25.11"`, "release: 25.11", 1),
			want: []string{"spec.nixos.release: expected a string, got the number 25.11 (quote the value)"},
		},
		{
			name: "list expected",
			doc:  strings.Replace(ex, "    dns:\n      - 192.168.1.1\n      - 1.1.1.1\n", "    dns: 192.168.1.1\n", 1),
			want: []string{"spec.network.dns: expected a list, got \"192.168.1.1\""},
		},
		{
			name: "every problem reported",
			doc:  strings.Replace(strings.Replace(ex, "    repoURL:", "    repo:", 1), "      disk:", "      disc:", 1),
			want: []string{"spec.gitops.repo: unknown field", "spec.nodes[0].disc: unknown field"},
		},
		{
			name: "syntax error has a line",
			doc:  "apiVersion: nerv.dev/v1alpha1\nkind: Cluster\nspec:\n  nodes: [\n",
			want: []string{"nerv.yaml: line "},
		},
		{
			name: "duplicate key",
			doc:  "apiVersion: nerv.dev/v1alpha1\nkind: Cluster\nkind: Cluster\n",
			want: []string{"nerv.yaml: line 3: kind: duplicate key (first at line 2)"},
		},
		{name: "empty", doc: "# nothing\n", want: []string{"nerv.yaml: empty document"}},
		{name: "two documents", doc: ex + "---\nkind: Cluster\n", want: []string{"nerv.yaml:", "more than one YAML document"}},
		{name: "not a mapping", doc: "- a\n", want: []string{"line 1: (document): expected a mapping"}},
		{
			name: "apiVersion",
			doc:  strings.Replace(ex, "nerv.dev/v1alpha1", "nerv.dev/v2", 1),
			want: []string{`nerv.yaml: apiVersion: "nerv.dev/v2" is not supported: use nerv.dev/v1alpha1`},
		},
		{
			name: "kind",
			doc:  strings.Replace(ex, "kind: Cluster", "kind: Node", 1),
			want: []string{`nerv.yaml: kind: "Node" is not supported: use Cluster`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "nerv.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q does not contain %q", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestParseAcceptsNullsAndAliases(t *testing.T) {
	doc := strings.Replace(string(Example()), "    interface: eno1\n", "    interface: ~\n", 1)
	c, err := Parse([]byte(doc), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Network.Interface != "" {
		t.Fatalf("interface %q", c.Spec.Network.Interface)
	}
}

func TestLoad(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("got %v", err)
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("apiVersion: nerv.dev/v1alpha1\nkind: Cluster\nmetdata: {}\n"), 0o644)
	_, err = Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": line 3: metdata: unknown field (did you mean \"metadata\"?)") {
		t.Fatalf("got %v", err)
	}
	// LoadValid reports validation problems with the file name.
	p2 := filepath.Join(t.TempDir(), "nerv.yaml")
	os.WriteFile(p2, []byte(strings.Replace(string(Example()), "ip: 192.168.1.100", "ip: 192.168.1.112", 1)), 0o644)
	_, _, err = LoadValid(p2)
	if err == nil || err.Error() != p2+": spec.nodes[0].ip: 192.168.1.112 is inside the LoadBalancer pool 192.168.1.110-192.168.1.115" {
		t.Fatalf("got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Example())
	f.Add([]byte("apiVersion: nerv.dev/v1alpha1\nkind: Cluster\nspec: {nodes: [{name: a}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.yaml")
		if err != nil {
			return
		}
		c.Default()
		_, _ = c.Validate()
		if _, err := Marshal(c); err != nil {
			t.Fatalf("parsed spec does not marshal: %v", err)
		}
	})
}
