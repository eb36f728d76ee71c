// Package join adds a machine to a NERV cluster: it checks that the machine and the spec can
// take it, adds it to nerv.yaml and renders its NixOS host files, captures its hardware
// configuration, installs NixOS with nixos-anywhere, waits for the Kubernetes Node to turn
// Ready, labels it, and (for the first server) merges the new cluster's kubeconfig.
//
// The work is a list of named steps (preflight, plan, install, kubeconfig, wait, label,
// summary), each reporting its outcome and elapsed time. Every step can tell whether its
// result is already in place, so re-running a join that failed half-way resumes where it
// stopped; Options.FromStep restarts at a named step.
package join

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nerv-platform/nerv/pkg/spec"
	"github.com/nerv-platform/nerv/pkg/sshclient"
)

// DefaultKubeconfigPath is where k3s writes the admin kubeconfig on a server.
const DefaultKubeconfigPath = "/etc/rancher/k3s/k3s.yaml"

// Options is everything a join needs. The CLI fills it from flags.
type Options struct {
	// Node is the new machine's name (hostname and flake attribute).
	Node string
	// IP is its static address in the spec.
	IP string
	// Role is server or agent (default agent).
	Role string
	// Disk is the block device disko wipes (default /dev/sda).
	Disk string
	// SpecPath is nerv.yaml.
	SpecPath string
	// OutDir holds the rendered tree (nixos/); default: SpecPath's directory.
	OutDir string

	// SSHAddress is where SSH is reached ("host:port"); default IP:22. Tests point it at a
	// loopback sshd while the spec keeps the node's real address.
	SSHAddress string
	// SSHUser logs in to the installer (default root).
	SSHUser string
	// IdentityFile is the SSH private key (ssh -i); empty uses ssh-agent.
	IdentityFile string
	// KnownHostsFile verifies host keys; default ~/.ssh/known_hosts.
	KnownHostsFile string
	// AcceptHostKey accepts an unknown host key with this SHA256 fingerprint.
	AcceptHostKey string
	// ConfirmHostKey asks about an unknown host key (interactive use).
	ConfirmHostKey func(addr, keyType, fingerprint string) (bool, error)
	// ConnectTimeout bounds each SSH connection attempt.
	ConnectTimeout time.Duration
	// AdminUser logs in to the installed system (root login is off there); default the
	// spec's admin user.
	AdminUser string

	// AgeKeyFile holds the age identity sops-nix decrypts with on the node.
	AgeKeyFile string
	// NixosAnywhere is the installer program (default "nixos-anywhere" on PATH).
	NixosAnywhere string
	// RemoteKubeconfig is k3s' kubeconfig on the first server (default DefaultKubeconfigPath).
	RemoteKubeconfig string
	// Kubeconfig is the local kubeconfig file the first server's context is merged into.
	Kubeconfig string

	// Kube returns a client for the cluster the node joins. kubeContext is "" for the
	// current context, or the cluster's name once the first server's kubeconfig is merged.
	Kube func(kubeContext string) (kubernetes.Interface, error)

	// ConfirmInstall, if set, is asked before nixos-anywhere wipes the disk; false stops the
	// join (the plan stays written, so a re-run resumes at install).
	ConfirmInstall func(p *Plan, node, disk string) (bool, error)

	// DryRun stops after the plan and writes nothing. Without CheckRemote it also contacts
	// nothing: no SSH, no cluster.
	DryRun bool
	// CheckRemote makes a dry run also run the SSH and cluster checks (read-only).
	CheckRemote bool
	// Timeout bounds the wait for the Node to turn Ready (default 30m).
	Timeout time.Duration
	// FromStep restarts at this step, skipping (not checking) the earlier ones.
	FromStep string
	// Progress is the interval of the wait step's progress line (default 5s).
	Progress time.Duration

	// Out receives the step reports, the plan and streamed installer output.
	Out io.Writer
}

// Result is the outcome of a join.
type Result struct {
	Node    string       `json:"node"`
	IP      string       `json:"ip"`
	Role    string       `json:"role"`
	DryRun  bool         `json:"dryRun"`
	Steps   []StepResult `json:"steps"`
	Plan    *Plan        `json:"plan,omitempty"`
	Context string       `json:"kubeContext,omitempty"`
}

// Run joins the node. The returned error is a *StepError naming the failed step.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, &StepError{Step: StepPreflight, Usage: true, Err: err}
	}
	j := &joiner{o: o}
	defer j.close()
	steps := []step{
		{name: StepPreflight, run: j.preflight},
		{name: StepPlan, done: j.planDone, run: j.plan},
		{name: StepInstall, done: j.installDone, run: j.install},
		{name: StepKubeconfig, done: j.kubeconfigDone, run: j.kubeconfig},
		{name: StepWait, done: j.waitDone, run: j.wait},
		{name: StepLabel, done: j.labelDone, run: j.label},
		{name: StepSummary, run: j.summary},
	}
	if o.DryRun {
		steps = steps[:2]
	}
	res := &Result{Node: o.Node, IP: o.IP, Role: o.Role, DryRun: o.DryRun}
	// Every step needs the spec with the node in it, so it is checked even with --from-step.
	start := time.Now()
	if err := j.checkSpec(); err != nil {
		r := StepResult{Name: StepPreflight, Outcome: Failed, Detail: err.Error(), Elapsed: time.Since(start)}
		report(o.Out, r)
		res.Steps = []StepResult{r}
		return res, &StepError{Step: StepPreflight, Usage: true, Err: err}
	}
	if !j.inSpec && stepIndex(o.FromStep) > stepIndex(StepPlan) {
		err := usagef("--from-step %s: %s is not in %s yet; start at the plan step (or leave out --from-step)", o.FromStep, o.Node, o.SpecPath)
		return res, &StepError{Step: StepPreflight, Usage: true, Err: err}
	}
	var err error
	res.Steps, err = runSteps(ctx, o.Out, steps, o.FromStep)
	res.Plan = j.planned
	res.Context = j.kubeContext
	return res, err
}

func (o *Options) defaults() error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Role == "" {
		o.Role = spec.RoleAgent
	}
	if o.Disk == "" {
		o.Disk = "/dev/sda"
	}
	if o.SpecPath == "" {
		o.SpecPath = "nerv.yaml"
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Dir(o.SpecPath)
	}
	abs, err := filepath.Abs(o.OutDir)
	if err != nil {
		return err
	}
	o.OutDir = abs
	if o.SSHUser == "" {
		o.SSHUser = "root"
	}
	if o.SSHAddress == "" {
		o.SSHAddress = net.JoinHostPort(o.IP, "22")
	} else if _, _, err := net.SplitHostPort(o.SSHAddress); err != nil {
		o.SSHAddress = net.JoinHostPort(o.SSHAddress, "22")
	}
	if _, port, err := sshclient.SplitTarget(o.SSHAddress); err != nil || port == 0 {
		return fmt.Errorf("--ssh-address %q: %v", o.SSHAddress, err)
	}
	if o.NixosAnywhere == "" {
		o.NixosAnywhere = "nixos-anywhere"
	}
	if o.RemoteKubeconfig == "" {
		o.RemoteKubeconfig = DefaultKubeconfigPath
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Progress <= 0 {
		o.Progress = 5 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = sshclient.DefaultConnectTimeout
	}
	if o.FromStep != "" {
		ok := false
		for _, n := range StepNames {
			ok = ok || n == o.FromStep
		}
		if !ok {
			return fmt.Errorf("--from-step %q: not a step; use one of %v", o.FromStep, StepNames)
		}
	}
	return nil
}

// joiner carries state between steps.
type joiner struct {
	o Options

	raw     *spec.Cluster // the file as written (no defaults), for writing back
	cluster *spec.Cluster // defaulted, with the node added
	node    *spec.Node
	// first: this node is the cluster's first server (no cluster exists before it).
	first bool
	// inSpec: the node was already in the spec with the same address (a resumed join).
	inSpec bool

	ssh         *sshclient.Client
	planned     *Plan
	kube        kubernetes.Interface
	kubeContext string
	// nodeHostKey is the installed system's SSH host public key, when this join staged it.
	nodeHostKey string
}

func (j *joiner) close() {
	if j.ssh != nil {
		j.ssh.Close()
	}
}

// sshPort is the port of the SSH address.
func (j *joiner) sshHostPort() (string, int) {
	h, p, _ := sshclient.SplitTarget(j.o.SSHAddress)
	return h, p
}

// dial connects to the installer as SSHUser (cached).
func (j *joiner) dial(ctx context.Context) (*sshclient.Client, error) {
	if j.ssh != nil {
		return j.ssh, nil
	}
	c, err := sshclient.Dial(ctx, sshclient.Config{
		Addr:           j.o.SSHAddress,
		User:           j.o.SSHUser,
		IdentityFile:   j.o.IdentityFile,
		KnownHostsFile: j.o.KnownHostsFile,
		AcceptHostKey:  j.o.AcceptHostKey,
		ConfirmHostKey: j.o.ConfirmHostKey,
		ConnectTimeout: j.o.ConnectTimeout,
	})
	if err != nil {
		var unknown *sshclient.UnknownHostKeyError
		if errors.As(err, &unknown) && unknown.Offered == "" {
			return nil, usagef("%w; if it matches, re-run with --accept-host-key %s", err, unknown.Fingerprint)
		}
		return nil, usage(err)
	}
	j.ssh = c
	return c, nil
}

// client returns the cluster client (for the current context, or the merged one).
func (j *joiner) client() (kubernetes.Interface, error) {
	if j.kube != nil {
		return j.kube, nil
	}
	if j.o.Kube == nil {
		return nil, errors.New("no Kubernetes client configured")
	}
	k, err := j.o.Kube(j.kubeContext)
	if err != nil {
		return nil, err
	}
	j.kube = k
	return k, nil
}

// stepIndex is the position of a step in StepNames (-1 for "").
func stepIndex(name string) int {
	for i, n := range StepNames {
		if n == name {
			return i
		}
	}
	return -1
}
