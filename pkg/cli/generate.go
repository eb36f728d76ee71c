package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/platform"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// GenerateOptions drives `kubectl nerv generate`.
type GenerateOptions struct {
	SpecPath string
	// OutDir receives nixos/; default: the spec's directory.
	OutDir string
	DryRun bool
	Force  bool
	Output OutputFlags

	cluster *spec.Cluster
	genericiooptions.IOStreams
}

// GenerateResult is the -o json|yaml form of generate's outcome.
type GenerateResult struct {
	Spec     string        `json:"spec"`
	Out      string        `json:"out"`
	DryRun   bool          `json:"dryRun"`
	Warnings []string      `json:"warnings,omitempty"`
	Changes  nixos.Changes `json:"changes"`
}

func newGenerateCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &GenerateOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "generate [--spec nerv.yaml] [--out DIR] [--dry-run] [--force]",
		Short: "Render the NixOS tree (nixos/) and the GitOps manifests from the cluster spec",
		Long: `Render a site from its cluster spec: the NixOS layer (nixos/flake.nix, the shared modules,
one directory per node under nixos/hosts/, nixos/secrets/.sops.yaml) and the GitOps side ArgoCD
syncs (the app-of-apps under spec.gitops.path and the NetworkPolicies under manifests/policies).
Everything is written into --out (default: the directory holding the spec), each file
atomically, and a unified diff of every change is printed. Hosts that left the spec lose their
generated files.

A hardware-configuration.nix captured from a real machine (by kubectl nerv join) is never
overwritten or deleted without --force; files NERV does not generate (secrets/secrets.yaml,
local.nix, hosts/<node>/local.nix, flake.lock) are never touched.

Exit codes: 0 the tree is up to date or was written; 1 with --dry-run, the tree is out of date
(the diff shows how), or a file could not be written; 2 the spec is unreadable or invalid, or
bad flags (the error names the file and field).`,
		Example: `  kubectl nerv generate                          # ./nerv.yaml → ./nixos/, ./manifests/
  kubectl nerv generate --spec site/nerv.yaml --dry-run
  kubectl nerv generate --spec examples/nerv.yaml --out .   # this repository's nixos/ and manifests/`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVar(&o.SpecPath, "spec", "nerv.yaml", "cluster spec file")
	cmd.Flags().StringVar(&o.OutDir, "out", "", "directory that receives nixos/ and manifests/ (default: the spec's directory)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what would change and write nothing")
	cmd.Flags().BoolVar(&o.Force, "force", false, "also replace hardware-configuration.nix files captured from machines")
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete defaults the output directory to the spec's.
func (o *GenerateOptions) Complete() error {
	if o.OutDir == "" {
		o.OutDir = filepath.Dir(o.SpecPath)
	}
	return nil
}

// loadSpec loads and validates the spec at path, printing its warnings to errOut; an invalid
// spec is a usage error (exit 2).
func loadSpec(path string, errOut io.Writer) (*spec.Cluster, error) {
	c, warnings, err := spec.LoadValid(path)
	for _, w := range warnings {
		fmt.Fprintf(errOut, "warning: %s: %s\n", path, w)
	}
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return c, nil
}

// Validate checks the flags, then loads and validates the spec.
func (o *GenerateOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	c, err := loadSpec(o.SpecPath, o.ErrOut)
	if err != nil {
		return err
	}
	o.cluster = c
	return nil
}

// Run renders, writes (unless a dry run) and reports.
func (o *GenerateOptions) Run() error {
	tree, err := platform.RenderSite(o.cluster)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	changes, werr := nixos.Write(o.OutDir, tree, nixos.WriteOptions{DryRun: o.DryRun, Force: o.Force})
	res := GenerateResult{Spec: o.SpecPath, Out: o.OutDir, DryRun: o.DryRun, Changes: changes}
	if err := o.Output.Print(o.Out, res, func(w io.Writer) error { return printChanges(w, res) }); err != nil {
		return err
	}
	if werr != nil {
		return &ExitError{Code: ExitFailure, Err: werr}
	}
	if o.DryRun && changes.Pending() {
		return &ExitError{Code: ExitFailure, Err: errors.New("the generated files are out of date"), Silent: true}
	}
	return nil
}

// printChanges writes every diff, the kept files, then one summary line.
func printChanges(w io.Writer, res GenerateResult) error {
	var b strings.Builder
	for _, c := range res.Changes {
		if c.Diff != "" {
			b.WriteString(c.Diff)
		}
	}
	for _, c := range res.Changes {
		if c.Action == nixos.Skip {
			fmt.Fprintf(&b, "kept %s: %s\n", filepath.Join(res.Out, filepath.FromSlash(c.Path)), c.Reason)
		}
	}
	dir := res.Out
	cs := res.Changes
	switch {
	case !cs.Pending():
		fmt.Fprintf(&b, "%s is up to date (%d generated files, no change)\n", dir, cs.Count(nixos.Unchanged))
	case res.DryRun:
		fmt.Fprintf(&b, "%s: would create %d, update %d, delete %d files (dry run, nothing written)\n",
			dir, cs.Count(nixos.Create), cs.Count(nixos.Update), cs.Count(nixos.Delete))
	default:
		fmt.Fprintf(&b, "%s: created %d, updated %d, deleted %d files\n",
			dir, cs.Count(nixos.Create), cs.Count(nixos.Update), cs.Count(nixos.Delete))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// usageArgs makes a cobra argument check's error exit with ExitUsage.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return Exitf(ExitUsage, "%v\nSee '%s --help'.", err, cmd.CommandPath())
		}
		return nil
	}
}
