package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// valid returns the example spec, parsed and defaulted: the base every test mutates.
func valid(t testing.TB) *Cluster {
	t.Helper()
	c, err := Parse(Example(), "nerv.yaml")
	if err != nil {
		t.Fatalf("example does not parse: %v", err)
	}
	c.Default()
	return c
}

func TestExampleMatchesRepository(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("..", "..", "examples", "nerv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(Example()) {
		t.Fatalf("examples/nerv.yaml differs from pkg/spec/example.yaml: copy pkg/spec/example.yaml over it")
	}
}

func TestExamplesValidate(t *testing.T) {
	for _, f := range []string{"../../examples/nerv.yaml", "testdata/three-node.yaml", "testdata/ha.yaml"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, warnings, err := LoadValid(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %v", warnings)
			}
			if c.Source() != f {
				t.Errorf("source %q", c.Source())
			}
			if fs := c.FirstServer(); fs == nil || !fs.ClusterInit {
				t.Errorf("first server %+v", fs)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	c := &Cluster{APIVersion: APIVersion, Kind: Kind}
	c.Spec.Network.Gateway = "10.0.0.1"
	c.Spec.Network.LoadBalancerPool = IPRange{Start: "10.0.0.200", End: "10.0.0.210"}
	c.Spec.Network.ServiceIPs.ArgoCD = "10.0.0.201" // taken: the others must skip it
	c.Default()
	s := c.Spec
	checks := map[string][2]string{
		"interface": {s.Network.Interface, "eno1"},
		"dns":       {strings.Join(s.Network.DNS, ","), "10.0.0.1"},
		"argocd":    {s.Network.ServiceIPs.ArgoCD, "10.0.0.201"},
		"longhorn":  {s.Network.ServiceIPs.Longhorn, "10.0.0.200"},
		"traefik":   {s.Network.ServiceIPs.Traefik, "10.0.0.202"},
		"user":      {s.Admin.User, "admin"},
		"revision":  {s.GitOps.Revision, "main"},
		"path":      {s.GitOps.Path, "manifests/platform"},
		"package":   {s.K3s.Package, "k3s"},
		"token":     {s.K3s.TokenSecret, "k3s-token"},
		"release":   {s.NixOS.Release, DefaultNixOSRelease},
		"tz":        {s.NixOS.TimeZone, "UTC"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: got %q, want %q", name, c[0], c[1])
		}
	}
	before, _ := Marshal(c)
	c.Default()
	after, _ := Marshal(c)
	if string(before) != string(after) {
		t.Errorf("Default is not idempotent:\n%s\n%s", before, after)
	}
}
