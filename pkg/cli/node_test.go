package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nerv-platform/nerv/internal/sshtest"
	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/rollout"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// nodeFakeRebuild stands in for nixos-rebuild (it would build NixOS and activate it on a
// remote machine, which this one cannot do). It appends its arguments and NIX_SSHOPTS to
// $FAKE_REBUILD_LOG and fails for the node named in $FAKE_REBUILD_FAIL.
const nodeFakeRebuild = `#!/bin/sh
printf '%s | %s\n' "$*" "$NIX_SSHOPTS" >> "$FAKE_REBUILD_LOG"
case " $* " in
  *"#$FAKE_REBUILD_FAIL "*) echo "error: activation failed" >&2; exit 1 ;;
esac
echo "activating the configuration..."
`

// nodeFakeNix stands in for nix: a real `nix flake update` fetches nixpkgs over the network.
// It records its arguments and working directory.
const nodeFakeNix = `#!/bin/sh
printf '%s | %s\n' "$*" "$PWD" >> "$FAKE_NIX_LOG"
`

// nodeWriteSite writes a spec with the given nodes ("name:role", the first server bootstraps)
// into a fresh directory and returns its path.
func nodeWriteSite(t *testing.T, nodes ...string) string {
	t.Helper()
	c, err := spec.Parse(spec.Example(), "nerv.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Nodes = nil
	first := true
	for i, n := range nodes {
		name, role, _ := strings.Cut(n, ":")
		node := spec.Node{Name: name, Role: role, IP: fmt.Sprintf("192.168.1.%d", 20+i), Disk: "/dev/sda"}
		if role == spec.RoleServer && first {
			node.ClusterInit, first = true, false
		}
		c.Spec.Nodes = append(c.Spec.Nodes, node)
	}
	p := filepath.Join(t.TempDir(), "nerv.yaml")
	if err := spec.Write(p, c); err != nil {
		t.Fatal(err)
	}
	return p
}

// snapshot maps every file under dir to its content.
func nodeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func nodeAssertUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := nodeSnapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("files under %s changed: %d before, %d after", dir, len(before), len(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("%s changed", p)
		}
	}
}

func TestNodeBadInputChangesNothing(t *testing.T) {
	site := nodeWriteSite(t, "s1:server", "a1:agent")
	dir := filepath.Dir(site)
	invalid := filepath.Join(t.TempDir(), "nerv.yaml")
	bad := strings.Replace(string(spec.Example()), "ip: 192.168.1.100", "ip: 192.168.1.112", 1)
	if err := os.WriteFile(invalid, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing here may reach a cluster: point the kubeconfig at a closed port.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: x}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := nodeSnapshot(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown node", []string{"node", "apply", "ghost", "--spec", site}, `node "ghost" is not in the cluster spec ` + site + ` (nodes: s1, a1)`},
		{"no node and no --all", []string{"node", "apply", "--spec", site}, "name the nodes to apply to, or --all"},
		{"nodes and --all", []string{"node", "apply", "s1", "--all", "--spec", site}, "not both"},
		{"max-unavailable 0", []string{"node", "apply", "--all", "--max-unavailable", "0", "--spec", site}, "max-unavailable must be at least 1"},
		{"yaml output", []string{"node", "apply", "--all", "-o", "yaml", "--spec", site}, "--output yaml is not supported"},
		{"bad ssh address", []string{"node", "apply", "--all", "--ssh-address", "s1", "--spec", site}, `--ssh-address "s1": want NODE=HOST:PORT`},
		{"ssh address of unknown node", []string{"node", "apply", "--all", "--ssh-address", "x=127.0.0.1:22", "--spec", site}, "node x is not in"},
		{"invalid spec", []string{"node", "apply", "--all", "--spec", invalid}, "spec.nodes[0].ip: 192.168.1.112"},
		{"remove unknown", []string{"node", "remove", "ghost", "--spec", site}, `node "ghost" is not in the cluster spec`},
		{"remove the last server", []string{"node", "remove", "s1", "--spec", site}, "refusing to remove s1: it is the last server"},
		{"rollback unknown", []string{"node", "rollback", "ghost", "--spec", site}, `node "ghost" is not in the cluster spec`},
		{"remove two nodes", []string{"node", "remove", "s1", "a1", "--spec", site}, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, append(tc.args, "--kubeconfig", kubeconfig)...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errOut)
			}
		})
	}
	nodeAssertUnchanged(t, dir, before)
}

// TestNodeCommands runs the commands against a real apiserver with kwok nodes, a real sshd,
// and test doubles for nixos-rebuild and nix on PATH.
func TestNodeCommands(t *testing.T) {
	if v := os.Getenv(testenv.SkipEnv); v == "1" || v == "true" {
		t.Skipf("%s set: this test needs a real kube-apiserver", testenv.SkipEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if err := env.StartKwok(ctx); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for name, script := range map[string]string{"nixos-rebuild": nodeFakeRebuild, "nix": nodeFakeNix} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	logs := t.TempDir()
	rebuildLog, nixLog := filepath.Join(logs, "rebuild.log"), filepath.Join(logs, "nix.log")
	t.Setenv("FAKE_REBUILD_LOG", rebuildLog)
	t.Setenv("FAKE_NIX_LOG", nixLog)
	t.Setenv("FAKE_REBUILD_FAIL", "")

	srv := sshtest.Start(t)
	// The kernel check reads /run/booted-system and /nix/var/nix/profiles/system, which this
	// machine (not NixOS) lacks; the session's readlink answers for them with one unchanged
	// kernel. The comparison itself is tested against real links in pkg/rollout.
	srv.AddCommand(t, "readlink", "#!/bin/sh\nfor i in 1 2; do echo /nix/store/k-linux/bzImage; echo /nix/store/i-initrd/initrd; echo /nix/store/m-modules/lib; done\n")

	site := nodeWriteSite(t, "adam:server", "lilith:agent", "sachiel:agent")
	c, _, err := spec.LoadValid(site)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Spec.Nodes {
		if _, err := env.CreateNode(ctx, testenv.Node{Name: n.Name, IP: n.IP, Role: n.Role}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.WaitNodeReady(ctx, n.Name); err != nil {
			t.Fatal(err)
		}
	}
	common := []string{"--spec", site, "--kubeconfig", env.Kubeconfig}
	sshFlags := []string{"--ssh-user", srv.User, "-i", srv.ClientKeyPath, "--known-hosts", srv.KnownHostsFile}
	for _, n := range c.Spec.Nodes {
		sshFlags = append(sshFlags, "--ssh-address", n.Name+"="+srv.Addr)
	}
	calls := func() []string {
		b, _ := os.ReadFile(rebuildLog)
		os.Remove(rebuildLog)
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				args, _, _ := strings.Cut(l, " | ")
				out = append(out, args)
			}
		}
		return out
	}
	flake := filepath.Join(filepath.Dir(site), "nixos")
	target := srv.User + "@127.0.0.1"

	t.Run("dry run prints the ordered plan and changes nothing", func(t *testing.T) {
		before := nodeSnapshot(t, filepath.Dir(site))
		out, errOut, code := run(t, append([]string{"node", "apply", "--all", "--dry-run"}, common...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		for _, s := range []string{"1. agent  lilith (192.168.1.21)\n2. agent  sachiel (192.168.1.22)\n3. server adam (192.168.1.20)\n",
			"lilith       Ready, 0 pod(s) to evict, no eviction blocked", "dry run: nothing was changed", "warning: the cluster has 1 server"} {
			if !strings.Contains(out, s) {
				t.Errorf("output lacks %q:\n%s", s, out)
			}
		}
		nodeAssertUnchanged(t, filepath.Dir(site), before)
		if got := calls(); len(got) != 0 {
			t.Errorf("dry run ran nixos-rebuild: %q", got)
		}
	})

	t.Run("apply one node with json events", func(t *testing.T) {
		out, errOut, code := run(t, append(append([]string{"node", "apply", "lilith", "-o", "json"}, common...), sshFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		want := []string{"boot --flake " + flake + "#lilith --target-host " + target + " --use-remote-sudo", "switch --flake " + flake + "#lilith --target-host " + target + " --use-remote-sudo"}
		if got := calls(); !slices.Equal(got, want) {
			t.Errorf("nixos-rebuild calls %q, want %q", got, want)
		}
		var steps []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev rollout.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("not one JSON event per line: %q: %v", line, err)
			}
			if ev.Status == rollout.StatusSucceeded {
				steps = append(steps, strings.TrimSpace(ev.Node+" "+ev.Step))
			}
		}
		wantSteps := []string{"preflight", "lilith preflight", "lilith cordon", "lilith drain", "lilith install", "lilith kernel", "lilith switch", "lilith ready", "lilith uncordon", "lilith check", "rollout"}
		if !slices.Equal(steps, wantSteps) {
			t.Errorf("succeeded steps %q, want %q", steps, wantSteps)
		}
		if _, err := os.Stat(filepath.Join(flake, "hosts", "lilith", "default.nix")); err != nil {
			t.Errorf("apply did not render the NixOS tree: %v", err)
		}
	})

	t.Run("failing rebuild exits 1 and leaves the node cordoned", func(t *testing.T) {
		t.Setenv("FAKE_REBUILD_FAIL", "lilith")
		out, errOut, code := run(t, append(append([]string{"node", "apply", "--all"}, common...), sshFlags...)...)
		if code != ExitFailure {
			t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
		}
		for _, s := range []string{"node lilith: step install failed", "left cordoned", "kubectl nerv node rollback lilith"} {
			if !strings.Contains(errOut, s) {
				t.Errorf("stderr lacks %q:\n%s", s, errOut)
			}
		}
		if !strings.Contains(out, "[lilith] error: activation failed") {
			t.Errorf("output not streamed with the node prefix:\n%s", out)
		}
		if got := calls(); len(got) != 1 {
			t.Errorf("nixos-rebuild calls %q, want the one failed boot", got)
		}
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "lilith", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !n.Spec.Unschedulable {
			t.Error("lilith is not cordoned after the failure")
		}
	})

	t.Run("rollback", func(t *testing.T) {
		out, errOut, code := run(t, append(append([]string{"node", "rollback", "lilith"}, common...), sshFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		if got, want := calls(), []string{"switch --rollback --target-host " + target + " --use-remote-sudo"}; !slices.Equal(got, want) {
			t.Errorf("calls %q, want %q", got, want)
		}
		if !strings.Contains(out, "kubectl uncordon lilith") {
			t.Errorf("rollback does not say to uncordon:\n%s", out)
		}
		if _, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "lilith", "application/merge-patch+json", []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("upgrade updates the flake inputs first", func(t *testing.T) {
		out, errOut, code := run(t, append(append([]string{"node", "upgrade", "sachiel"}, common...), sshFlags...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		b, err := os.ReadFile(nixLog)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != "--extra-experimental-features nix-command flakes flake update | "+flake {
			t.Errorf("nix ran %q", got)
		}
		if got := calls(); len(got) != 2 || !strings.HasPrefix(got[0], "boot --flake "+flake+"#sachiel") {
			t.Errorf("nixos-rebuild calls %q", got)
		}
	})

	t.Run("upgrade without nix stops before any node", func(t *testing.T) {
		t.Setenv("PATH", bin+"-none") // neither nix nor nixos-rebuild
		_, errOut, code := run(t, append(append([]string{"node", "upgrade", "--all"}, common...), sshFlags...)...)
		if code != ExitUsage || !strings.Contains(errOut, "node upgrade needs nix on this machine") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
	})

	t.Run("apply without nixos-rebuild stops before any node", func(t *testing.T) {
		t.Setenv("PATH", bin+"-none")
		_, errOut, code := run(t, append(append([]string{"node", "apply", "--all"}, common...), sshFlags...)...)
		if code != ExitUsage || !strings.Contains(errOut, "nixos-rebuild not found") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
		nodes, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			if n.Spec.Unschedulable {
				t.Errorf("%s was cordoned", n.Name)
			}
		}
	})

	t.Run("remove an agent", func(t *testing.T) {
		hostDir := filepath.Join(flake, "hosts", "sachiel")
		if _, err := os.Stat(hostDir); err != nil {
			t.Fatalf("host dir missing before removal: %v", err)
		}
		out, errOut, code := run(t, append([]string{"node", "remove", "sachiel"}, common...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
		if _, err := env.Clientset.CoreV1().Nodes().Get(ctx, "sachiel", metav1.GetOptions{}); err == nil {
			t.Error("Node sachiel still exists")
		}
		c, _, err := spec.LoadValid(site)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Node("sachiel"); ok || len(c.Spec.Nodes) != 2 {
			t.Errorf("spec nodes after removal: %+v", c.Spec.Nodes)
		}
		if _, err := os.Stat(hostDir); !os.IsNotExist(err) {
			t.Errorf("host dir %s still there (%v)", hostDir, err)
		}
		flakeNix, err := os.ReadFile(filepath.Join(flake, "flake.nix"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(flakeNix), "sachiel") {
			t.Error("flake.nix still names sachiel")
		}
	})
}
