package join

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nerv-platform/nerv/internal/sshtest"
	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/spec"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fakeNixosAnywhere is a test double for nixos-anywhere, which cannot run here (it needs
// nix and a machine to wipe). It records its argv and environment, the modes of the staged
// key file and staging dir while it runs, a hash of the staged age key (never the key) and
// the staged host public key; with --generate-hardware-config it writes that file as the
// real tool would. With NERV_TEST_HANG set it waits for SIGINT, recording it.
const fakeNixosAnywhere = `#!/bin/sh
rec="$NERV_TEST_RECORD"
printf '%s\n' "$@" > "$rec/argv"
env > "$rec/env"
extra=""; hw=""
while [ $# -gt 0 ]; do
  case "$1" in
    --extra-files) extra="$2"; shift ;;
    --generate-hardware-config) hw="$3"; shift 2 ;;
  esac
  shift
done
echo "$extra" > "$rec/staging"
stat -c '%a' "$extra/var/lib/sops-nix/key.txt" > "$rec/keymode"
stat -c '%a' "$(dirname "$extra")" > "$rec/stagingmode"
stat -c '%a' "$extra/etc/ssh/ssh_host_ed25519_key" > "$rec/hostkeymode"
sha256sum < "$extra/var/lib/sops-nix/key.txt" | cut -d' ' -f1 > "$rec/keyhash"
cp "$extra/etc/ssh/ssh_host_ed25519_key.pub" "$rec/hostkey.pub"
echo "### installing NixOS"
echo "building the closure" >&2
if [ -n "$hw" ]; then echo '{ generatedBy = "nixos-anywhere"; }' > "$hw"; fi
# "Reboot into the installed system": sshd takes the staged host key, k3s writes its kubeconfig.
if [ -n "$NERV_TEST_SSHD_PID" ]; then
  cp "$extra/etc/ssh/ssh_host_ed25519_key" "$NERV_TEST_SSHD_HOSTKEY"
  kill -HUP "$NERV_TEST_SSHD_PID"
fi
if [ -n "$NERV_TEST_K3S_YAML" ]; then printf '%s' "$NERV_TEST_K3S_CONTENT" > "$NERV_TEST_K3S_YAML"; fi
if [ -n "$NERV_TEST_HANG" ]; then
  trap 'echo SIGINT > "$rec/signal"; exit 130' INT
  touch "$rec/started"
  while :; do sleep 0.1; done
fi
touch "$rec/done"
`

// fakeHardwareConfig stands in for the machine's nixos-generate-config and checks it was
// called with the flags join promises.
const fakeHardwareConfig = `#!/bin/sh
[ "$1 $2" = "--show-hardware-config --no-filesystems" ] || { echo "unexpected args: $*" >&2; exit 2; }
cat <<'EOF'
{ config, lib, ... }:
{
  boot.initrd.availableKernelModules = [ "virtio_pci" ];
  nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";
}
EOF
`

type fixture struct {
	dir      string
	specPath string
	record   string
	ageKey   string
	ageHash  string
	srv      *sshtest.Server
	out      *bytes.Buffer
	opts     Options
}

// newFixture makes a site dir with the example spec (its age recipient replaced by a key
// made here), a loopback sshd standing in for the machine, and the nixos-anywhere double.
func newFixture(t *testing.T, node, ip, role string) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), record: t.TempDir(), out: &bytes.Buffer{}}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	c, err := spec.Parse(spec.Example(), "example")
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.SOPS.AgeRecipients = []string{id.Recipient().String()}
	f.specPath = filepath.Join(f.dir, "nerv.yaml")
	if err := spec.Write(f.specPath, c); err != nil {
		t.Fatal(err)
	}
	// The key file also holds an unrelated identity, which must not reach the node.
	other, _ := age.GenerateX25519Identity()
	f.ageKey = filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(f.ageKey, []byte("# created: test\n"+other.String()+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	staged := "# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	sum := sha256.Sum256([]byte(staged))
	f.ageHash = hex.EncodeToString(sum[:])

	f.srv = sshtest.Start(t)
	fake := filepath.Join(t.TempDir(), "nixos-anywhere")
	if err := os.WriteFile(fake, []byte(fakeNixosAnywhere), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NERV_TEST_RECORD", f.record)
	f.opts = Options{
		Node: node, IP: ip, Role: role, Disk: "/dev/sda",
		SpecPath:       f.specPath,
		SSHAddress:     f.srv.Addr,
		SSHUser:        f.srv.User,
		AdminUser:      f.srv.User,
		IdentityFile:   f.srv.ClientKeyPath,
		KnownHostsFile: f.srv.KnownHostsFile,
		ConnectTimeout: 5 * time.Second,
		AgeKeyFile:     f.ageKey,
		NixosAnywhere:  fake,
		Kube:           func(string) (kubernetes.Interface, error) { return env.Clientset, nil },
		Timeout:        60 * time.Second,
		Progress:       500 * time.Millisecond,
		Out:            f.out,
	}
	// The target needs a block device for --disk; the loopback "machine" is this one.
	f.opts.Disk = sshtest.BlockDevice(t)
	return f
}

func (f *fixture) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.record, name))
	if err != nil {
		t.Fatalf("the nixos-anywhere double did not record %s: %v", name, err)
	}
	return strings.TrimSpace(string(b))
}

// registerWhenInstalled creates the kwok Node a short while after the double has run, as
// a freshly installed machine registers itself once k3s starts.
func registerWhenInstalled(t *testing.T, ctx context.Context, f *fixture, name, ip, role string) {
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(f.record, "done")); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if _, err := env.CreateNode(ctx, testenv.Node{Name: name, IP: ip, Role: role}); err != nil {
			t.Errorf("registering the node: %v", err)
		}
	}()
}

func outcomes(res *Result) map[string]Outcome {
	m := map[string]Outcome{}
	if res != nil {
		for _, s := range res.Steps {
			m[s.Name] = s.Outcome
		}
	}
	return m
}

func TestJoinAgentEndToEndAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := env.StartKwok(ctx); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "ritsuko", "192.168.1.101", spec.RoleAgent)
	f.srv.AddCommand(t, "nixos-generate-config", fakeHardwareConfig)
	// The installer's key is not known yet: accepted by fingerprint, as after checking it on
	// the machine's console.
	if err := os.WriteFile(f.srv.KnownHostsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.opts.AcceptHostKey = f.srv.Fingerprint()
	registerWhenInstalled(t, ctx, f, "ritsuko", "192.168.1.101", "agent")

	res, err := Run(ctx, f.opts)
	out := f.out.String()
	if err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	want := map[string]Outcome{StepPreflight: OK, StepPlan: OK, StepInstall: OK, StepKubeconfig: Skipped, StepWait: OK, StepLabel: OK, StepSummary: OK}
	if got := outcomes(res); !equalOutcomes(got, want) {
		t.Errorf("outcomes %v, want %v\n%s", got, want, out)
	}

	// The spec gained the node, and the tree has its host files with the captured hardware.
	c, err := spec.Load(f.specPath)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := c.Node("ritsuko"); !ok || n.IP != "192.168.1.101" || n.Role != "agent" || n.ClusterInit {
		t.Errorf("spec node: %+v %v", n, ok)
	}
	hw, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(nixos.HardwarePath("ritsuko"))))
	if err != nil || !strings.Contains(string(hw), `"virtio_pci"`) || nixos.IsPlaceholderHardware(hw) {
		t.Errorf("hardware-configuration.nix: %q %v", hw, err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "nixos/hosts/ritsuko/default.nix")); err != nil {
		t.Error(err)
	}

	// Exactly the nixos-anywhere command documented, with the staged files private.
	staging := f.read(t, "staging")
	host, port := "127.0.0.1", f.srv.Port
	wantArgv := []string{
		"--flake", filepath.Join(f.dir, "nixos") + "#ritsuko",
		"--target-host", f.srv.User + "@" + host,
		"--extra-files", staging,
		"-p", strconv.Itoa(port),
		"-i", f.srv.ClientKeyPath,
		"--ssh-option", "UserKnownHostsFile=" + f.srv.KnownHostsFile,
	}
	if got := strings.Split(f.read(t, "argv"), "\n"); strings.Join(got, " ") != strings.Join(wantArgv, " ") {
		t.Errorf("nixos-anywhere argv:\n got %q\nwant %q", got, wantArgv)
	}
	if m := f.read(t, "keymode"); m != "600" {
		t.Errorf("age key mode during the call: %s, want 600", m)
	}
	if m := f.read(t, "hostkeymode"); m != "600" {
		t.Errorf("host key mode during the call: %s, want 600", m)
	}
	if m := f.read(t, "stagingmode"); m != "700" {
		t.Errorf("staging dir mode: %s, want 700", m)
	}
	if h := f.read(t, "keyhash"); h != f.ageHash {
		t.Error("the staged age key is not exactly the spec's identity (an unrelated key leaked, or it was mangled)")
	}
	if _, err := os.Stat(filepath.Dir(staging)); !os.IsNotExist(err) {
		t.Errorf("staging dir %s still exists after the install: %v", staging, err)
	}
	if e := f.read(t, "env"); !strings.Contains(e, "NERV_TEST_RECORD=") {
		t.Error("nixos-anywhere did not get the caller's environment")
	}
	// Its output streamed under the prefix.
	for _, line := range []string{InstallerPrefix + "### installing NixOS", InstallerPrefix + "building the closure"} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("output lacks %q", line)
		}
	}
	// The installed system's host key replaced the installer's in known_hosts.
	kh, _ := os.ReadFile(f.srv.KnownHostsFile)
	hostPub := f.read(t, "hostkey.pub")
	if !strings.Contains(string(kh), strings.TrimSpace(strings.SplitN(hostPub, " ", 2)[1])) || strings.Contains(string(kh), strings.TrimSpace(f.srv.KnownHostsLine())) {
		t.Errorf("known_hosts after install:\n%s", kh)
	}
	// No secret in the output.
	secret, _ := os.ReadFile(f.ageKey)
	for _, line := range strings.Split(string(secret), "\n") {
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") && strings.Contains(out, line) {
			t.Error("an age secret key appeared in the output")
		}
	}
	if strings.Contains(out, "AGE-SECRET-KEY") {
		t.Error("output mentions AGE-SECRET-KEY")
	}
	// Labelled.
	n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "ritsuko", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["nerv.dev/role"] != "agent" || n.Labels["node-role.kubernetes.io/worker"] != "true" {
		t.Errorf("labels: %v", n.Labels)
	}
	if !strings.Contains(out, "waiting for ritsuko:") {
		t.Errorf("no progress line while waiting:\n%s", out)
	}

	// Re-running resumes: everything is detected as done, nixos-anywhere is not run again.
	os.Remove(filepath.Join(f.record, "argv"))
	f.out.Reset()
	f.opts.AcceptHostKey = ""
	res, err = Run(ctx, f.opts)
	if err != nil {
		t.Fatalf("re-run: %v\n%s", err, f.out)
	}
	want = map[string]Outcome{StepPreflight: OK, StepPlan: AlreadyDone, StepInstall: AlreadyDone, StepKubeconfig: Skipped, StepWait: AlreadyDone, StepLabel: AlreadyDone, StepSummary: OK}
	if got := outcomes(res); !equalOutcomes(got, want) {
		t.Errorf("re-run outcomes %v, want %v\n%s", got, want, f.out)
	}
	if _, err := os.Stat(filepath.Join(f.record, "argv")); err == nil {
		t.Error("nixos-anywhere ran again on a resumed join")
	}
}

func equalOutcomes(a, b map[string]Outcome) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestInstallGeneratesHardwareWhenTargetLacksTheTool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := newFixture(t, "kaji", "192.168.1.102", spec.RoleAgent)
	// No nixos-generate-config on the target: nixos-anywhere writes the file.
	f.opts.Timeout = 2 * time.Second
	res, err := Run(ctx, f.opts)
	// The node never registers here, so the wait times out; install must have run first.
	if got := outcomes(res); got[StepInstall] != OK || got[StepWait] != Failed {
		t.Fatalf("outcomes %v (%v)\n%s", got, err, f.out)
	}
	hwPath := filepath.Join(f.dir, filepath.FromSlash(nixos.HardwarePath("kaji")))
	argv := f.read(t, "argv")
	if !strings.HasSuffix(argv, "--generate-hardware-config\nnixos-generate-config\n"+hwPath) {
		t.Errorf("argv does not end with --generate-hardware-config nixos-generate-config %s:\n%s", hwPath, argv)
	}
	if hw, _ := os.ReadFile(hwPath); !strings.Contains(string(hw), "generatedBy") {
		t.Errorf("hardware file not the one nixos-anywhere wrote: %q", hw)
	}
	if !strings.Contains(f.out.String(), "nixos-anywhere generates it during install") {
		t.Errorf("plan does not say where the hardware configuration comes from:\n%s", f.out)
	}
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepWait || se.Usage {
		t.Errorf("error %v: want a wait StepError", err)
	}
	if !strings.Contains(err.Error(), "last condition seen: not registered yet") {
		t.Errorf("timeout error should name the last condition: %v", err)
	}
}

func TestInterruptDuringInstallRemovesStagedSecrets(t *testing.T) {
	f := newFixture(t, "pen-pen", "192.168.1.103", spec.RoleAgent)
	f.srv.AddCommand(t, "nixos-generate-config", fakeHardwareConfig)
	t.Setenv("NERV_TEST_HANG", "1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Ctrl-C reaches Run as a cancelled context (the CLI uses signal.NotifyContext).
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(f.record, "started")); err == nil {
				cancel()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	res, err := Run(ctx, f.opts)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("got %v, want an interruption\n%s", err, f.out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s to stop", d)
	}
	if got := outcomes(res); got[StepInstall] != Failed {
		t.Errorf("outcomes %v", got)
	}
	if s := f.read(t, "signal"); s != "SIGINT" {
		t.Errorf("nixos-anywhere got %q, want SIGINT", s)
	}
	if m := f.read(t, "keymode"); m != "600" {
		t.Errorf("key mode %s", m)
	}
	staging := f.read(t, "staging")
	if _, err := os.Stat(filepath.Dir(staging)); !os.IsNotExist(err) {
		t.Errorf("staging dir survived the interrupt: %v", err)
	}
}

func TestWaitTimeoutNamesLastCondition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t, "shigeru", "192.168.1.104", spec.RoleAgent)
	// The node is in the spec already and registered, but its kubelet is unhappy (no kwok
	// annotation: nothing will make it Ready).
	c, _ := spec.Load(f.specPath)
	if err := c.AddNode(spec.Node{Name: "shigeru", IP: "192.168.1.104", Role: "agent", Disk: f.opts.Disk}); err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(f.specPath, c); err != nil {
		t.Fatal(err)
	}
	node, err := env.Clientset.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "shigeru"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: "container runtime network not ready", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := env.Clientset.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.opts.FromStep = StepWait
	f.opts.Timeout = 2 * time.Second
	start := time.Now()
	res, err := Run(ctx, f.opts)
	if err == nil {
		t.Fatal("wait succeeded for a node that is not Ready")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("timeout of 2s took %s", d)
	}
	want := "last condition seen: Ready=False (KubeletNotReady: container runtime network not ready)"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	got := outcomes(res)
	if got[StepPreflight] != Skipped || got[StepInstall] != Skipped || got[StepWait] != Failed {
		t.Errorf("--from-step wait outcomes: %v", got)
	}
	if !strings.Contains(f.out.String(), "Ready=False (KubeletNotReady") {
		t.Errorf("progress never showed the condition:\n%s", f.out)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name, node, ip, role string
		want                 string
	}{
		{"invalid IP", "ritsuko", "192.168.1.300", "agent", `--ip "192.168.1.300" is not an IPv4 address`},
		{"IPv6", "ritsuko", "fd00::1", "agent", "is not an IPv4 address"},
		{"duplicate name", "misato", "192.168.1.120", "agent", "node misato is already in the spec as server 192.168.1.100"},
		{"duplicate IP", "ritsuko", "192.168.1.100", "agent", "192.168.1.100 is already the address of misato"},
		{"IP in the LoadBalancer pool", "ritsuko", "192.168.1.112", "agent", "spec.nodes[1].ip: 192.168.1.112 is inside the LoadBalancer pool 192.168.1.110-192.168.1.115"},
		{"IP outside the subnet", "ritsuko", "10.0.0.5", "agent", "spec.nodes[1].ip: 10.0.0.5 is outside the subnet"},
		{"bad name", "Ritsuko_1", "192.168.1.101", "agent", "spec.nodes[1].name"},
		{"bad role", "ritsuko", "192.168.1.101", "worker", `--role "worker"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			specPath := filepath.Join(dir, "nerv.yaml")
			os.WriteFile(specPath, spec.Example(), 0o644)
			var out bytes.Buffer
			res, err := Run(context.Background(), Options{
				Node: tt.node, IP: tt.ip, Role: tt.role, SpecPath: specPath, Out: &out,
				Kube: func(string) (kubernetes.Interface, error) {
					t.Error("bad input must be refused before the cluster is contacted")
					return nil, errors.New("no")
				},
			})
			var se *StepError
			if !errors.As(err, &se) || !se.Usage || se.Step != StepPreflight {
				t.Fatalf("got %v, want a usage error from preflight", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if got := outcomes(res); got[StepPreflight] != Failed || len(got) != 1 {
				t.Errorf("outcomes %v", got)
			}
			if b, _ := os.ReadFile(specPath); !bytes.Equal(b, spec.Example()) {
				t.Error("the spec changed")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("files appeared: %v", entries)
			}
		})
	}
}

func TestPreflightSSHFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture)
		want  []string
	}{
		{"unreachable host", func(t *testing.T, f *fixture) {
			f.opts.SSHAddress = sshtest.ClosedAddr(t)
			f.opts.ConnectTimeout = time.Second
		}, []string{"cannot reach SSH on 127.0.0.1:", "connection refused", "connect timeout 1s"}},
		{"wrong SSH key", func(t *testing.T, f *fixture) {
			f.opts.IdentityFile = f.srv.WrongClientKey(t)
		}, []string{"the server refused it", "authorized_keys"}},
		{"unknown host key", func(t *testing.T, f *fixture) {
			f.opts.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		}, []string{"is not in", "--accept-host-key " + "SHA256:"}},
		{"changed host key", func(t *testing.T, f *fixture) {
			f.srv.RotateHostKey(t)
		}, []string{"REMOTE HOST IDENTIFICATION HAS CHANGED", ":1 ("}},
		{"too little memory, no disk", func(t *testing.T, f *fixture) {
			f.srv.AddCommand(t, "grep", "#!/bin/sh\necho 'MemTotal:         1048576 kB'\n")
			f.opts.Disk = "/dev/nerv-test-no-such-disk"
		}, []string{"1.0 GiB of memory", "at least 1.5 GiB", "/dev/nerv-test-no-such-disk is not a block device"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "maya", "192.168.1.105", spec.RoleAgent)
			tt.setup(t, f)
			before, _ := os.ReadFile(f.specPath)
			start := time.Now()
			_, err := Run(context.Background(), f.opts)
			var se *StepError
			if !errors.As(err, &se) || !se.Usage || se.Step != StepPreflight {
				t.Fatalf("got %v, want a usage error from preflight\n%s", err, f.out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("took %s", d)
			}
			if after, _ := os.ReadFile(f.specPath); !bytes.Equal(before, after) {
				t.Error("the spec changed although preflight failed")
			}
			if _, err := os.Stat(filepath.Join(f.record, "argv")); err == nil {
				t.Error("nixos-anywhere ran")
			}
		})
	}
}

func TestDryRunContactsNothingAndWritesNothing(t *testing.T) {
	dir := t.TempDir()
	specPath := filepath.Join(dir, "nerv.yaml")
	os.WriteFile(specPath, spec.Example(), 0o644)
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{
		Node: "ritsuko", IP: "192.168.1.101", Role: "agent", SpecPath: specPath, DryRun: true,
		// A closed port: any SSH attempt would fail the run.
		SSHAddress: sshtest.ClosedAddr(t),
		Kube: func(string) (kubernetes.Interface, error) {
			t.Error("a dry run contacted the cluster")
			return nil, errors.New("no")
		},
		Out: &out,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := outcomes(res); len(got) != 2 || got[StepPreflight] != OK || got[StepPlan] != OK {
		t.Errorf("outcomes %v", got)
	}
	for _, w := range []string{
		"add spec.nodes[1] ritsuko (agent, 192.168.1.101, disk /dev/sda)",
		"create nixos/hosts/ritsuko/default.nix",
		"install: nixos-anywhere --flake '" + dir + "/nixos#ritsuko' --target-host root@127.0.0.1 --extra-files <staging>",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("plan lacks %q:\n%s", w, out.String())
		}
	}
	if res.Plan == nil || res.Plan.Hardware != HardwareUnknown {
		t.Errorf("plan %+v", res.Plan)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("a dry run wrote files: %v", entries)
	}
	if b, _ := os.ReadFile(specPath); !bytes.Equal(b, spec.Example()) {
		t.Error("a dry run changed the spec")
	}
}

func TestFirstServerBecomesClusterInit(t *testing.T) {
	dir := t.TempDir()
	specPath := filepath.Join(dir, "nerv.yaml")
	c, _ := spec.Parse(spec.Example(), "example")
	c.Spec.Nodes = nil
	if err := spec.Write(specPath, c); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := Run(context.Background(), Options{Node: "misato", IP: "192.168.1.100", Role: "server", SpecPath: specPath, DryRun: true, CheckRemote: false, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(res.Plan.SpecChange, "clusterInit") || !strings.Contains(out.String(), `merge its kubeconfig as context "nerv"`) {
		t.Errorf("first server plan:\n%s", out.String())
	}
	// An agent cannot be the first node.
	_, err = Run(context.Background(), Options{Node: "ritsuko", IP: "192.168.1.101", Role: "agent", SpecPath: specPath, DryRun: true, Out: &out})
	if err == nil || !strings.Contains(err.Error(), "agent ritsuko has no server to join") {
		t.Errorf("agent first: %v", err)
	}
}

func TestFromStepRejectsUnknownStep(t *testing.T) {
	_, err := Run(context.Background(), Options{Node: "x", IP: "192.168.1.101", FromStep: "reboot"})
	if err == nil || !strings.Contains(err.Error(), `--from-step "reboot": not a step`) {
		t.Errorf("got %v", err)
	}
}

func TestNameTakenByANodeOutsideTheSpec(t *testing.T) {
	ctx := context.Background()
	if _, err := env.Clientset.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "gendo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "gendo", "192.168.1.106", spec.RoleAgent)
	_, err := Run(ctx, f.opts)
	if err == nil || !strings.Contains(err.Error(), "gendo is already a Node of the cluster but not in") {
		t.Fatalf("got %v", err)
	}
}

// The first server of a new cluster: no cluster to ask before the install; after it, the
// machine comes back with the host key join staged (sshd is reloaded with it), join fetches
// k3s' kubeconfig over SSH verified against that key, merges it as context "nerv", and
// watches the Node through that context.
func TestJoinFirstServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := env.StartKwok(ctx); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "misato", "192.168.1.100", spec.RoleServer)
	c, _ := spec.Load(f.specPath)
	c.Spec.Nodes = nil
	if err := spec.Write(f.specPath, c); err != nil {
		t.Fatal(err)
	}
	f.srv.AddCommand(t, "nixos-generate-config", fakeHardwareConfig)
	remote := filepath.Join(t.TempDir(), "k3s.yaml")
	t.Setenv("NERV_TEST_SSHD_PID", strconv.Itoa(f.srv.Pid()))
	t.Setenv("NERV_TEST_SSHD_HOSTKEY", f.srv.HostKeyPath)
	t.Setenv("NERV_TEST_K3S_YAML", remote)
	t.Setenv("NERV_TEST_K3S_CONTENT", k3sKubeconfig)
	f.opts.RemoteKubeconfig = remote
	f.opts.Kubeconfig = filepath.Join(t.TempDir(), "kube", "config")
	var contexts []string
	f.opts.Kube = func(kubeContext string) (kubernetes.Interface, error) {
		// The merged context points at 192.168.1.100, which tests never contact: the test
		// records which context join asked for and answers with the test apiserver.
		contexts = append(contexts, kubeContext)
		return env.Clientset, nil
	}
	old := kubeconfigRetry
	kubeconfigRetry = 200 * time.Millisecond
	defer func() { kubeconfigRetry = old }()
	registerWhenInstalled(t, ctx, f, "misato", "192.168.1.100", "server")

	res, err := Run(ctx, f.opts)
	if err != nil {
		t.Fatalf("join: %v\n%s", err, f.out)
	}
	want := map[string]Outcome{StepPreflight: OK, StepPlan: OK, StepInstall: OK, StepKubeconfig: OK, StepWait: OK, StepLabel: OK, StepSummary: OK}
	got := outcomes(res)
	if got[StepWait] == AlreadyDone {
		// The node may turn Ready while the kubeconfig step waits for sshd and k3s.
		got[StepWait] = OK
	}
	if !equalOutcomes(got, want) {
		t.Errorf("outcomes %v, want %v\n%s", got, want, f.out)
	}
	if !strings.Contains(f.out.String(), "first server: it initialises the cluster") {
		t.Errorf("preflight did not say it skipped the cluster check:\n%s", f.out)
	}
	if len(contexts) == 0 || contexts[0] != "nerv" {
		t.Errorf("Kube contexts asked for: %q, want the merged \"nerv\" first", contexts)
	}
	c, _ = spec.Load(f.specPath)
	if n, ok := c.Node("misato"); !ok || !n.ClusterInit || n.Role != "server" {
		t.Errorf("spec node %+v", n)
	}
	cfg, err := clientcmd.LoadFromFile(f.opts.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "nerv" || cfg.Clusters["nerv"].Server != "https://192.168.1.100:6443" {
		t.Errorf("kubeconfig: current %q, clusters %v", cfg.CurrentContext, cfg.Clusters)
	}
	// known_hosts now holds the installed system's key, the one sshd serves.
	f.srv.Reload(t, false)
	kh, _ := os.ReadFile(f.srv.KnownHostsFile)
	if string(kh) != f.srv.KnownHostsLine() {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", kh, f.srv.KnownHostsLine())
	}
	n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "misato", metav1.GetOptions{})
	if err != nil || n.Labels["nerv.dev/role"] != "server" || n.Labels["node-role.kubernetes.io/control-plane"] != "true" {
		t.Errorf("labels %v %v", n.Labels, err)
	}
	if res.Context != "nerv" || !strings.Contains(f.out.String(), `context "nerv"`) {
		t.Errorf("summary/result context %q:\n%s", res.Context, f.out)
	}
}

func TestFromStepNeedsTheNodeInTheSpec(t *testing.T) {
	dir := t.TempDir()
	specPath := filepath.Join(dir, "nerv.yaml")
	os.WriteFile(specPath, spec.Example(), 0o644)
	_, err := Run(context.Background(), Options{Node: "ritsuko", IP: "192.168.1.101", SpecPath: specPath, FromStep: StepInstall})
	if err == nil || !strings.Contains(err.Error(), "ritsuko is not in "+specPath+" yet") {
		t.Errorf("got %v", err)
	}
}
