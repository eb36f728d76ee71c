package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nerv-platform/nerv/pkg/doctor"
	"github.com/nerv-platform/nerv/pkg/drain"
	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/platform"
	"github.com/nerv-platform/nerv/pkg/rollout"
	"github.com/nerv-platform/nerv/pkg/spec"
)

const nodeExitCodes = `Exit codes: 0 done (or, with --dry-run, the plan was printed); 1 a step failed: the roll-out
stopped, the failed node is left cordoned and the error says which node, which step and how to
roll back; 2 could not start: bad flags, unknown node, invalid spec, unreachable cluster,
missing tools. Nothing is changed before the checks behind exit code 2 have passed.`

// NodeOptions holds what every `kubectl nerv node` subcommand shares.
type NodeOptions struct {
	SpecPath string
	// SSH, as for join: the user (default: the spec's admin user), key, known_hosts file and
	// per-node address overrides NODE=HOST:PORT.
	SSHUser        string
	IdentityFile   string
	KnownHostsFile string
	SSHAddresses   []string
	// NixOSRebuild is the nixos-rebuild program to run.
	NixOSRebuild string
	Output       OutputFlags

	kube      *genericclioptions.ConfigFlags
	cluster   *spec.Cluster
	addresses map[string]string
	genericiooptions.IOStreams
}

func (o *NodeOptions) addFlags(cmd *cobra.Command, ssh bool) {
	cmd.Flags().StringVar(&o.SpecPath, "spec", "nerv.yaml", "cluster spec file; the NixOS tree is nixos/ beside it")
	if ssh {
		cmd.Flags().StringVar(&o.SSHUser, "ssh-user", "", "SSH login user on the nodes (default: spec.admin.user); needs passwordless sudo")
		cmd.Flags().StringVarP(&o.IdentityFile, "identity", "i", "", "SSH private key (default: ssh's own choice)")
		cmd.Flags().StringVar(&o.KnownHostsFile, "known-hosts", "", "known_hosts file the nodes' host keys are verified against (default ~/.ssh/known_hosts); unknown keys are refused: join records them")
		cmd.Flags().StringArrayVar(&o.SSHAddresses, "ssh-address", nil, "reach NODE at HOST:PORT instead of its spec IP on port 22 (NODE=HOST:PORT, repeatable)")
		cmd.Flags().StringVar(&o.NixOSRebuild, "nixos-rebuild", "nixos-rebuild", "nixos-rebuild program")
	}
	o.Output.AddFlags(cmd)
}

// complete loads and validates the spec and the SSH flags. Every failure is ExitUsage.
func (o *NodeOptions) complete() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Output.Format == OutputYAML {
		return Exitf(ExitUsage, "--output yaml is not supported here: use table, or json for one event per line")
	}
	c, err := loadSpec(o.SpecPath, o.ErrOut)
	if err != nil {
		return err
	}
	o.cluster = c
	if o.SSHUser == "" {
		o.SSHUser = c.Spec.Admin.User
	}
	o.addresses = map[string]string{}
	for _, a := range o.SSHAddresses {
		name, addr, ok := strings.Cut(a, "=")
		if !ok || name == "" || addr == "" {
			return Exitf(ExitUsage, "--ssh-address %q: want NODE=HOST:PORT", a)
		}
		if _, ok := c.Node(name); !ok {
			return Exitf(ExitUsage, "--ssh-address %q: node %s is not in %s", a, name, o.SpecPath)
		}
		o.addresses[name] = addr
	}
	return nil
}

// lookRebuild finds nixos-rebuild, or says how to get it.
func (o *NodeOptions) lookRebuild() error {
	if _, err := exec.LookPath(o.NixOSRebuild); err != nil {
		return Exitf(ExitUsage, "%s not found: it builds the nodes' systems on this machine; install it (nix profile install nixpkgs#nixos-rebuild, or run from a NixOS machine) or pass --nixos-rebuild PATH", o.NixOSRebuild)
	}
	return nil
}

func (o *NodeOptions) flakeDir() string {
	return filepath.Join(filepath.Dir(o.SpecPath), nixos.Root)
}

func (o *NodeOptions) clients() (*rest.Config, kubernetes.Interface, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, nil, Exitf(ExitUsage, "loading the kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, Exitf(ExitUsage, "%v", err)
	}
	return cfg, cs, nil
}

func (o *NodeOptions) machine() (*rollout.NixOS, error) {
	m := &rollout.NixOS{
		FlakeDir:       o.flakeDir(),
		Rebuild:        o.NixOSRebuild,
		User:           o.SSHUser,
		IdentityFile:   o.IdentityFile,
		KnownHostsFile: o.KnownHostsFile,
		Addresses:      o.addresses,
	}
	remote, err := nodeRemote(o, m)
	if err != nil {
		return nil, Exitf(ExitUsage, "%v", err)
	}
	m.Remote = remote
	for _, t := range o.cluster.Spec.Nodes {
		if _, err := m.SSHOptions(rollout.Target{Name: t.Name, IP: t.IP}); err != nil {
			return nil, Exitf(ExitUsage, "%v", err)
		}
	}
	return m, nil
}

func (o *NodeOptions) sink() rollout.Sink {
	if o.Output.Format == OutputJSON {
		return rollout.NewJSONSink(o.Out)
	}
	return rollout.NewTextSink(o.Out)
}

func newNodeCommand(streams genericiooptions.IOStreams, kube *genericclioptions.ConfigFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Roll NixOS changes across running nodes safely: apply, upgrade, remove, rollback",
		Long: `Apply the cluster spec's NixOS configuration to running nodes without taking the cluster down.

Nodes are rolled agents first (--max-unavailable at a time), then servers one at a time so that
etcd never loses more than one member; each node is checked, cordoned, drained through the
Eviction API (PodDisruptionBudgets respected), switched with nixos-rebuild over SSH (or
rebooted when its kernel changed), waited for, uncordoned and checked again. See docs/nodes.md.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	cmd.AddCommand(
		newNodeApplyCommand(streams, kube, false),
		newNodeApplyCommand(streams, kube, true),
		newNodeRemoveCommand(streams, kube),
		newNodeRollbackCommand(streams, kube),
	)
	return cmd
}

// NodeApplyOptions drives `node apply` and `node upgrade`.
type NodeApplyOptions struct {
	NodeOptions
	Nodes          []string
	All            bool
	MaxUnavailable int
	DryRun         bool
	DrainTimeout   time.Duration
	ReadyTimeout   time.Duration
	Force          bool
	// Upgrade runs `nix flake update` in the NixOS tree first.
	Upgrade bool

	plan *rollout.Plan
}

func newNodeApplyCommand(streams genericiooptions.IOStreams, kube *genericclioptions.ConfigFlags, upgrade bool) *cobra.Command {
	o := &NodeApplyOptions{NodeOptions: NodeOptions{IOStreams: streams, kube: kube}, Upgrade: upgrade}
	cmd := &cobra.Command{
		Use:   "apply [NODE...|--all] [--spec nerv.yaml] [--max-unavailable 1] [--dry-run]",
		Short: "Render the NixOS tree and roll it out to the named nodes (or --all) safely",
		Long: `Re-render the NixOS tree from the spec (as kubectl nerv generate does), then roll it out node by
node: agents first, --max-unavailable at a time, then servers one at a time (the bootstrap
server last). Each node goes through:

  preflight  the node is Ready; PodDisruptionBudgets allow its evictions (dry-run evictions);
             for a server, every other server is Ready; the doctor's kubernetes checks pass
  cordon, drain  evictions through the Eviction API; DaemonSet, mirror and finished pods stay
  install    nixos-rebuild boot --flake DIR/nixos#NODE --target-host USER@IP --use-remote-sudo
  kernel     over SSH: /run/booted-system/{kernel,initrd,kernel-modules} against the new
             generation's (/nix/var/nix/profiles/system/...)
  switch     nixos-rebuild switch ... when they are the same, or
  reboot     when they differ (then the node must come back with a new boot ID)
  ready      a kubelet heartbeat after the change, and Ready
  uncordon, check  Ready and schedulable; the doctor's kubernetes checks

--dry-run prints the plan and each node's state and changes nothing. -o json prints one JSON
event per line (schema in docs/nodes.md).

` + nodeExitCodes,
		Example: `  kubectl nerv node apply --all --dry-run
  kubectl nerv node apply kaji --spec site/nerv.yaml
  kubectl nerv node apply --all --max-unavailable 2 -o json`,
		RunE: func(c *cobra.Command, args []string) error {
			o.Nodes = args
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	if upgrade {
		cmd.Use = "upgrade [NODE...|--all] [--spec nerv.yaml] [--max-unavailable 1] [--dry-run]"
		cmd.Short = "Update the flake inputs (nix flake update), then apply"
		cmd.Long = `Update the NixOS tree's flake inputs (nixpkgs, disko, sops-nix) with ` + "`nix flake update`" + `, which
rewrites nixos/flake.lock, then roll the result out exactly as ` + "`kubectl nerv node apply`" + ` does.
It needs nix with flakes on this machine and network access to the inputs' sources; without
them it stops before touching any node and says so. Commit the new flake.lock.

` + nodeExitCodes
		cmd.Example = `  kubectl nerv node upgrade --all
  kubectl nerv node upgrade --all --dry-run`
	}
	o.addFlags(cmd, true)
	cmd.Flags().BoolVar(&o.All, "all", false, "every node in the spec")
	cmd.Flags().IntVar(&o.MaxUnavailable, "max-unavailable", 1, "agents taken out at once (servers are always one at a time)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan and each node's state; change nothing")
	cmd.Flags().DurationVar(&o.DrainTimeout, "drain-timeout", drain.DefaultTimeout, "give up draining a node after this long")
	cmd.Flags().DurationVar(&o.ReadyTimeout, "ready-timeout", rollout.DefaultReadyTimeout, "give up waiting for a node to come back after this long")
	cmd.Flags().BoolVar(&o.Force, "force", false, "also evict pods that no controller manages (they are deleted for good)")
	return cmd
}

// Complete validates flags and the spec and builds the plan.
func (o *NodeApplyOptions) Complete() error {
	if o.All == (len(o.Nodes) > 0) {
		return Exitf(ExitUsage, "name the nodes to apply to, or --all (not both)")
	}
	if o.DrainTimeout <= 0 || o.ReadyTimeout <= 0 {
		return Exitf(ExitUsage, "--drain-timeout and --ready-timeout must be positive")
	}
	if err := o.complete(); err != nil {
		return err
	}
	plan, err := rollout.NewPlan(o.cluster, o.Nodes, o.MaxUnavailable)
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	o.plan = plan
	return nil
}

// Run updates inputs (upgrade), renders, and rolls out (or prints the plan).
func (o *NodeApplyOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	_, cs, err := o.clients()
	if err != nil {
		return err
	}
	if o.DryRun {
		return o.dryRun(ctx, cs)
	}
	// Missing tools are found before any node is touched, not at its install step.
	if o.Upgrade {
		if _, err := exec.LookPath("nix"); err != nil {
			return Exitf(ExitUsage, "node upgrade needs nix on this machine to update the flake inputs (nix flake update): install Nix, or run `nix flake update` in %s elsewhere, commit flake.lock and use `kubectl nerv node apply`", o.flakeDir())
		}
	}
	if err := o.lookRebuild(); err != nil {
		return err
	}
	var machine *rollout.NixOS
	if machine, err = o.machine(); err != nil {
		return err
	}
	// Reach the cluster before changing any file, so an unreachable cluster is exit 2 with
	// nothing touched.
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return Exitf(ExitUsage, "reaching the cluster: %v", err)
	}
	if o.Upgrade {
		if err := nodeFlakeUpdate(ctx, o.flakeDir(), o.ErrOut); err != nil {
			return err
		}
	}
	tree, err := platform.RenderSite(o.cluster)
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	changes, err := nixos.Write(filepath.Dir(o.SpecPath), tree, nixos.WriteOptions{})
	if err != nil {
		return Exitf(ExitFailure, "%v", err)
	}
	fmt.Fprintf(o.ErrOut, "%s: created %d, updated %d, deleted %d files\n", filepath.Dir(o.SpecPath),
		changes.Count(nixos.Create), changes.Count(nixos.Update), changes.Count(nixos.Delete))
	for _, w := range o.plan.Warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", w)
	}
	cfg, _ := o.kube.ToRESTConfig()
	var servers []string
	for _, s := range o.cluster.Servers() {
		servers = append(servers, s.Name)
	}
	err = rollout.Run(ctx, o.plan, rollout.Options{
		Clientset:    cs,
		Machine:      machine,
		Sink:         o.sink(),
		Drain:        drain.Options{Timeout: o.DrainTimeout, GracePeriod: drain.KeepGracePeriod, Force: o.Force},
		ReadyTimeout: o.ReadyTimeout,
		Servers:      servers,
		ClusterCheck: nodeDoctorCheck(cfg, o.cluster),
	})
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	return nil
}

// DryRunResult is -o json's form of a dry run.
type DryRunResult struct {
	Plan    *rollout.Plan       `json:"plan"`
	Nodes   []rollout.NodeState `json:"nodes"`
	Changes int                 `json:"filesToChange"`
	Upgrade bool                `json:"updatesFlakeInputs"`
}

func (o *NodeApplyOptions) dryRun(ctx context.Context, cs kubernetes.Interface) error {
	states, err := rollout.Inspect(ctx, cs, o.plan, o.Force)
	if err != nil {
		return Exitf(ExitUsage, "reading the cluster: %v", err)
	}
	tree, err := platform.RenderSite(o.cluster)
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	changes, err := nixos.Write(filepath.Dir(o.SpecPath), tree, nixos.WriteOptions{DryRun: true})
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	pending := changes.Count(nixos.Create) + changes.Count(nixos.Update) + changes.Count(nixos.Delete)
	res := DryRunResult{Plan: o.plan, Nodes: states, Changes: pending, Upgrade: o.Upgrade}
	return o.Output.Print(o.Out, res, func(w io.Writer) error {
		if o.Upgrade {
			fmt.Fprintf(w, "would run `nix flake update` in %s\n", o.flakeDir())
		}
		fmt.Fprintf(w, "would render %s: %d file(s) to create, update or delete\n\nplan:\n", filepath.Dir(o.SpecPath), pending)
		if err := o.plan.Render(w); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nnodes now:")
		if err := rollout.RenderStates(w, states); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w, "\ndry run: nothing was changed")
		return err
	})
}

// nodeDoctorCheck runs the doctor's kubernetes checks; any failing check of error severity fails.
func nodeDoctorCheck(cfg *rest.Config, c *spec.Cluster) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rep, err := doctor.Run(ctx, doctor.Options{Config: cfg, Spec: c, Categories: []string{doctor.CategoryKubernetes}})
		if err != nil {
			return fmt.Errorf("doctor: %w", err)
		}
		if !rep.Failed() {
			return nil
		}
		var lines []string
		for _, f := range rep.Failures() {
			lines = append(lines, fmt.Sprintf("%s: %s", f.ID, f.Message))
		}
		return fmt.Errorf("doctor kubernetes checks fail:\n  %s", strings.Join(lines, "\n  "))
	}
}

// nodeFlakeUpdate runs `nix flake update` in dir. Debian's nix-bin provides nix without flakes
// enabled, so they are enabled on the command line; the update fetches the inputs' sources,
// so it needs network access.
func nodeFlakeUpdate(ctx context.Context, dir string, progress io.Writer) error {
	nix, err := exec.LookPath("nix")
	if err != nil {
		return Exitf(ExitUsage, "node upgrade needs nix on this machine to update the flake inputs (nix flake update): install Nix, or run `nix flake update` in %s elsewhere, commit flake.lock and use `kubectl nerv node apply`", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "flake.nix")); err != nil {
		return Exitf(ExitUsage, "no flake in %s: run `kubectl nerv generate` first", dir)
	}
	cmd := exec.CommandContext(ctx, nix, "--extra-experimental-features", "nix-command flakes", "flake", "update")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	fmt.Fprintf(progress, "updating flake inputs in %s (nix flake update)\n", dir)
	if err := cmd.Run(); err != nil {
		return Exitf(ExitUsage, "nix flake update in %s failed (%v): it needs flakes and network access to the inputs' sources; no node was touched. Output:\n%s", dir, err, nodeLastLines(out.String(), 15))
	}
	return nil
}

func nodeLastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NodeRemoveOptions drives `node remove`.
type NodeRemoveOptions struct {
	NodeOptions
	Node         string
	DrainTimeout time.Duration
	Force        bool
	DryRun       bool
}

func newNodeRemoveCommand(streams genericiooptions.IOStreams, kube *genericclioptions.ConfigFlags) *cobra.Command {
	o := &NodeRemoveOptions{NodeOptions: NodeOptions{IOStreams: streams, kube: kube}}
	cmd := &cobra.Command{
		Use:   "remove NODE [--spec nerv.yaml] [--dry-run]",
		Short: "Drain a node, delete it from the cluster, the spec and the NixOS tree",
		Long: `Remove a node for good: drain it (PodDisruptionBudgets respected), delete its Node object, remove
it from nerv.yaml (comments kept) and delete nixos/hosts/NODE, then re-render the shared files.

Refused, before anything changes: a node not in the spec; the last server; a server whose
removal would leave fewer Ready servers than etcd's quorum of the remaining members
(floor((n-1)/2)+1 of n-1). Allowed with a warning: leaving an even number of servers. Removing
the bootstrap server moves clusterInit to the next server; apply to every node afterwards.

Power the machine off (or reinstall it) afterwards: a k3s still running there registers the
Node again.

` + nodeExitCodes,
		Example: `  kubectl nerv node remove kaji
  kubectl nerv node remove kaji --dry-run`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			o.Node = args[0]
			if o.DrainTimeout <= 0 {
				return Exitf(ExitUsage, "--drain-timeout must be positive")
			}
			if err := o.complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.addFlags(cmd, false)
	cmd.Flags().DurationVar(&o.DrainTimeout, "drain-timeout", drain.DefaultTimeout, "give up draining after this long")
	cmd.Flags().BoolVar(&o.Force, "force", false, "also evict pods that no controller manages")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "say what would be removed; change nothing")
	return cmd
}

// Run checks the removal is safe, then drains, deletes and rewrites the files.
func (o *NodeRemoveOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Refusals that do not depend on the cluster's state (unknown node, last server) come
	// first, so they hold even when the cluster cannot be reached.
	everyServer := map[string]bool{}
	for _, s := range o.cluster.Servers() {
		everyServer[s.Name] = true
	}
	if _, err := rollout.PlanRemove(o.cluster, o.Node, everyServer); err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	_, cs, err := o.clients()
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, s := range o.cluster.Servers() {
		n, err := cs.CoreV1().Nodes().Get(ctx, s.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return Exitf(ExitUsage, "reading node %s: %v", s.Name, err)
		default:
			ready[s.Name] = rollout.Ready(n)
		}
	}
	removal, err := rollout.PlanRemove(o.cluster, o.Node, ready)
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	// Check the resulting spec and tree before touching anything.
	after, err := spec.Parse(nodeMarshal(o.cluster), o.SpecPath)
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	after.Default()
	if err := removal.Apply(after); err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	if _, err := after.Validate(); err != nil {
		return Exitf(ExitUsage, "the spec without %s would be invalid: %v", o.Node, err)
	}
	tree, err := platform.RenderSite(after)
	if err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	for _, w := range removal.Warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", w)
	}
	hostDir := filepath.Join(filepath.Dir(o.SpecPath), filepath.FromSlash(nixos.HostDir(o.Node)))
	if o.DryRun {
		fmt.Fprintf(o.Out, "would drain %s, delete its Node object, remove it from %s and delete %s\ndry run: nothing was changed\n", o.Node, o.SpecPath, hostDir)
		return nil
	}

	sink := o.sink()
	step := func(name string, fn func() (string, error)) error {
		start := time.Now()
		sink.Emit(rollout.Event{Time: start, Node: o.Node, Step: name, Status: rollout.StatusStarted})
		msg, err := fn()
		ev := rollout.Event{Time: time.Now(), Node: o.Node, Step: name, Status: rollout.StatusSucceeded, ElapsedSeconds: time.Since(start).Seconds(), Message: msg}
		if err != nil {
			ev.Status, ev.Message = rollout.StatusFailed, err.Error()
		}
		sink.Emit(ev)
		return err
	}
	_, getErr := cs.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	inCluster := getErr == nil
	if getErr != nil && !apierrors.IsNotFound(getErr) {
		return Exitf(ExitUsage, "reading node %s: %v", o.Node, getErr)
	}
	if inCluster {
		if err := step(rollout.StepDrain, func() (string, error) {
			rep, err := drain.Drain(ctx, cs, o.Node, drain.Options{Timeout: o.DrainTimeout, GracePeriod: drain.KeepGracePeriod, Force: o.Force})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d pod(s) evicted", len(rep.Evicted)), nil
		}); err != nil {
			return Exitf(ExitFailure, "removing %s: %v\nthe node is left cordoned; nothing else was changed (kubectl uncordon %s to undo)", o.Node, err, o.Node)
		}
		if err := step("delete", func() (string, error) {
			err := cs.CoreV1().Nodes().Delete(ctx, o.Node, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				err = nil
			}
			return "Node object deleted", err
		}); err != nil {
			return Exitf(ExitFailure, "removing %s: %v", o.Node, err)
		}
	}
	if err := step("spec", func() (string, error) {
		if err := removal.Apply(o.cluster); err != nil {
			return "", err
		}
		if err := spec.Write(o.SpecPath, o.cluster); err != nil {
			return "", err
		}
		if err := os.RemoveAll(hostDir); err != nil {
			return "", fmt.Errorf("deleting %s: %w", hostDir, err)
		}
		changes, err := nixos.Write(filepath.Dir(o.SpecPath), tree, nixos.WriteOptions{})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("removed from %s, %s deleted, %d generated file(s) updated", o.SpecPath, hostDir, changes.Count(nixos.Update)+changes.Count(nixos.Delete)), nil
	}); err != nil {
		return Exitf(ExitFailure, "removing %s from the files: %v", o.Node, err)
	}
	return nil
}

func nodeMarshal(c *spec.Cluster) []byte {
	b, err := spec.Marshal(c)
	if err != nil {
		panic(err) // a loaded spec always marshals
	}
	return b
}

// NodeRollbackOptions drives `node rollback`.
type NodeRollbackOptions struct {
	NodeOptions
	Node string
}

func newNodeRollbackCommand(streams genericiooptions.IOStreams, kube *genericclioptions.ConfigFlags) *cobra.Command {
	o := &NodeRollbackOptions{NodeOptions: NodeOptions{IOStreams: streams, kube: kube}}
	cmd := &cobra.Command{
		Use:   "rollback NODE [--spec nerv.yaml]",
		Short: "Switch a node back to its previous NixOS generation (nixos-rebuild switch --rollback)",
		Long: `Activate the node's previous NixOS generation over SSH:

  nixos-rebuild switch --rollback --target-host USER@IP --use-remote-sudo

This is what a failed roll-out offers. The node stays cordoned: once it is Ready, uncordon it
(kubectl uncordon NODE). If the failed generation had changed the kernel and the node rebooted
into it, reboot the node after the rollback to boot the previous kernel.

Exit codes: 0 rolled back; 1 nixos-rebuild failed; 2 bad flags, unknown node, invalid spec.`,
		Example: `  kubectl nerv node rollback kaji`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			o.Node = args[0]
			if err := o.complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.addFlags(cmd, true)
	return cmd
}

// Run runs the rollback, streaming its output.
func (o *NodeRollbackOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	n, ok := o.cluster.Node(o.Node)
	if !ok {
		return Exitf(ExitUsage, "node %q is not in the cluster spec %s", o.Node, o.SpecPath)
	}
	if err := o.lookRebuild(); err != nil {
		return err
	}
	m := &rollout.NixOS{FlakeDir: o.flakeDir(), Rebuild: o.NixOSRebuild, User: o.SSHUser, IdentityFile: o.IdentityFile, KnownHostsFile: o.KnownHostsFile, Addresses: o.addresses}
	t := rollout.Target{Name: n.Name, Role: n.Role, IP: n.IP}
	if _, err := m.SSHOptions(t); err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	sink := o.sink()
	start := time.Now()
	sink.Emit(rollout.Event{Time: start, Node: n.Name, Step: "rollback", Status: rollout.StatusStarted})
	err := m.Rollback(ctx, t, func(line string) {
		sink.Emit(rollout.Event{Time: time.Now(), Node: n.Name, Status: rollout.StatusOutput, Message: line})
	})
	ev := rollout.Event{Time: time.Now(), Node: n.Name, Step: "rollback", Status: rollout.StatusSucceeded, ElapsedSeconds: time.Since(start).Seconds(),
		Message: "previous generation active; uncordon once Ready: kubectl uncordon " + n.Name}
	if err != nil {
		ev.Status, ev.Message = rollout.StatusFailed, err.Error()
	}
	sink.Emit(ev)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	return nil
}
