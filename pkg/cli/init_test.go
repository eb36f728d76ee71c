package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/pkg/platform"
	"github.com/nerv-platform/nerv/pkg/spec"
)

const (
	testSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH8YwlPJcA+utjJJZBE3taGtUkfbGkcYh0p3JP8okMp2 admin@nerv"
	// Real X25519 recipients (their identities were discarded).
	testAgeRecipient = "age1jv360l9cd6xptfh2x4ks74cmt88v3qaekwnau7mluwdzwy79vc3s0nu95l"
)

// The acceptance line: init then generate --dry-run reports no change.
func TestInitThenGenerateReportsNoChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	out, errOut, code := run(t, "init", dir)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "wrote "+filepath.Join(dir, "nerv.yaml")) || !strings.Contains(errOut, "warning: nerv.yaml still holds the example's SSH key") {
		t.Errorf("init output %q / %q", out, errOut)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "nerv.yaml"))
	if string(got) != string(spec.Example()) {
		t.Errorf("nerv.yaml is not the example:\n%s", got)
	}
	for _, p := range []string{"nixos/flake.nix", "nixos/hosts/misato/hardware-configuration.nix", "nixos/secrets/.sops.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
	c, _, err := spec.LoadValid(filepath.Join(dir, "nerv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := platform.RenderSite(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"manifests/platform/root.yaml", "manifests/policies/kustomization.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("init did not write the GitOps manifests: %v", err)
		}
	}
	out, errOut, code = run(t, "generate", "--spec", filepath.Join(dir, "nerv.yaml"), "--dry-run")
	if code != 0 || out != fmt.Sprintf("%s is up to date (%d generated files, no change)\n", dir, len(tree)) {
		t.Fatalf("generate --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestInitRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	_, errOut, code := run(t, "init", dir)
	if code != ExitUsage || !strings.Contains(errOut, dir+" is not empty") || !strings.Contains(errOut, "--force") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "nerv.yaml")); !os.IsNotExist(err) {
		t.Fatal("wrote into a non-empty directory")
	}
	if _, errOut, code := run(t, "init", dir, "--force"); code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Fatal("--force touched an unrelated file")
	}
}

func TestInitWithOwnKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "site")
	keyFile := filepath.Join(t.TempDir(), "id.pub")
	other := strings.Replace(testSSHKey, "admin@nerv", "second@laptop", 1)
	os.WriteFile(keyFile, []byte(other+"\n"), 0o644)
	_, errOut, code := run(t, "init", dir, "--ssh-key", keyFile, "--age-recipient", testAgeRecipient, "--name", "tokyo-3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, "warning") {
		t.Errorf("unexpected warning: %s", errOut)
	}
	c, _, err := spec.LoadValid(filepath.Join(dir, "nerv.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metadata.Name != "tokyo-3" || len(c.Spec.Admin.SSHKeys) != 1 || c.Spec.Admin.SSHKeys[0] != other {
		t.Fatalf("spec: %+v", c)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "nerv.yaml"))
	if !strings.Contains(string(raw), "# The first server bootstraps the cluster") {
		t.Error("the example's comments were lost")
	}
	flake, _ := os.ReadFile(filepath.Join(dir, "nixos", "site.nix"))
	if !strings.Contains(string(flake), other) {
		t.Error("site.nix lacks the given key")
	}
	if _, _, code := run(t, "generate", "--spec", filepath.Join(dir, "nerv.yaml"), "--dry-run"); code != 0 {
		t.Fatalf("generate after init with keys: exit %d", code)
	}
}

func TestInitBadFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad recipient", []string{"--age-recipient", "age1nope"}, `spec.sops.ageRecipients[0] (--age-recipient): "age1nope" is not an age X25519 recipient`},
		{"missing key file", []string{"--ssh-key", "/nonexistent/id.pub"}, "--ssh-key: open /nonexistent/id.pub"},
		{"bad name", []string{"--name", "Tokyo 3"}, `metadata.name (--name): "Tokyo 3" is not an RFC 1123 label`},
		{"no dir", nil, "accepts 1 arg(s), received 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "site")
			args := append([]string{"init"}, tt.args...)
			if tt.args != nil {
				args = append([]string{"init", dir}, tt.args...)
			}
			_, errOut, code := run(t, args...)
			if code != ExitUsage || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tt.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Error("wrote files despite the error")
			}
		})
	}
}
