package nixos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// optionsProbe evaluates, without nixpkgs, what the rendered tree declares and sets under
// nerv.*: every module is called with a stub lib whose mkOption records the option's type
// and whether it has a default (config is never forced), and site.nix and each host's
// default.nix are evaluated to plain values. The test then checks the two agree: each value
// sets a declared option, with a value of the declared type, and every option without a
// default is set for every host.
const optionsProbe = `
let
  types = {
    str = "str";
    bool = "bool";
    int = "int";
    package = "package";
    listOf = t: "listOf " + t;
    attrsOf = t: "attrsOf " + t;
    enum = values: "enum " + builtins.concatStringsSep "|" values;
    ints.between = lo: hi: "int";
  };
  lib = {
    inherit types;
    mkOption = a: { _option = a.type; _hasDefault = a ? default; };
    mkEnableOption = description: { _option = "bool"; _hasDefault = true; };
    literalExpression = x: x;
    optional = cond: x: if cond then [ x ] else [ ];
  };
  args = {
    inherit lib;
    config = throw "config must not be forced";
    options = { };
    pkgs = { };
  };
  modules = [ MODULES ];
  host = name: builtins.removeAttrs ((import (./hosts + "/${name}/default.nix")) { inherit lib; }) [ "imports" ];
in
{
  declared = map (m: (import m args).options or { }) modules;
  site = (import ./site.nix) { pkgs.k3s = "package"; };
  hosts = builtins.listToAttrs (map (name: { inherit name; value = host name; }) [ HOSTS ]);
}
`

type probeResult struct {
	Declared []map[string]any          `json:"declared"`
	Site     map[string]any            `json:"site"`
	Hosts    map[string]map[string]any `json:"hosts"`
}

type optionDecl struct {
	typ        string
	hasDefault bool
}

// flattenOptions collects option paths (nerv.node.ip) from the declared trees.
func flattenOptions(prefix string, v any, out map[string]optionDecl) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if t, ok := m["_option"].(string); ok {
		out[prefix] = optionDecl{typ: t, hasDefault: m["_hasDefault"] == true}
		return
	}
	for k, sub := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flattenOptions(p, sub, out)
	}
}

// checkValue walks a value set under nerv and reports values that set no declared option
// or have the wrong type; set records the options it sets.
func checkValue(path string, v any, decl map[string]optionDecl, set map[string]bool) []string {
	if d, ok := decl[path]; ok {
		set[path] = true
		if !typeMatches(d.typ, v) {
			return []string{fmt.Sprintf("%s = %v does not have the declared type %s", path, v, d.typ)}
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s is set but no module declares it", path)}
	}
	var problems []string
	for k, sub := range m {
		problems = append(problems, checkValue(path+"."+k, sub, decl, set)...)
	}
	return problems
}

func typeMatches(typ string, v any) bool {
	switch {
	case typ == "str" || typ == "package":
		_, ok := v.(string)
		return ok
	case typ == "bool":
		_, ok := v.(bool)
		return ok
	case typ == "int":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case strings.HasPrefix(typ, "enum "):
		s, ok := v.(string)
		for _, allowed := range strings.Split(strings.TrimPrefix(typ, "enum "), "|") {
			if ok && s == allowed {
				return true
			}
		}
		return false
	case strings.HasPrefix(typ, "listOf "):
		items, ok := v.([]any)
		for _, it := range items {
			ok = ok && typeMatches(strings.TrimPrefix(typ, "listOf "), it)
		}
		return ok
	case strings.HasPrefix(typ, "attrsOf "):
		m, ok := v.(map[string]any)
		for _, it := range m {
			ok = ok && typeMatches(strings.TrimPrefix(typ, "attrsOf "), it)
		}
		return ok
	}
	return false
}

func TestRenderedValuesMatchDeclaredOptions(t *testing.T) {
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("nix-instantiate not found (%v): install Debian's nix-bin, see hack/test-assets.sh", err)
	}
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			c := load(t, g.spec)
			tree := render(t, g.spec)
			dir := t.TempDir()
			if _, err := Write(dir, tree, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			var modules, hosts []string
			for _, p := range tree.Paths() {
				if strings.HasPrefix(p, "nixos/modules/") {
					modules = append(modules, "./"+strings.TrimPrefix(p, "nixos/"))
				}
			}
			for _, n := range c.Spec.Nodes {
				hosts = append(hosts, nixString(n.Name))
			}
			expr := strings.NewReplacer("MODULES", strings.Join(modules, " "), "HOSTS", strings.Join(hosts, " ")).Replace(optionsProbe)
			probe := filepath.Join(dir, "nixos", "probe.nix")
			if err := os.WriteFile(probe, []byte(expr), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "--eval", "--strict", "--json", probe)
			cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("evaluating the probe: %v\n%s", err, stderr.String())
			}
			var res probeResult
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			decl := map[string]optionDecl{}
			for _, d := range res.Declared {
				flattenOptions("", d, decl)
			}
			if len(decl) < 30 {
				t.Fatalf("only %d options declared: the probe is broken", len(decl))
			}
			siteSet := map[string]bool{}
			problems := checkValue("nerv", res.Site["nerv"], decl, siteSet)
			for _, n := range c.Spec.Nodes {
				set := map[string]bool{}
				for k := range siteSet {
					set[k] = true
				}
				h := res.Hosts[n.Name]
				if h == nil {
					t.Fatalf("host %s not evaluated", n.Name)
				}
				problems = append(problems, checkValue("nerv", h["nerv"], decl, set)...)
				for p, d := range decl {
					if !d.hasDefault && !set[p] {
						problems = append(problems, fmt.Sprintf("%s: %s has no default and is not set", n.Name, p))
					}
				}
			}
			sort.Strings(problems)
			for _, p := range problems {
				t.Error(p)
			}
			// Spot-check that values arrive with their types.
			if net := res.Site["nerv"].(map[string]any)["network"].(map[string]any); net["prefixLength"] != float64(24) {
				t.Errorf("prefixLength %v", net["prefixLength"])
			}
		})
	}
}

// The probe's checks can fail: a value for an undeclared option and a mistyped value are
// reported.
func TestCheckValueReportsProblems(t *testing.T) {
	decl := map[string]optionDecl{"nerv.node.ip": {typ: "str"}, "nerv.node.clusterInit": {typ: "bool", hasDefault: true}}
	v := map[string]any{"node": map[string]any{"ip": "1.2.3.4", "clusterinit": true, "clusterInit": "yes"}}
	got := checkValue("nerv", v, decl, map[string]bool{})
	sort.Strings(got)
	want := []string{
		"nerv.node.clusterInit = yes does not have the declared type bool",
		"nerv.node.clusterinit is set but no module declares it",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q", got)
	}
}
