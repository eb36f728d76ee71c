// Package cli builds the cobra commands of kubectl-nerv. Each command follows the
// kubectl plugin pattern: flags fill an Options struct, which is Completed, Validated and Run;
// the real work lives in the package named for it (pkg/nixos, pkg/doctor, ...), and rendering
// is separate from doing.
package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewRootCommand returns `kubectl nerv` with every subcommand attached. The streams are
// injected so that tests drive the real command tree without touching the process' stdio.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	kube := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-nerv",
		Short: "Declarative, self-checking k3s on NixOS",
		Long: `kubectl nerv turns one cluster spec (nerv.yaml) into a NixOS + k3s platform and keeps it honest.

  init / generate    render the NixOS layer (flake, modules, hosts) from nerv.yaml
  validate           check manifests offline against the admission policies nerv-webhook enforces
  doctor             check the cluster and every platform service, with hints
  join               add a node: host config, nixos-anywhere over SSH, k3s, Ready
  node               roll NixOS changes across running nodes safely (apply, upgrade, remove, rollback)`,
		Annotations: map[string]string{
			// Shown as "kubectl nerv ..." in help and completion, as kubectl plugins should.
			cobra.CommandDisplayNameAnnotation: "kubectl nerv",
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Exitf(ExitUsage, "%v\nSee '%s --help'.", err, c.CommandPath())
	})
	kube.AddFlags(root.PersistentFlags())

	root.AddCommand(
		newVersionCommand(streams),
		newInitCommand(streams),
		newGenerateCommand(streams),
		newValidateCommand(streams),
		newDoctorCommand(streams, kube),
		newNodeCommand(streams, kube),
		newJoinCommand(streams, kube),
	)
	return root
}
