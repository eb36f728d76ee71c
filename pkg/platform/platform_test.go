package platform

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/spec"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.WithCRDs(testenv.PlatformCRDs()...))
}

// repoRoot is where the repository's own manifests/ and examples/ live.
const repoRoot = "../.."

func exampleSpec(t *testing.T) *spec.Cluster {
	t.Helper()
	c, _, err := spec.LoadValid(filepath.Join(repoRoot, "examples", "nerv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRepositoryManifestsAreGenerated fails when manifests/platform or manifests/policies
// drift from what examples/nerv.yaml renders. UPDATE_GOLDEN=1 rewrites them.
func TestRepositoryManifestsAreGenerated(t *testing.T) {
	tree, err := Render(exampleSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if _, err := nixos.Write(repoRoot, tree, nixos.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := nixos.Write(repoRoot, tree, nixos.WriteOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if changes.Pending() {
		var b strings.Builder
		for _, c := range changes {
			b.WriteString(c.Diff)
		}
		t.Fatalf("manifests/ drifted from examples/nerv.yaml; run `UPDATE_GOLDEN=1 go test ./pkg/platform -run TestRepositoryManifestsAreGenerated`:\n%s", b.String())
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	c := exampleSpec(t)
	a, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d files, then %d", len(a), len(b))
	}
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two renders", p)
		}
	}
}

func TestRenderUsesTheSpec(t *testing.T) {
	c := exampleSpec(t)
	c.Spec.Network.LoadBalancerPool = spec.IPRange{Start: "10.0.0.200", End: "10.0.0.210"}
	c.Spec.Network.ServiceIPs = spec.ServiceIPs{ArgoCD: "10.0.0.200", Longhorn: "10.0.0.201", Traefik: "10.0.0.202"}
	c.Spec.GitOps.RepoURL = "https://git.example/site.git"
	tree, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ file, text string }{
		{"manifests/platform/metallb-config/ipaddresspool.yaml", "10.0.0.200-10.0.0.210"},
		{"manifests/platform/argocd.yaml", "metallb.io/loadBalancerIPs: 10.0.0.200"},
		{"manifests/platform/longhorn.yaml", "loadBalancerIP: 10.0.0.201"},
		{"manifests/platform/traefik.yaml", "metallb.io/loadBalancerIPs: 10.0.0.202"},
		{"manifests/platform/root.yaml", "repoURL: https://git.example/site.git"},
		{"manifests/platform/nerv-webhook.yaml", "repoURL: https://git.example/site.git"},
		{"manifests/policies/argocd.yaml", "cidr: 192.168.1.100/32"},
	} {
		if !strings.Contains(string(tree[want.file]), want.text) {
			t.Errorf("%s does not contain %q:\n%s", want.file, want.text, tree[want.file])
		}
	}
}

func TestRenderRejectsASpecWithoutRepo(t *testing.T) {
	c := exampleSpec(t)
	c.Spec.GitOps.RepoURL = ""
	if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "spec.gitops.repoURL") {
		t.Fatalf("err = %v, want one naming spec.gitops.repoURL", err)
	}
}

// TestEveryPlatformNamespaceIsDefaultDeny checks the property nerv-webhook's network policy
// relies on: each platform namespace has a default deny selecting every pod, and every
// policy that opens ingress to the world says why.
func TestEveryPlatformNamespaceIsDefaultDeny(t *testing.T) {
	tree, err := Render(exampleSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	denied := map[string]bool{}
	for _, obj := range objects(t, tree) {
		if obj.GetKind() != "NetworkPolicy" {
			continue
		}
		var np networkingv1.NetworkPolicy
		b, _ := obj.MarshalJSON()
		if err := yaml.Unmarshal(b, &np); err != nil {
			t.Fatal(err)
		}
		if np.Name == DefaultDenyName && len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 {
			denied[np.Namespace] = true
		}
		for _, r := range np.Spec.Ingress {
			if len(r.From) == 0 && np.Annotations[AllowWorldAnnotation] == "" {
				t.Errorf("%s/%s opens ingress to the world without %s", np.Namespace, np.Name, AllowWorldAnnotation)
			}
		}
	}
	for _, ns := range []string{NamespaceArgoCD, NamespaceMetalLB, NamespaceCertManager, NamespaceTraefik, NamespaceLonghorn, NamespaceNERV} {
		if !denied[ns] {
			t.Errorf("namespace %s has no default-deny NetworkPolicy", ns)
		}
	}
}

// TestRenderedObjectsPassServerSideDryRun creates every rendered object with dryRun=All
// against the real apiserver (platform CRDs installed): schema, names and references must be
// acceptable to Kubernetes itself.
func TestRenderedObjectsPassServerSideDryRun(t *testing.T) {
	tree, err := Render(exampleSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	objs := objects(t, tree)
	// Namespaces are created for real first: dry-run objects in them need them to exist.
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			if err := env.Client.Create(ctx, o.DeepCopy()); err != nil {
				t.Fatalf("creating namespace %s: %v", o.GetName(), err)
			}
		}
	}
	for _, ns := range []string{NamespaceArgoCD, "default"} {
		_ = env.Client.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}})
	}
	kinds := map[string]int{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" || o.GetKind() == "Kustomization" {
			continue
		}
		if err := env.Client.Create(ctx, o.DeepCopy(), client.DryRunAll); err != nil {
			t.Errorf("dry-run create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"Application", "IPAddressPool", "L2Advertisement", "ClusterIssuer", "Certificate", "NetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("no %s rendered (rendered kinds: %v)", k, kinds)
		}
	}
}

// objects decodes every YAML document of the tree, in path order.
func objects(t *testing.T, tree nixos.Tree) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	paths := tree.Paths()
	sort.Strings(paths)
	for _, p := range paths {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(tree[p]), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", p, err)
			}
			if m == nil {
				continue
			}
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
	return out
}
