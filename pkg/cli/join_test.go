package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/nerv-platform/nerv/internal/sshtest"
	"github.com/nerv-platform/nerv/pkg/join"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// exampleSite copies the repository's example spec into a temp dir.
func exampleSite(t *testing.T) (dir, specPath string, content []byte) {
	t.Helper()
	content, err := os.ReadFile("../../examples/nerv.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	specPath = filepath.Join(dir, "nerv.yaml")
	if err := os.WriteFile(specPath, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, specPath, content
}

// The acceptance line: a dry run against the example spec prints the plan and
// writes nothing, on a machine where 192.168.1.101 is not reachable (it is never contacted).
func TestJoinDryRunAgainstExampleSpec(t *testing.T) {
	dir, specPath, content := exampleSite(t)
	out, errOut, code := run(t, "join", "ritsuko", "--ip", "192.168.1.101", "--role", "agent", "--dry-run", "--spec", specPath)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"[ok] preflight",
		"cluster and SSH checks skipped (--dry-run",
		"Plan to join ritsuko (agent, 192.168.1.101):",
		specPath + ": add spec.nodes[1] ritsuko (agent, 192.168.1.101, disk /dev/sda)",
		"create nixos/hosts/ritsuko/default.nix",
		"install: nixos-anywhere --flake '" + dir + "/nixos#ritsuko' --target-host root@192.168.1.101 --extra-files <staging>",
		"[ok] plan",
		"Dry run: nothing written, nothing installed.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files written: %v", entries)
	}
	if b, _ := os.ReadFile(specPath); !bytes.Equal(b, content) {
		t.Error("nerv.yaml changed")
	}
}

func TestJoinDryRunJSON(t *testing.T) {
	_, specPath, _ := exampleSite(t)
	out, errOut, code := run(t, "join", "ritsuko", "--ip", "192.168.1.101", "--dry-run", "--spec", specPath, "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res join.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, out)
	}
	if !res.DryRun || res.Node != "ritsuko" || res.Role != "agent" || len(res.Steps) != 2 || res.Plan == nil || res.Plan.Command[0] != "nixos-anywhere" {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(errOut, "Plan to join ritsuko") {
		t.Errorf("the plan should go to stderr with -o json:\n%s", errOut)
	}
}

func TestJoinUsageErrors(t *testing.T) {
	_, specPath, content := exampleSite(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no node", []string{"join", "--ip", "192.168.1.101"}, "accepts 1 arg"},
		{"no ip", []string{"join", "ritsuko"}, "--ip is required"},
		{"bad role", []string{"join", "ritsuko", "--ip", "192.168.1.101", "--role", "worker"}, `--role "worker"`},
		{"bad fingerprint", []string{"join", "ritsuko", "--ip", "192.168.1.101", "--accept-host-key", "abc"}, "SHA256:"},
		{"bad output", []string{"join", "ritsuko", "--ip", "192.168.1.101", "-o", "xml"}, "--output"},
		{"invalid ip", []string{"join", "ritsuko", "--ip", "192.168.1.256", "--dry-run"}, "is not an IPv4 address"},
		{"ip in pool", []string{"join", "ritsuko", "--ip", "192.168.1.111", "--dry-run"}, "inside the LoadBalancer pool"},
		{"duplicate name", []string{"join", "misato", "--ip", "192.168.1.120", "--dry-run"}, "already in the spec"},
		{"unknown step", []string{"join", "ritsuko", "--ip", "192.168.1.101", "--from-step", "reboot"}, "not a step"},
		{"missing spec", []string{"join", "ritsuko", "--ip", "192.168.1.101", "--dry-run", "--spec", "/nonexistent/nerv.yaml"}, "/nonexistent/nerv.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "--spec") {
				args = append(args, "--spec", specPath)
			}
			_, errOut, code := run(t, args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d: %s", code, ExitUsage, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, errOut)
			}
			if b, _ := os.ReadFile(specPath); !bytes.Equal(b, content) {
				t.Error("nerv.yaml changed")
			}
		})
	}
}

func TestAskInstallRefusesWithoutTerminal(t *testing.T) {
	o := &JoinOptions{isTerminal: func() bool { return false }}
	ok, err := o.askInstall(&join.Plan{}, "ritsuko", "/dev/sda")
	if ok || err == nil || !strings.Contains(err.Error(), "--yes") || !strings.Contains(err.Error(), "WIPE /dev/sda on ritsuko") {
		t.Errorf("got %v %v", ok, err)
	}
}

// hangingNixosAnywhere is a test double for nixos-anywhere (it cannot run here): it records
// where its extra files are and whether it got SIGINT, and otherwise runs until stopped.
const hangingNixosAnywhere = `#!/bin/sh
rec="$NERV_TEST_RECORD"
while [ $# -gt 0 ]; do [ "$1" = --extra-files ] && echo "$2" > "$rec/staging"; shift; done
trap 'echo SIGINT > "$rec/signal"; exit 130' INT
touch "$rec/started"
while :; do sleep 0.1; done
`

// A real Ctrl-C: SIGINT delivered to this process while nixos-anywhere runs stops it,
// removes the staged secrets and exits 130. The first server of an empty spec needs no
// cluster, so the join reaches the install with only the loopback sshd.
func TestJoinCtrlCDuringInstall(t *testing.T) {
	dir := t.TempDir()
	specPath := filepath.Join(dir, "nerv.yaml")
	id, _ := age.GenerateX25519Identity()
	c, err := spec.Parse(spec.Example(), "example")
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Nodes = nil
	c.Spec.SOPS.AgeRecipients = []string{id.Recipient().String()}
	if err := spec.Write(specPath, c); err != nil {
		t.Fatal(err)
	}
	ageKey := filepath.Join(t.TempDir(), "keys.txt")
	os.WriteFile(ageKey, []byte(id.String()+"\n"), 0o600)

	srv := sshtest.Start(t)
	srv.AddCommand(t, "nixos-generate-config", "#!/bin/sh\necho '{ ... }: { }'\n")
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "nixos-anywhere"), []byte(hangingNixosAnywhere), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	record := t.TempDir()
	t.Setenv("NERV_TEST_RECORD", record)
	disk := sshtest.BlockDevice(t)

	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(record, "started")); err == nil {
				// join's signal.NotifyContext is active now: this is what a terminal's Ctrl-C does.
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	out, errOut, code := run(t, "join", "misato", "--ip", "192.168.1.100", "--role", "server", "--disk", disk,
		"--spec", specPath, "--ssh-address", srv.Addr, "--ssh-user", srv.User, "-i", srv.ClientKeyPath,
		"--known-hosts", srv.KnownHostsFile, "--age-key", ageKey, "--yes", "--kubeconfig", filepath.Join(t.TempDir(), "kubeconfig"))
	if code != ExitInterrupted {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitInterrupted, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(record, "signal")); strings.TrimSpace(string(b)) != "SIGINT" {
		t.Errorf("nixos-anywhere was not sent SIGINT (%q)", b)
	}
	staging, _ := os.ReadFile(filepath.Join(record, "staging"))
	if len(staging) == 0 {
		t.Fatal("no staging dir recorded")
	}
	if _, err := os.Stat(filepath.Dir(strings.TrimSpace(string(staging)))); !os.IsNotExist(err) {
		t.Errorf("staged secrets survived Ctrl-C: %v", err)
	}
	if !strings.Contains(errOut, "interrupted") {
		t.Errorf("stderr: %s", errOut)
	}
	// The plan was written before the install: a re-run resumes from there.
	if c, err := spec.Load(specPath); err != nil || len(c.Spec.Nodes) != 1 || !c.Spec.Nodes[0].ClusterInit {
		t.Errorf("spec after the interrupted join: %v %+v", err, c)
	}
}
