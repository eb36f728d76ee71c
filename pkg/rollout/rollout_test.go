package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/nerv-platform/nerv/internal/sshtest"
	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/spec"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fakeRebuild is the test double for nixos-rebuild, the one process this machine cannot run
// for real (it would build NixOS and activate it on a remote machine). It is put first on
// PATH, appends one line per call to $FAKE_REBUILD_LOG ("ARGS | NIX_SSHOPTS"), prints a line
// of output, and fails when its arguments name the flake attribute of $FAKE_REBUILD_FAIL.
const fakeRebuild = `#!/bin/sh
printf '%s | %s\n' "$*" "$NIX_SSHOPTS" >> "$FAKE_REBUILD_LOG"
case " $* " in
  *"#$FAKE_REBUILD_FAIL "*) echo "error: builder for '/nix/store/xyz-nixos-system.drv' failed with exit code 1" >&2; exit 1 ;;
esac
echo "building the system configuration..."
`

type harness struct {
	t       *testing.T
	srv     *sshtest.Server
	log     string
	machine *NixOS
	booted  string
	profile string
	spec    *spec.Cluster
}

// newHarness creates kwok nodes for every node of the spec, a fake nixos-rebuild on PATH, a
// real sshd on loopback that every node's address points at, and booted/profile system
// directories whose kernel links KernelChanged reads over SSH.
func newHarness(t *testing.T, nodes ...string) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.StartKwok(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, spec: specWith(t, nodes...)}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "nixos-rebuild"), []byte(fakeRebuild), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	h.log = filepath.Join(t.TempDir(), "rebuild.log")
	t.Setenv("FAKE_REBUILD_LOG", h.log)
	t.Setenv("FAKE_REBUILD_FAIL", "")

	h.srv = sshtest.Start(t)
	sys := t.TempDir()
	h.booted, h.profile = filepath.Join(sys, "booted-system"), filepath.Join(sys, "profile")
	h.setKernel(h.booted, "linux-6.12.7")
	h.setKernel(h.profile, "linux-6.12.7")

	addrs := map[string]string{}
	for _, n := range h.spec.Spec.Nodes {
		addrs[n.Name] = h.srv.Addr
		createNode(t, ctx, testenv.Node{Name: n.Name, IP: n.IP, Role: n.Role})
		if _, err := env.WaitNodeReady(ctx, n.Name); err != nil {
			t.Fatal(err)
		}
		setBootID(t, ctx, n.Name, "boot-1")
	}
	h.machine = &NixOS{
		FlakeDir: "/site/nixos", User: h.srv.User,
		IdentityFile: h.srv.ClientKeyPath, KnownHostsFile: h.srv.KnownHostsFile,
		Addresses: addrs, Remote: sshRemote(t, h.srv),
		BootedSystem: h.booted, SystemProfile: h.profile,
	}
	return h
}

// createNode creates a kwok node like testenv.CreateNode, retrying its status write for as
// long as it conflicts: with kube-controller-manager running (pdb_test.go starts it), its
// node controllers and kwok race for a new Node's status.
func createNode(t *testing.T, ctx context.Context, n testenv.Node) {
	t.Helper()
	v, err := env.Clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	n.KubeletVersion = v.GitVersion
	want := testenv.NodeObject(n)
	if _, err := env.Clientset.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := env.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.NodeInfo.KubeletVersion = want.Status.NodeInfo.KubeletVersion
		cur.Status.Addresses, cur.Status.Capacity, cur.Status.Allocatable = want.Status.Addresses, want.Status.Capacity, want.Status.Allocatable
		_, err = env.Clientset.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setKernel makes dir look like a NixOS system whose kernel files live in a store path
// named for kernel.
func (h *harness) setKernel(dir, kernel string) {
	h.t.Helper()
	store := filepath.Join(filepath.Dir(dir), "store", kernel)
	if err := os.MkdirAll(filepath.Join(store, "lib", "modules"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	for _, f := range []string{"bzImage", "initrd"} {
		if err := os.WriteFile(filepath.Join(store, f), nil, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	for link, target := range map[string]string{"kernel": "bzImage", "initrd": "initrd", "kernel-modules": "lib"} {
		p := filepath.Join(dir, link)
		_ = os.Remove(p)
		if err := os.Symlink(filepath.Join(store, target), p); err != nil {
			h.t.Fatal(err)
		}
	}
}

func setBootID(t *testing.T, ctx context.Context, node, id string) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"status":{"nodeInfo":{"bootID":%q}}}`, id)
	if _, err := env.Clientset.CoreV1().Nodes().Patch(ctx, node, "application/merge-patch+json", patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
}

// calls returns the fake nixos-rebuild's recorded calls.
func (h *harness) calls() []string {
	h.t.Helper()
	b, err := os.ReadFile(h.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (h *harness) wantCall(action, node string) string {
	sshopts := fmt.Sprintf("-o StrictHostKeyChecking=yes -o BatchMode=yes -o UserKnownHostsFile=%s -o IdentitiesOnly=yes -i %s -p %d",
		h.srv.KnownHostsFile, h.srv.ClientKeyPath, h.srv.Port)
	return fmt.Sprintf("%s --flake /site/nixos#%s --target-host %s@127.0.0.1 --use-remote-sudo | %s", action, node, h.srv.User, sshopts)
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// steps lists "node step status" for every non-output event.
func (r *recorder) steps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Status != StatusOutput && e.Status != StatusStarted {
			out = append(out, strings.TrimSpace(e.Node+" "+e.Step+" "+e.Status))
		}
	}
	return out
}

// watchCordons watches Node objects and records, at every change, how many of group are
// cordoned at once; it returns the maximum seen and the order nodes were first cordoned in.
// Only nodes in scope count (earlier tests leave nodes of their own behind, some cordoned).
func watchCordons(t *testing.T, ctx context.Context, group, scope []string) (stop func() (maxInGroup int, order []string)) {
	t.Helper()
	w, err := env.Clientset.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		cordoned = map[string]bool{}
		max      int
		order    []string
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok || ev.Type == watch.Error || !slices.Contains(scope, n.Name) {
				continue
			}
			mu.Lock()
			if n.Spec.Unschedulable && !cordoned[n.Name] {
				order = append(order, n.Name)
			}
			cordoned[n.Name] = n.Spec.Unschedulable
			c := 0
			for _, s := range group {
				if cordoned[s] {
					c++
				}
			}
			max = maxInt(max, c)
			mu.Unlock()
		}
	}()
	return func() (int, []string) {
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return max, order
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestRollOutKeepsQuorumAndRunsTheCommandsInOrder(t *testing.T) {
	h := newHarness(t, "melchior:server", "rei:agent", "balthasar:server", "casper:server")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	plan, err := NewPlan(h.spec, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	servers := []string{"melchior", "balthasar", "casper"}
	stop := watchCordons(t, ctx, servers, []string{"melchior", "rei", "balthasar", "casper"})
	rec := &recorder{}
	checks := 0
	err = Run(ctx, plan, Options{
		Clientset: env.Clientset, Machine: h.machine, Sink: rec, Servers: servers,
		ClusterCheck: func(context.Context) error { checks++; return nil },
	})
	maxCordoned, order := stop()
	if err != nil {
		t.Fatalf("Run: %v\nevents: %q", err, rec.steps())
	}
	if maxCordoned != 1 {
		t.Errorf("at most %d servers were cordoned at once, want exactly 1", maxCordoned)
	}
	wantOrder := []string{"rei", "balthasar", "casper", "melchior"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("nodes cordoned in order %v, want %v (agents, then servers, bootstrap last)", order, wantOrder)
	}
	var want []string
	for _, n := range wantOrder {
		want = append(want, h.wantCall("boot", n), h.wantCall("switch", n))
	}
	if got := h.calls(); !slices.Equal(got, want) {
		t.Errorf("nixos-rebuild calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var wantSteps []string
	for _, n := range wantOrder {
		wantSteps = append(wantSteps, "preflight succeeded")
		for _, s := range []string{StepPreflight, StepCordon, StepDrain, StepInstall, StepKernel, StepSwitch, StepReady, StepUncordon, StepCheck} {
			wantSteps = append(wantSteps, n+" "+s+" succeeded")
		}
	}
	wantSteps = append(wantSteps, "rollout succeeded")
	if got := rec.steps(); !slices.Equal(got, wantSteps) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSteps, "\n"))
	}
	if checks != 2*len(wantOrder) {
		t.Errorf("cluster checks ran %d times, want before and after each of %d nodes", checks, len(wantOrder))
	}
	for _, n := range wantOrder {
		node, err := env.Clientset.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Spec.Unschedulable {
			t.Errorf("%s left cordoned after a successful roll-out", n)
		}
	}
	// Output is streamed per node.
	var output int
	for _, e := range rec.events {
		if e.Status == StatusOutput && e.Node == "rei" && strings.Contains(e.Message, "building the system configuration") {
			output++
		}
	}
	if output != 2 {
		t.Errorf("rei's nixos-rebuild output seen %d times, want once per call (2)", output)
	}
}

func TestFailingRebuildStopsTheRollOutAndLeavesTheNodeCordoned(t *testing.T) {
	h := newHarness(t, "gendo:server", "shinji:agent", "asuka:agent")
	t.Setenv("FAKE_REBUILD_FAIL", "shinji")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plan, err := NewPlan(h.spec, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	err = Run(ctx, plan, Options{Clientset: env.Clientset, Machine: h.machine, Sink: rec, Servers: []string{"gendo"}})
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("Run err = %v, want *StepError", err)
	}
	if se.Node != "shinji" || se.Step != StepInstall || !se.Cordoned {
		t.Errorf("failure at node %q step %q cordoned=%v, want shinji install cordoned", se.Node, se.Step, se.Cordoned)
	}
	for _, s := range []string{"node shinji: step install failed", "builder for", "left cordoned", "kubectl nerv node rollback shinji"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%v", s, err)
		}
	}
	if got, want := h.calls(), []string{h.wantCall("boot", "shinji")}; !slices.Equal(got, want) {
		t.Errorf("nixos-rebuild calls %q, want only %q: nothing after the failure", got, want)
	}
	for name, wantCordoned := range map[string]bool{"shinji": true, "asuka": false, "gendo": false} {
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable != wantCordoned {
			t.Errorf("%s cordoned = %v, want %v", name, n.Spec.Unschedulable, wantCordoned)
		}
	}
	var failed *Event
	for i, e := range rec.events {
		if e.Status == StatusFailed && e.Node == "shinji" {
			failed = &rec.events[i]
		}
	}
	if failed == nil || failed.Step != StepInstall || failed.Rollback != "kubectl nerv node rollback shinji" {
		t.Errorf("failed event %+v, want step install with the rollback command", failed)
	}
}

func TestKernelChangeRebootsAndWaitsForANewBootID(t *testing.T) {
	h := newHarness(t, "ritsuko:server")
	h.setKernel(h.profile, "linux-6.18.1")
	// The reboot goes over the real sshd; sudo there is a stand-in that records what it was
	// asked to run (rebooting this machine is not an option).
	marker := filepath.Join(t.TempDir(), "reboot")
	h.srv.AddCommand(t, "sudo", "#!/bin/sh\nprintf '%s\\n' \"$*\" > "+marker+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Play the machine: once the reboot was requested, the kubelet comes back with a new
	// boot ID, as k3s's would.
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(marker); err == nil {
				patch := []byte(`{"status":{"nodeInfo":{"bootID":"boot-2"}}}`)
				if _, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "ritsuko", "application/merge-patch+json", patch, metav1.PatchOptions{}, "status"); err != nil {
					t.Errorf("playing the rebooted kubelet: %v", err)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	plan, err := NewPlan(h.spec, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := Run(ctx, plan, Options{Clientset: env.Clientset, Machine: h.machine, Sink: rec, Servers: []string{"ritsuko"}}); err != nil {
		t.Fatalf("Run: %v\n%q", err, rec.steps())
	}
	got, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != "systemd-run --on-active=2 systemctl reboot" {
		t.Errorf("sudo ran %q, want the reboot command", got)
	}
	if calls := h.calls(); !slices.Equal(calls, []string{h.wantCall("boot", "ritsuko")}) {
		t.Errorf("nixos-rebuild calls %q, want only boot (no switch before a reboot)", calls)
	}
	steps := strings.Join(rec.steps(), "\n")
	for _, s := range []string{"ritsuko kernel succeeded", "ritsuko reboot succeeded", "ritsuko ready succeeded", "ritsuko uncordon succeeded"} {
		if !strings.Contains(steps, s) {
			t.Errorf("events lack %q:\n%s", s, steps)
		}
	}
	if strings.Contains(steps, "ritsuko switch") {
		t.Errorf("switched although the kernel changed:\n%s", steps)
	}
	for _, e := range rec.events {
		if e.Step == StepKernel && e.Status == StatusSucceeded && !strings.Contains(e.Message, "linux-6.12.7") {
			t.Errorf("kernel step message %q does not say what changed", e.Message)
		}
	}
}

func TestPreflightRefusesAServerWhileAnotherIsDown(t *testing.T) {
	h := newHarness(t, "kaworu:server", "toji:server", "hikari:server")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := env.Clientset.CoreV1().Nodes().Patch(ctx, "hikari", "application/merge-patch+json", []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(h.spec, []string{"toji"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(ctx, plan, Options{Clientset: env.Clientset, Machine: h.machine, Servers: []string{"kaworu", "toji", "hikari"}})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepPreflight || se.Cordoned || !strings.Contains(err.Error(), "server hikari is not Ready and schedulable") {
		t.Fatalf("err = %v, want a preflight refusal naming hikari", err)
	}
	if calls := h.calls(); len(calls) != 0 {
		t.Errorf("nixos-rebuild ran %q after a failed preflight", calls)
	}
	n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "toji", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable {
		t.Error("toji was cordoned although its preflight failed")
	}
}

func TestAgentsRollInBatchesOfMaxUnavailable(t *testing.T) {
	h := newHarness(t, "yui:server", "pen1:agent", "pen2:agent", "pen3:agent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plan, err := NewPlan(h.spec, []string{"pen1", "pen2", "pen3"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	stop := watchCordons(t, ctx, []string{"pen1", "pen2", "pen3"}, []string{"yui", "pen1", "pen2", "pen3"})
	if err := Run(ctx, plan, Options{Clientset: env.Clientset, Machine: h.machine, Servers: []string{"yui"}}); err != nil {
		t.Fatal(err)
	}
	maxAgents, order := stop()
	// pen1 and pen2 are out together; pen3 only after both are back.
	if maxAgents != 2 {
		t.Errorf("at most %d agents cordoned at once, want 2 (max-unavailable)", maxAgents)
	}
	if len(order) != 3 || order[2] != "pen3" {
		t.Errorf("cordon order %v, want pen1 and pen2 (either order), then pen3", order)
	}
	if calls := h.calls(); len(calls) != 6 {
		t.Errorf("nixos-rebuild calls %q, want boot and switch for each of 3 agents", calls)
	}
}
