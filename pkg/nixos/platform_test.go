package nixos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/platform"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// servicesProbe evaluates the rendered service modules without nixpkgs: a stub lib whose
// mkOption yields the option's default, the option values from site.nix, a server node, and
// the result is what the modules put in services.k3s.manifests.
const servicesProbe = `
let
  stubType = _: null;
  lib = {
    mkOption = a: a.default or null;
    mkEnableOption = _: false;
    mkIf = cond: value: if cond then value else { };
    literalExpression = x: x;
    types = {
      str = null;
      bool = null;
      int = null;
      listOf = stubType;
      attrsOf = stubType;
      enum = stubType;
      ints.between = _: stubType;
    };
  };
  site = (import ./site.nix) { pkgs.k3s = null; };
  modules = [ MODULES ];
  defaults = builtins.foldl' (acc: m: acc // (import m { inherit lib; config = { }; }).options.nerv.services) { } modules;
  services = builtins.mapAttrs (name: d: d // (site.nerv.services.${name} or { })) defaults;
  config.nerv = site.nerv // {
    inherit services;
    node.role = "server";
  };
in
builtins.foldl' (acc: m: acc // (import m { inherit lib config; }).config.services.k3s.manifests) { } modules
`

type object = map[string]any

func key(o object) string {
	meta, _ := o["metadata"].(map[string]any)
	return fmt.Sprintf("%v %v/%v", o["kind"], meta["namespace"], meta["name"])
}

// normalize round-trips through JSON so that numbers and maps compare alike.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The k3s bootstrap manifests of the NixOS layer and the app-of-apps ArgoCD syncs declare the
// same objects: once ArgoCD takes over, nothing changes and nothing fights.
func TestBootstrapManifestsMatchTheAppOfApps(t *testing.T) {
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("nix-instantiate not found (%v): install Debian's nix-bin, see hack/test-assets.sh", err)
	}
	for _, file := range []string{"../../examples/nerv.yaml", "../spec/testdata/ha.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, _, err := spec.LoadValid(file)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := nixos.Render(c)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if _, err := nixos.Write(dir, tree, nixos.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			var modules []string
			for _, p := range tree.Paths() {
				if strings.HasPrefix(p, "nixos/modules/services/") {
					modules = append(modules, "./"+strings.TrimPrefix(p, "nixos/"))
				}
			}
			probe := filepath.Join(dir, "nixos", "probe.nix")
			os.WriteFile(probe, []byte(strings.Replace(servicesProbe, "MODULES", strings.Join(modules, " "), 1)), 0o644)
			cmd := exec.Command(bin, "--eval", "--strict", "--json", probe)
			cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("evaluating the service modules: %v\n%s", err, stderr.String())
			}
			var manifests map[string]struct {
				Content json.RawMessage `json:"content"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &manifests); err != nil {
				t.Fatal(err)
			}
			ours := map[string]object{}
			for name, m := range manifests {
				var list []object
				if err := json.Unmarshal(m.Content, &list); err != nil {
					var one object
					if err := json.Unmarshal(m.Content, &one); err != nil {
						t.Fatalf("manifest %s: %v", name, err)
					}
					list = []object{one}
				}
				for _, o := range list {
					ours[key(o)] = o
				}
			}

			theirs := map[string]object{}
			rendered, err := platform.Render(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range rendered {
				dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
				for {
					var o object
					if err := dec.Decode(&o); err != nil {
						break
					}
					if o != nil && o["kind"] != "Kustomization" {
						theirs[key(o)] = o
					}
				}
			}

			for _, k := range []string{
				"Application argocd/root",
				"Application argocd/metallb",
				"Application argocd/cert-manager",
				"Application argocd/traefik",
				"Application argocd/longhorn",
				"IPAddressPool metallb-system/nerv",
				"L2Advertisement metallb-system/nerv",
			} {
				o, ok := ours[k]
				if !ok {
					t.Errorf("the NixOS layer does not bootstrap %s", k)
					continue
				}
				want, ok := theirs[k]
				if !ok {
					t.Errorf("the app-of-apps does not declare %s", k)
					continue
				}
				if got, want := normalize(t, o), normalize(t, want); !reflect.DeepEqual(got, want) {
					g, _ := json.MarshalIndent(got, "", "  ")
					w, _ := json.MarshalIndent(want, "", "  ")
					t.Errorf("%s differs:\nNixOS layer:\n%s\napp-of-apps:\n%s", k, g, w)
				}
			}

			// ArgoCD: the HelmChart installs the chart version and values ArgoCD then manages
			// itself with.
			hc, ok := ours["HelmChart kube-system/argocd"]
			if !ok {
				t.Fatal("no ArgoCD HelmChart")
			}
			hspec := hc["spec"].(map[string]any)
			var values any
			if err := json.Unmarshal([]byte(hspec["valuesContent"].(string)), &values); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(values, normalize(t, platform.ArgoCDValues(c))) {
				t.Errorf("ArgoCD values differ: %v vs %v", values, platform.ArgoCDValues(c))
			}
			if hspec["version"] != platform.ArgoCDChartVersion {
				t.Errorf("ArgoCD chart %v, app-of-apps %s", hspec["version"], platform.ArgoCDChartVersion)
			}
		})
	}
}
