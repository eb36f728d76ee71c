package nixos

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/pkg/spec"
)

// go test ./pkg/nixos -update (or UPDATE_GOLDEN=1) rewrites the golden trees, including the
// repository's own nixos/.
var update = flag.Bool("update", os.Getenv("UPDATE_GOLDEN") == "1", "rewrite golden files")

// goldens: spec file → directory holding the expected nixos/ tree. The reference spec's
// golden tree is the repository's own nixos/.
var goldens = []struct{ name, spec, dir string }{
	{"reference", "../../examples/nerv.yaml", "../.."},
	{"three-node", "../spec/testdata/three-node.yaml", "testdata/golden/three-node"},
	{"ha", "../spec/testdata/ha.yaml", "testdata/golden/ha"},
}

func load(t testing.TB, path string) *spec.Cluster {
	t.Helper()
	c, warnings, err := spec.LoadValid(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Fatalf("%s: warnings %v", path, warnings)
	}
	return c
}

func render(t testing.TB, path string) Tree {
	t.Helper()
	tree, err := Render(load(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// userFiles are files a golden nixos/ may hold that NERV does not render.
var userFiles = regexp.MustCompile(`^nixos/(flake\.lock|local\.nix|secrets/secrets\.yaml|hosts/[^/]+/local\.nix)$`)

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			tree := render(t, g.spec)
			if *update {
				changes, err := Write(g.dir, tree, WriteOptions{Force: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range changes {
					if c.Action != Unchanged {
						t.Logf("%s %s", c.Action, c.Path)
					}
				}
			}
			for _, p := range tree.Paths() {
				got, err := os.ReadFile(filepath.Join(g.dir, p))
				if err != nil {
					t.Errorf("%v (run go test ./pkg/nixos -update)", err)
					continue
				}
				if !bytes.Equal(got, tree[p]) {
					t.Errorf("%s drifted from %s (run go test ./pkg/nixos -update):\n%s", filepath.Join(g.dir, p), g.spec, unifiedDiff(p, got, tree[p]))
				}
			}
			// Nothing generated-looking beyond the tree.
			root := filepath.Join(g.dir, Root)
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(g.dir, p)
				rel = filepath.ToSlash(rel)
				if _, ok := tree[rel]; !ok && !userFiles.MatchString(rel) {
					t.Errorf("%s is not rendered from %s: delete it or run go test ./pkg/nixos -update", p, g.spec)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, g := range goldens {
		a, b := render(t, g.spec), render(t, g.spec)
		if len(a) != len(b) {
			t.Fatalf("%s: %d files then %d", g.name, len(a), len(b))
		}
		for p := range a {
			if !bytes.Equal(a[p], b[p]) {
				t.Errorf("%s: %s differs between two renders", g.name, p)
			}
		}
	}
}

// TestNixParses runs nix-instantiate --parse on every rendered .nix file.
func TestNixParses(t *testing.T) {
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("nix-instantiate not found (%v): install Debian's nix-bin, see hack/test-assets.sh", err)
	}
	for _, g := range goldens {
		tree := render(t, g.spec)
		dir := t.TempDir()
		if _, err := Write(dir, tree, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		// One nix-instantiate for the whole tree: it parses each file in turn and names the
		// first that fails.
		var files []string
		for _, p := range tree.Paths() {
			if strings.HasSuffix(p, ".nix") {
				files = append(files, filepath.Join(dir, p))
			}
		}
		n := len(files)
		cmd := exec.Command(bin, append([]string{"--parse"}, files...)...)
		cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s: a rendered file does not parse: %v\n%s", g.name, err, stderr.String())
		}
		if want := len(clusterFiles) - 1 + 3*len(load(t, g.spec).Spec.Nodes); n != want {
			t.Errorf("%s: parsed %d .nix files, want %d", g.name, n, want)
		}
	}
}

// The parse check must be able to fail: a broken file is rejected.
func TestNixParseRejectsBrokenFile(t *testing.T) {
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Skip("covered by TestNixParses' failure")
	}
	p := filepath.Join(t.TempDir(), "broken.nix")
	os.WriteFile(p, []byte("{ a = 1; "), 0o644)
	if exec.Command(bin, "--parse", p).Run() == nil {
		t.Fatal("nix-instantiate accepted a broken file")
	}
}

func TestEveryTemplateIsRendered(t *testing.T) {
	names, err := templateNames()
	if err != nil {
		t.Fatal(err)
	}
	tree := render(t, "../spec/testdata/three-node.yaml")
	for _, n := range names {
		p := Root + "/" + n
		if strings.HasPrefix(n, "hosts/") {
			p = HostDir("misato") + strings.TrimPrefix(n, "hosts")
		}
		if _, ok := tree[p]; !ok {
			t.Errorf("template %s renders no file (%s)", n, p)
		}
	}
}

func TestRenderedContent(t *testing.T) {
	ha := render(t, "../spec/testdata/ha.yaml")
	three := render(t, "../spec/testdata/three-node.yaml")
	ref := render(t, "../../examples/nerv.yaml")
	has := func(tree Tree, p string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(string(tree[p]), w) {
				t.Errorf("%s lacks %q:\n%s", p, w, tree[p])
			}
		}
	}
	lacks := func(tree Tree, p string, w string) {
		t.Helper()
		if strings.Contains(string(tree[p]), w) {
			t.Errorf("%s should not contain %q", p, w)
		}
	}
	// HA: one server initialises, the others join through it; etcd peers are the three servers.
	has(ha, "nixos/hosts/melchior/default.nix", `role = "server";`, "clusterInit = true;")
	lacks(ha, "nixos/hosts/melchior/default.nix", "serverAddr")
	has(ha, "nixos/hosts/balthasar/default.nix", "clusterInit = false;", `serverAddr = "https://192.168.1.121:6443";`)
	has(ha, "nixos/site.nix", `serverIPs = [ "192.168.1.121" "192.168.1.122" "192.168.1.123" ];`,
		`serverFlags = [ "--secrets-encryption" ];`, `time.timeZone = "Europe/Berlin";`)
	has(ha, "nixos/flake.nix", "melchior = mkHost \"melchior\";\n        balthasar = mkHost \"balthasar\";\n        casper = mkHost \"casper\";\n")
	// Agents, interface override, labels, disks.
	has(three, "nixos/hosts/kaji/default.nix", `role = "agent";`, `interface = "enp3s0";`)
	has(three, "nixos/hosts/ritsuko/default.nix", `"nerv.dev/storage" = "longhorn";`)
	has(three, "nixos/hosts/kaji/disk-config.nix", `device = "/dev/disk/by-id/ata-Samsung_SSD_870_EVO_1TB_S6PUNX0R123456";`)
	// Reference: the seed's addresses.
	has(ref, "nixos/site.nix", `addresses = [ "192.168.1.110-192.168.1.115" ];`, `ip = "192.168.1.110";`,
		`ip = "192.168.1.111";`, `ip = "192.168.1.112";`, `cluster.name = "nerv";`,
		`system.stateVersion = "25.11";`)
	has(ref, "nixos/flake.nix", `nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";`, `inputs.nixpkgs.follows = "nixpkgs";`)
	has(ref, "nixos/hosts/misato/disk-config.nix", `device = "/dev/nvme0n1";`, `"@snapshots"`, `"compress=zstd"`)
	// Firewall: public ports by role, node-to-node ports from the subnet, etcd between servers.
	has(ref, "nixos/modules/network.nix", "++ lib.optional isServer 6443;", `"-s ${net.trustedSubnet} -p udp --dport 8472"`,
		`"-s ${net.trustedSubnet} -p tcp --dport 10250"`, `"-s ${net.trustedSubnet} -p udp --dport 7946"`,
		`map (ip: "-s ${ip} -p tcp --dport 2379:2380") (lib.optionals isServer otherServers)`, `"flannel.1"`)
	has(ref, "nixos/modules/users.nix", "PasswordAuthentication = false;", "KbdInteractiveAuthentication = false;",
		`PermitRootLogin = "no";`, "services.fail2ban = {")
	// The token is a sops-nix secret, never a value.
	has(ref, "nixos/modules/node-roles.nix", "tokenFile = config.sops.secrets.${k3s.tokenSecret}.path;")
	for _, p := range ref.Paths() {
		lacks(ref, p, "services.k3s.token =")
		lacks(ref, p, "--token")
	}
	// Placeholder hardware carries the marker; the other files do not.
	if !IsPlaceholderHardware(ref[HardwarePath("misato")]) {
		t.Error("placeholder hardware-configuration.nix lacks the marker")
	}
	if IsPlaceholderHardware(ref["nixos/flake.nix"]) {
		t.Error("flake.nix looks like a placeholder")
	}
	// .sops.yaml is YAML with one rule for the spec's recipients.
	var sops struct {
		CreationRules []struct {
			PathRegex string `json:"path_regex"`
			Age       string `json:"age"`
		} `json:"creation_rules"`
	}
	if err := yaml.UnmarshalStrict(ref["nixos/secrets/.sops.yaml"], &sops); err != nil {
		t.Fatal(err)
	}
	c := load(t, "../../examples/nerv.yaml")
	if len(sops.CreationRules) != 1 || sops.CreationRules[0].Age != strings.Join(c.Spec.SOPS.AgeRecipients, ",") ||
		!regexp.MustCompile(sops.CreationRules[0].PathRegex).MatchString("secrets.yaml") {
		t.Errorf(".sops.yaml: %+v", sops)
	}
}

func TestRenderNode(t *testing.T) {
	c := load(t, "../spec/testdata/three-node.yaml")
	full, _ := Render(c)
	one, err := RenderNode(c, "ritsuko")
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 3 {
		t.Fatalf("got %v", one.Paths())
	}
	for p, b := range one {
		if !strings.HasPrefix(p, "nixos/hosts/ritsuko/") || !bytes.Equal(full[p], b) {
			t.Errorf("%s differs from the full render", p)
		}
	}
	if _, err := RenderNode(c, "shinji"); !errors.Is(err, spec.ErrNodeNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
}

func TestRenderRefusesInvalidSpec(t *testing.T) {
	c := load(t, "../../examples/nerv.yaml")
	c.Spec.Nodes[0].IP = "192.168.1.112"
	_, err := Render(c)
	var ve *spec.ValidationError
	if !errors.As(err, &ve) || !ve.Has("spec.nodes[0].ip") {
		t.Fatalf("got %v", err)
	}
}

func TestNixString(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        `"plain"`,
		`a"b`:          `"a\"b"`,
		`back\slash`:   `"back\\slash"`,
		`${injection}`: `"\${injection}"`,
		"two\nlines":   `"two\nlines"`,
	} {
		if got := nixString(in); got != want {
			t.Errorf("nixString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestNixAttr(t *testing.T) {
	for in, want := range map[string]string{"misato": "misato", "node-1": "node-1", "1st": `"1st"`, "let": `"let"`, "or": `"or"`} {
		if got := nixAttr(in); got != want {
			t.Errorf("nixAttr(%q) = %s, want %s", in, got, want)
		}
	}
}

// nixValue's output, evaluated by Nix and read back as JSON, is the value it was given.
func TestNixValueRoundTrips(t *testing.T) {
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("nix-instantiate not found (%v): install Debian's nix-bin, see hack/test-assets.sh", err)
	}
	in := map[string]any{
		"plain":       "text",
		"needs quote": `a "${b}" \ c`,
		"let":         true,
		"1st":         nil,
		"numbers":     []any{float64(1), float64(-1), 0.5, float64(-2.25), float64(292)},
		"nested":      map[string]any{"list": []any{map[string]any{"k": "v"}, []any{}, map[string]any{}}},
	}
	expr, err := nixValue(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--eval", "--strict", "--json", "--expr", expr)
	cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate: %v\n%s", err, expr)
	}
	var got any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, any(in)) {
		t.Errorf("round trip through Nix:\n got %v\nwant %v\nexpression:\n%s", got, in, expr)
	}
	if _, err := nixValue(map[string]any{"x": 1}, 0); err == nil {
		t.Error("an int (not float64) was rendered; want an error naming the type")
	}
}

// Hostnames that are valid RFC 1123 labels but not bare Nix identifiers still give a flake
// that parses.
func TestAwkwardHostnamesParse(t *testing.T) {
	bin, err := exec.LookPath("nix-instantiate")
	if err != nil {
		t.Fatalf("nix-instantiate not found (%v): install Debian's nix-bin, see hack/test-assets.sh", err)
	}
	c := load(t, "../../examples/nerv.yaml")
	for i, name := range []string{"1st", "let", "or"} {
		if err := c.AddNode(spec.Node{Name: name, IP: fmt.Sprintf("192.168.1.%d", 20+i), Role: spec.RoleAgent, Disk: "/dev/sda"}); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "flake.nix")
	os.WriteFile(p, tree["nixos/flake.nix"], 0o644)
	out, err := exec.Command(bin, "--parse", p).CombinedOutput()
	if err != nil {
		t.Fatalf("flake.nix does not parse: %v\n%s", err, out)
	}
	if !strings.Contains(string(tree["nixos/flake.nix"]), `"1st" = mkHost "1st";`) {
		t.Error("1st not quoted")
	}
}

func TestFlakeRef(t *testing.T) {
	for _, tt := range []struct{ url, rev, want string }{
		{"https://github.com/x/y.git", "main", "git+https://github.com/x/y.git?dir=nixos&ref=main"},
		{"git@github.com:x/y.git", "v1.2", "git+ssh://git@github.com/x/y.git?dir=nixos&ref=v1.2"},
		{"ssh://git@host/x/y", strings.Repeat("a", 40), "git+ssh://git@host/x/y?dir=nixos&rev=" + strings.Repeat("a", 40)},
	} {
		if got := flakeRef(tt.url, tt.rev); got != tt.want {
			t.Errorf("flakeRef(%s, %s) = %s, want %s", tt.url, tt.rev, got, tt.want)
		}
	}
}

// fiftyNodes builds a 50-node spec: 3 servers and 47 agents on a /24.
func fiftyNodes(t testing.TB) *spec.Cluster {
	c := load(t, "../../examples/nerv.yaml")
	c.Spec.Nodes = nil
	for i := range 50 {
		n := spec.Node{Name: fmt.Sprintf("node-%02d", i), IP: fmt.Sprintf("192.168.1.%d", 10+i), Role: spec.RoleAgent, Disk: "/dev/sda"}
		if i < 3 {
			n.Role = spec.RoleServer
			n.ClusterInit = i == 0
		}
		if err := c.AddNode(n); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func BenchmarkRender50Nodes(b *testing.B) {
	c := fiftyNodes(b)
	b.ReportAllocs()
	for b.Loop() {
		tree, err := Render(c)
		if err != nil {
			b.Fatal(err)
		}
		if len(tree) != len(clusterFiles)+150 {
			b.Fatalf("%d files", len(tree))
		}
	}
}

// BenchmarkRenderReference is the baseline for BenchmarkRender50Nodes: the one-node site.
func BenchmarkRenderReference(b *testing.B) {
	c := load(b, "../../examples/nerv.yaml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(c); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzRender: any document that parses and validates renders, twice identically.
func FuzzRender(f *testing.F) {
	for _, g := range goldens {
		b, err := os.ReadFile(g.spec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := spec.Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		c.Default()
		if _, err := c.Validate(); err != nil {
			return
		}
		a, err := Render(c)
		if err != nil {
			t.Fatalf("valid spec does not render: %v", err)
		}
		b, _ := Render(c)
		for p := range a {
			if !bytes.Equal(a[p], b[p]) {
				t.Fatalf("%s differs between renders", p)
			}
		}
	})
}
