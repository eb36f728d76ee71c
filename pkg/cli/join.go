package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nerv-platform/nerv/pkg/join"
)

// ExitInterrupted is join's exit code after Ctrl-C (128+SIGINT, as shells report it).
const ExitInterrupted = 130

// JoinOptions drives `kubectl nerv join`.
type JoinOptions struct {
	Options join.Options
	Yes     bool
	Output  OutputFlags

	kube *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
	// isTerminal reports whether In is an interactive terminal (tests replace it).
	isTerminal func() bool
}

func newJoinCommand(streams genericiooptions.IOStreams, kube *genericclioptions.ConfigFlags) *cobra.Command {
	o := &JoinOptions{IOStreams: streams, kube: kube}
	cmd := &cobra.Command{
		Use:   "join NODE --ip IP [--role server|agent] [--disk /dev/...] [flags]",
		Short: "Add a node: host config, nixos-anywhere over SSH, k3s, Ready",
		Long: `Add a machine to the cluster in one command, from a bare machine (booted into a NixOS
installer or any Linux reachable as root over SSH) to a Ready, labelled Kubernetes node.

Steps, each reported with its outcome and time:
  preflight   the spec stays valid with the node; the cluster is reachable and NODE is not a
              Node yet (the first server of a new cluster becomes its clusterInit server);
              SSH reaches the machine with its host key verified against known_hosts; it has
              x86_64/aarch64, at least 1.5 GiB of memory and the disk
  plan        add the node to nerv.yaml, render its NixOS files, capture its
              hardware-configuration.nix; print the plan (--dry-run stops here)
  install     run nixos-anywhere with the age key and a fresh SSH host key staged in a 0700
              temp dir, removed afterwards whatever happens (Ctrl-C included)
  kubeconfig  first server only: fetch k3s' kubeconfig and merge it as context <cluster name>
  wait        watch the Node until Ready (--timeout)
  label       apply the role labels
  summary     what changed and what to do next

Re-running after a failure resumes: steps whose result is in place are reported "done" and
skipped. --from-step restarts at a named step.

--dry-run contacts nothing (no SSH, no cluster) unless --check-remote is given, and writes
nothing.

Exit codes: 0 joined (or, with --dry-run, the plan was printed); 1 a step failed (install,
wait, label, kubeconfig); 2 bad flags or input, an invalid spec, an unreachable or unverified
machine, an unreachable cluster (nothing was changed); 130 interrupted.`,
		Example: `  kubectl nerv join ritsuko --ip 192.168.1.101 --role agent --dry-run
  kubectl nerv join ritsuko --ip 192.168.1.101 --disk /dev/nvme0n1 -i ~/.ssh/id_ed25519 --yes
  kubectl nerv join misato --ip 192.168.1.100 --role server --accept-host-key SHA256:...
  kubectl nerv join ritsuko --ip 192.168.1.101 --from-step wait`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Options.IP, "ip", "", "the node's static IPv4 address (required)")
	f.StringVar(&o.Options.Role, "role", "agent", "server or agent")
	f.StringVar(&o.Options.Disk, "disk", "/dev/sda", "the disk disko partitions and WIPES")
	f.StringVar(&o.Options.SpecPath, "spec", "nerv.yaml", "cluster spec file")
	f.StringVar(&o.Options.OutDir, "out", "", "directory holding nixos/ (default: the spec's directory)")
	f.StringVar(&o.Options.SSHUser, "ssh-user", "root", "user on the installer (nixos-anywhere needs root or password-less sudo)")
	f.StringVar(&o.Options.SSHAddress, "ssh-address", "", "where SSH is reached, HOST[:PORT] (default: IP:22)")
	f.StringVarP(&o.Options.IdentityFile, "identity", "i", "", "SSH private key (default: ssh-agent, then ~/.ssh/id_*)")
	f.StringVar(&o.Options.KnownHostsFile, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	f.StringVar(&o.Options.AcceptHostKey, "accept-host-key", "", "accept an unknown host key with this fingerprint (SHA256:...), verified on the machine's console")
	f.StringVar(&o.Options.AgeKeyFile, "age-key", "", "age identity file sops-nix decrypts with on the node (default $SOPS_AGE_KEY_FILE or ~/.config/sops/age/keys.txt)")
	f.StringVar(&o.Options.AdminUser, "admin-user", "", "user for SSH to the installed system (default: the spec's spec.admin.user)")
	f.BoolVar(&o.Options.DryRun, "dry-run", false, "print the plan; write nothing and contact nothing (see --check-remote)")
	f.BoolVar(&o.Options.CheckRemote, "check-remote", false, "with --dry-run, also check SSH and the cluster (read-only)")
	f.DurationVar(&o.Options.Timeout, "timeout", 30*time.Minute, "how long to wait for the node (kubeconfig, Ready)")
	f.DurationVar(&o.Options.ConnectTimeout, "connect-timeout", 10*time.Second, "SSH connect timeout")
	f.BoolVar(&o.Yes, "yes", false, "do not ask before wiping the disk")
	f.StringVar(&o.Options.FromStep, "from-step", "", "restart at this step: "+strings.Join(join.StepNames, ", "))
	_ = cmd.RegisterFlagCompletionFunc("role", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"server", "agent"}, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("from-step", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return join.StepNames, cobra.ShellCompDirectiveNoFileComp
	})
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete fills defaults from the environment.
func (o *JoinOptions) Complete(args []string) error {
	o.Options.Node = args[0]
	if o.Options.AgeKeyFile == "" {
		if env := os.Getenv("SOPS_AGE_KEY_FILE"); env != "" {
			o.Options.AgeKeyFile = env
		} else if home, err := os.UserHomeDir(); err == nil {
			o.Options.AgeKeyFile = filepath.Join(home, ".config", "sops", "age", "keys.txt")
		}
	}
	if o.Options.KnownHostsFile == "" {
		if home, err := os.UserHomeDir(); err == nil {
			o.Options.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	o.Options.Kubeconfig = kubeconfigPath(o.kube)
	o.Options.Kube = o.kubeClient
	if o.isTerminal == nil {
		o.isTerminal = func() bool { return isTerminal(o.In) }
	}
	if o.isTerminal() {
		o.Options.ConfirmHostKey = o.askHostKey
	}
	if !o.Yes && !o.Options.DryRun {
		o.Options.ConfirmInstall = o.askInstall
	}
	return nil
}

// Validate checks the flags that need no file or network.
func (o *JoinOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Options.IP == "" {
		return Exitf(ExitUsage, "--ip is required: the node's static address in spec.network.subnet")
	}
	if o.Options.Role != "server" && o.Options.Role != "agent" {
		return Exitf(ExitUsage, "--role %q: use server or agent", o.Options.Role)
	}
	if o.Options.AcceptHostKey != "" && !strings.HasPrefix(o.Options.AcceptHostKey, "SHA256:") {
		return Exitf(ExitUsage, "--accept-host-key %q: give the SHA256:... fingerprint ssh-keygen -lf prints", o.Options.AcceptHostKey)
	}
	return nil
}

// Run joins the node; Ctrl-C (SIGINT) and SIGTERM cancel it cleanly.
func (o *JoinOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Options.Out = o.Out
	if o.Output.Format != OutputTable {
		// The result document owns stdout; progress goes to stderr.
		o.Options.Out = o.ErrOut
	}
	res, err := join.Run(ctx, o.Options)
	if res != nil && o.Output.Format != OutputTable {
		if perr := o.Output.Print(o.Out, res, nil); perr != nil {
			return perr
		}
	}
	if err == nil {
		if o.Options.DryRun && o.Output.Format == OutputTable {
			fmt.Fprintln(o.Out, "Dry run: nothing written, nothing installed.")
		}
		return nil
	}
	if ctx.Err() != nil {
		return &ExitError{Code: ExitInterrupted, Err: err}
	}
	var se *join.StepError
	if errors.As(err, &se) && se.Usage {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return &ExitError{Code: ExitFailure, Err: err}
}

// kubeClient builds a client for the current context, or for a named context of the
// kubeconfig file (the new cluster's, once merged).
func (o *JoinOptions) kubeClient(kubeContext string) (kubernetes.Interface, error) {
	if kubeContext == "" {
		cfg, err := o.kube.ToRESTConfig()
		if err != nil {
			return nil, err
		}
		return kubernetes.NewForConfig(cfg)
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: o.Options.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext},
	).ClientConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// kubeconfigPath is the file a new cluster's context is merged into: --kubeconfig, else the
// first file of $KUBECONFIG, else ~/.kube/config.
func kubeconfigPath(kube *genericclioptions.ConfigFlags) string {
	if kube != nil && kube.KubeConfig != nil && *kube.KubeConfig != "" {
		return *kube.KubeConfig
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if p != "" {
				return p
			}
		}
	}
	return clientcmd.RecommendedHomeFile
}

func (o *JoinOptions) askHostKey(addr, keyType, fingerprint string) (bool, error) {
	fmt.Fprintf(o.ErrOut, "The authenticity of host %s can't be established.\n%s key fingerprint is %s.\n"+
		"Compare it with the machine's console (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub).\nAccept and record it in %s? [y/N] ",
		addr, keyType, fingerprint, o.Options.KnownHostsFile)
	return readYes(o.In)
}

func (o *JoinOptions) askInstall(p *join.Plan, node, disk string) (bool, error) {
	if !o.isTerminal() {
		return false, fmt.Errorf("nixos-anywhere will WIPE %s on %s: pass --yes to confirm when not running on a terminal", disk, node)
	}
	fmt.Fprintf(o.ErrOut, "nixos-anywhere will WIPE %s on %s and install NixOS. Continue? [y/N] ", disk, node)
	return readYes(o.In)
}

func readYes(in io.Reader) (bool, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("reading the answer: %w", err)
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
