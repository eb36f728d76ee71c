package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRoundTripKeepsCommentsAndMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nerv.yaml")
	if err := os.WriteFile(p, Example(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := LoadValid(p)
	if err != nil {
		t.Fatal(err)
	}
	// Writing the example back unchanged reproduces it byte for byte, comments included.
	if err := Write(p, c); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != string(Example()) {
		t.Fatalf("round trip changed the file:\n%s", got)
	}
	if err := c.AddNode(Node{Name: "ritsuko", IP: "192.168.1.101", Role: RoleAgent, Disk: "/dev/sda"}); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, c); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(p)
	for _, want := range []string{
		"# The first server bootstraps the cluster (embedded etcd).\n    - name: misato",
		"    # Replace with your own public key(s): password login is disabled.\n    sshKeys:",
		"    - name: ritsuko\n      ip: 192.168.1.101\n      role: agent\n      disk: /dev/sda\n",
		`release: "25.11"`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("written spec lacks %q:\n%s", want, got)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}
	back, _, err := LoadValid(p)
	if err != nil {
		t.Fatalf("written spec does not load: %v", err)
	}
	if n, ok := back.Node("ritsuko"); !ok || n.IP != "192.168.1.101" {
		t.Fatalf("ritsuko not read back: %+v", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestWriteNewFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "new.yaml")
	c := valid(t)
	if err := Write(p, c); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	got, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(got), "apiVersion: nerv.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: nerv\nspec:\n  network:\n") {
		t.Fatalf("unexpected order:\n%s", got)
	}
	if strings.Contains(string(got), "#") {
		t.Fatalf("comments in a new file:\n%s", got)
	}
	if _, _, err := LoadValid(p); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFailsCleanly(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing-dir", "nerv.yaml"), valid(t))
	if err == nil || !strings.Contains(err.Error(), "writing cluster spec") {
		t.Fatalf("got %v", err)
	}
}
