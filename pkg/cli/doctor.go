package cli

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"

	"github.com/nerv-platform/nerv/pkg/doctor"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// DefaultDoctorTimeout bounds a whole doctor run unless --timeout says otherwise.
const DefaultDoctorTimeout = 2 * time.Minute

// DoctorOptions drives `kubectl nerv doctor`.
type DoctorOptions struct {
	SpecPath   string
	Categories []string
	Wait       time.Duration
	Timeout    time.Duration
	Output     OutputFlags

	kube   *genericclioptions.ConfigFlags
	config *rest.Config
	spec   *spec.Cluster
	genericiooptions.IOStreams
}

func newDoctorCommand(streams genericiooptions.IOStreams, kube *genericclioptions.ConfigFlags) *cobra.Command {
	o := &DoctorOptions{IOStreams: streams, kube: kube}
	cmd := &cobra.Command{
		Use:   "doctor [--spec nerv.yaml] [--category NAME...] [--wait DURATION]",
		Short: "Check the cluster and every platform service, with hints",
		Long: `Check that the cluster and the NERV platform services are healthy, and say why not.
Categories, in order: kubernetes, metallb, argocd, traefik, cert-manager, longhorn,
nerv-webhook, policy. Each check passes, fails (error), warns (warning) or is skipped with
its reason (a component not installed, an object you may not read, a check that needs
--spec). Failures come with a hint and a link to docs/doctor.md#<check-id>.

With --spec, the cluster is compared with nerv.yaml: nodes and their IPs, the MetalLB pool,
the fixed service IPs and the SOPS recipients.

Exit codes: 0 every check passed (warnings and skips allowed); 1 an error-severity check
failed; 2 doctor could not run (bad flags, unreadable spec, apiserver unreachable within
--timeout).`,
		Example: `  kubectl nerv doctor
  kubectl nerv doctor --spec nerv.yaml --category kubernetes --category metallb
  kubectl nerv doctor --wait 5m -o json     # after an install: wait for the platform to settle`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.SpecPath, "spec", "", "cluster spec (nerv.yaml) to compare the cluster with")
	cmd.Flags().StringSliceVar(&o.Categories, "category", nil, "run only these categories (repeatable or comma-separated)")
	cmd.Flags().DurationVar(&o.Wait, "wait", 0, "retry failing checks until they pass or this long has passed")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", DefaultDoctorTimeout, "bound the whole run, --wait included")
	_ = cmd.RegisterFlagCompletionFunc("category", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return doctor.Categories, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("spec", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	})
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete loads the kubeconfig and the spec.
func (o *DoctorOptions) Complete() error {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return Exitf(ExitUsage, "loading the kubeconfig: %v", err)
	}
	o.config = cfg
	if o.SpecPath != "" {
		c, _, err := spec.LoadValid(o.SpecPath)
		if err != nil {
			return Exitf(ExitUsage, "%v", err)
		}
		o.spec = c
	}
	return nil
}

// Validate checks the flags.
func (o *DoctorOptions) Validate() error {
	if err := doctor.ValidateCategories(o.Categories); err != nil {
		return Exitf(ExitUsage, "--category: %v", err)
	}
	if o.Wait < 0 {
		return Exitf(ExitUsage, "--wait %s: must not be negative", o.Wait)
	}
	if o.Timeout <= 0 {
		return Exitf(ExitUsage, "--timeout %s: must be positive", o.Timeout)
	}
	return o.Output.Validate()
}

// Run checks the cluster and prints the report.
func (o *DoctorOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	rep, err := doctor.Run(ctx, doctor.Options{
		Config:     o.config,
		Spec:       o.spec,
		Categories: o.Categories,
		Wait:       o.Wait,
		Progress:   o.ErrOut,
	})
	var unreachable *doctor.UnreachableError
	switch {
	case errors.As(err, &unreachable):
		return &ExitError{Code: ExitUsage, Err: err}
	case err != nil:
		return Exitf(ExitUsage, "%v", err)
	}
	if err := o.Output.Print(o.Out, rep, func(w io.Writer) error { return doctor.RenderTable(w, rep, UseColor(o.Out)) }); err != nil {
		return err
	}
	if rep.Failed() {
		return &ExitError{Code: ExitFailure, Silent: true}
	}
	return nil
}
