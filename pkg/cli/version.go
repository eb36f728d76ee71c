package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nerv-platform/nerv/internal/version"
)

// VersionOptions drives `kubectl nerv version`.
type VersionOptions struct {
	Output OutputFlags
	genericiooptions.IOStreams
}

func newVersionCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl-nerv",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	o.Output.AddFlags(cmd)
	return cmd
}

// Run prints the build identity.
func (o *VersionOptions) Run() error {
	info := version.Get()
	return o.Output.Print(o.Out, info, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "kubectl-nerv %s\n", info)
		return err
	})
}
