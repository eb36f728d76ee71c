package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/pkg/policy"
)

const (
	validDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.example/web:1
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {memory: 256Mi}
`
	noLimitsDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: app
        image: registry.example/api:1
        resources:
          requests: {cpu: 100m, memory: 128Mi}
      - name: proxy
        image: registry.example/proxy:1
        resources:
          requests: {cpu: 100m, memory: 128Mi}
`
	defaultDenyShop = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: shop
spec:
  podSelector: {}
  policyTypes: [Ingress]
`
)

// runIn executes the real command tree with stdin and returns stdout, stderr and the exit code.
func runIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	cmd := NewRootCommand(streams)
	cmd.SetArgs(args)
	code := Execute(cmd, streams)
	return out.String(), errOut.String(), code
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"clean.yaml":              defaultDenyShop + "---\n" + validDeployment + "---\n",
		"bad.yaml":                defaultDenyShop + "---\n" + noLimitsDeployment,
		"nonetpol.yaml":           validDeployment,
		"tree/a.yaml":             defaultDenyShop,
		"tree/sub/b.yaml":         validDeployment,
		"tree/notes.txt":          "not a manifest",
		"kust/kustomization.yaml": "namespace: shop\nresources: [deploy.yaml, netpol.yaml]\n",
		"kust/deploy.yaml":        strings.ReplaceAll(validDeployment, "  namespace: shop\n", ""),
		"kust/netpol.yaml":        strings.ReplaceAll(defaultDenyShop, "  namespace: shop\n", ""),
		"exemptns.yaml":           "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {nerv.dev/policy: exempt}\n---\n" + noLimitsDeployment,
		"list.json":               `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}]}`,
		"warn.yaml":               "apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\npolicies:\n  resources: {mode: warn}\n",
		"audit.yaml":              "apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\npolicies:\n  resources: {mode: audit}\n  network: {mode: audit}\n",
		"badconfig.yaml":          "apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\npolicies:\n  resources: {mode: strict}\n",
		"broken.yaml":             validDeployment + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   labels: {}\n",
		"scalar.yaml":             defaultDenyShop + "---\njust a string\n",
		"badqty.yaml":             defaultDenyShop + "---\n" + strings.Replace(validDeployment, "memory: 256Mi", "memory: lots", 1),
	})
	p := func(name string) string { return filepath.Join(dir, name) }

	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   []string // substrings of stdout
		err   []string // substrings of stderr
	}{
		{name: "clean file", args: []string{"-f", p("clean.yaml")}, code: 0, out: []string{"2 objects checked", "no violations"}},
		{
			name: "violations name file, line, object, field", args: []string{"-f", p("bad.yaml")}, code: 1,
			out: []string{
				p("bad.yaml") + ":10  Deployment shop/api",
				"enforce resources  spec.template.spec.containers[0].resources.limits.memory",
				"spec.template.spec.containers[1].resources.limits.memory",
				`container "proxy" does not set limits.memory`,
				"2 violation(s) in 1 of 2 objects",
			},
		},
		{
			name: "network policy judged against the input only", args: []string{"-f", p("nonetpol.yaml")}, code: 1,
			out: []string{"network  spec.template.metadata.labels", `no NetworkPolicy in namespace "shop"`},
		},
		{name: "stdin", stdin: defaultDenyShop + "---\n" + validDeployment, args: []string{"-f", "-"}, code: 0, out: []string{"no violations"}},
		{name: "stdin violations", stdin: noLimitsDeployment, args: []string{"-f", "-"}, code: 1, out: []string{"<stdin>:1  Deployment shop/api"}},
		{name: "directory without -R skips subdirectories", args: []string{"-f", p("tree")}, code: 0, out: []string{"1 objects checked"}},
		{name: "directory with -R", args: []string{"-f", p("tree"), "-R"}, code: 0, out: []string{"2 objects checked (2 judged"}},
		{name: "kustomize directory", args: []string{"-f", p("kust")}, code: 0, out: []string{"2 objects checked (2 judged", "no violations"}},
		{name: "namespace label from the input", args: []string{"-f", p("exemptns.yaml")}, code: 0, out: []string{"1 exempt", "no violations"}},
		{name: "-n places objects without namespace", args: []string{"-f", p("list.json"), "-n", "kube-system"}, code: 0, out: []string{"1 exempt"}},
		{name: "List items", args: []string{"-f", p("list.json")}, code: 1, out: []string{p("list.json") + ":1 items[0]  Pod default/p"}},
		{name: "warn mode still fails", args: []string{"-f", p("bad.yaml"), "--config", p("warn.yaml")}, code: 1, out: []string{"warn    resources"}},
		{name: "audit mode lists but passes", args: []string{"-f", p("bad.yaml"), "--config", p("audit.yaml")}, code: 0, out: []string{"audit   resources"}},
		{name: "bad config", args: []string{"-f", p("bad.yaml"), "--config", p("badconfig.yaml")}, code: 2, err: []string{p("badconfig.yaml"), "policies.resources.mode", `"strict"`}},
		{name: "missing config", args: []string{"-f", p("bad.yaml"), "--config", p("nope.yaml")}, code: 2, err: []string{"nope.yaml"}},
		{name: "broken yaml names file and line", args: []string{"-f", p("broken.yaml")}, code: 2, err: []string{p("broken.yaml"), "line 22"}},
		{name: "non-object document", args: []string{"-f", p("scalar.yaml")}, code: 2, err: []string{p("scalar.yaml") + ":10", "not a Kubernetes object"}},
		{name: "bad quantity names object", args: []string{"-f", p("badqty.yaml")}, code: 2, err: []string{p("badqty.yaml") + ":10", "Deployment web"}},
		{name: "missing file", args: []string{"-f", p("absent.yaml")}, code: 2, err: []string{"absent.yaml"}},
		{name: "no input", args: nil, code: 2, err: []string{"no input"}},
		{name: "bad output", args: []string{"-f", p("clean.yaml"), "-o", "xml"}, code: 2, err: []string{"--output"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runIn(t, tt.stdin, append([]string{"validate"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			for _, w := range tt.err {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, errOut)
				}
			}
		})
	}

	t.Run("json and yaml", func(t *testing.T) {
		for _, format := range []string{"json", "yaml"} {
			out, _, code := runIn(t, "", "validate", "-f", p("bad.yaml"), "-o", format)
			if code != 1 {
				t.Fatalf("%s: exit %d", format, code)
			}
			var res policy.ManifestResult
			var err error
			if format == "json" {
				err = json.Unmarshal([]byte(out), &res)
			} else {
				err = yaml.Unmarshal([]byte(out), &res)
			}
			if err != nil {
				t.Fatalf("%s: %v\n%s", format, err, out)
			}
			if res.Objects != 2 || len(res.Violations) != 2 {
				t.Fatalf("%s: %+v", format, res)
			}
			v := res.Violations[1]
			if v.Source != p("bad.yaml")+":10" || v.Policy != "resources" || v.Mode != "enforce" ||
				v.Object.Kind != "Deployment" || v.Object.Name != "api" || v.Field != "spec.template.spec.containers[1].resources.limits.memory" {
				t.Errorf("%s: violation %+v", format, v)
			}
		}
		out, _, _ := runIn(t, "", "validate", "-f", p("clean.yaml"), "-o", "json")
		if !strings.Contains(out, `"violations": []`) {
			t.Errorf("a clean run must print an empty list, not null: %s", out)
		}
	})
}

// The repository's own manifests (the webhook, the plugin, the platform and its policies, as
// `kubectl nerv generate` renders them) pass the policies they install.
func TestValidateRepositoryManifests(t *testing.T) {
	out, errOut, code := runIn(t, "", "validate", "-f", "../../manifests", "-R")
	if code != 0 || !strings.Contains(out, "no violations") {
		t.Fatalf("kubectl nerv validate -f manifests -R: exit %d\n%s%s", code, out, errOut)
	}
}
