package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/platform"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// InitOptions drives `kubectl nerv init`.
type InitOptions struct {
	Dir   string
	Force bool
	// Name, SSHKeyFiles and AgeRecipients replace the example's placeholders when given.
	Name          string
	SSHKeyFiles   []string
	AgeRecipients []string

	cluster *spec.Cluster
	genericiooptions.IOStreams
}

func newInitCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &InitOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "init DIR [--force] [--ssh-key FILE.pub] [--age-recipient age1...] [--name NAME]",
		Short: "Start a site: an example nerv.yaml and its rendered NixOS tree",
		Long: `Write DIR/nerv.yaml, the example site (one server, misato, at 192.168.1.100 on 192.168.1.0/24,
LoadBalancer pool 192.168.1.110-192.168.1.115 with ArgoCD at .110, Longhorn at .111 and Traefik at
.112), and render from it DIR/nixos/ and the GitOps manifests (DIR/manifests/); see
kubectl nerv generate --help. Edit nerv.yaml, then run kubectl nerv generate.

--ssh-key and --age-recipient put your own keys in place of the example's (which nobody should
deploy with). DIR must be empty or absent unless --force, which replaces nerv.yaml and the
generated files but still keeps hardware-configuration.nix files captured from machines.

Exit codes: 0 written; 1 a file could not be written; 2 DIR is not empty (without --force), or
bad flags or keys.`,
		Example: `  kubectl nerv init ./site --ssh-key ~/.ssh/id_ed25519.pub --age-recipient "$(age-keygen -y key.txt)"
  kubectl nerv generate --spec ./site/nerv.yaml --dry-run`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "write into a non-empty DIR, replacing nerv.yaml and generated files")
	cmd.Flags().StringVar(&o.Name, "name", "", "cluster name (default: the example's, nerv)")
	cmd.Flags().StringArrayVar(&o.SSHKeyFiles, "ssh-key", nil, "OpenSSH public key file of the admin user; repeatable")
	cmd.Flags().StringArrayVar(&o.AgeRecipients, "age-recipient", nil, "age public key (age1...) that can decrypt the site's secrets; repeatable")
	return cmd
}

// Complete builds the spec: the example with the flags' values in place.
func (o *InitOptions) Complete(args []string) error {
	o.Dir = args[0]
	c, err := spec.Parse(spec.Example(), "nerv.yaml")
	if err != nil {
		return fmt.Errorf("the built-in example: %w", err)
	}
	if o.Name != "" {
		c.Metadata.Name = o.Name
	}
	if len(o.SSHKeyFiles) > 0 {
		c.Spec.Admin.SSHKeys = nil
		for _, f := range o.SSHKeyFiles {
			data, err := os.ReadFile(f)
			if err != nil {
				return Exitf(ExitUsage, "--ssh-key: %v", err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					c.Spec.Admin.SSHKeys = append(c.Spec.Admin.SSHKeys, line)
				}
			}
		}
	}
	if len(o.AgeRecipients) > 0 {
		c.Spec.SOPS.AgeRecipients = o.AgeRecipients
	}
	c.Default()
	o.cluster = c
	return nil
}

// Validate refuses a non-empty DIR without --force and a spec the flags made invalid.
func (o *InitOptions) Validate() error {
	entries, err := os.ReadDir(o.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Exitf(ExitUsage, "%v", err)
	case len(entries) > 0 && !o.Force:
		return Exitf(ExitUsage, "%s is not empty (%d entries): choose an empty directory, or pass --force to write nerv.yaml, nixos/ and manifests/ into it", o.Dir, len(entries))
	}
	if _, err := o.cluster.Validate(); err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			// The flags, not a file, supplied these values: say so.
			ve.Source = "the values given to init"
			for i, fe := range ve.Errors {
				switch {
				case strings.HasPrefix(fe.Field, "spec.admin.sshKeys"):
					ve.Errors[i].Field += " (--ssh-key)"
				case strings.HasPrefix(fe.Field, "spec.sops.ageRecipients"):
					ve.Errors[i].Field += " (--age-recipient)"
				case fe.Field == "metadata.name":
					ve.Errors[i].Field += " (--name)"
				}
			}
		}
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return nil
}

// Run writes nerv.yaml, then the tree.
func (o *InitOptions) Run() error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	specPath := filepath.Join(o.Dir, "nerv.yaml")
	// The example's text first, so that Write keeps its comments when the flags changed values.
	if err := os.WriteFile(specPath+".init", spec.Example(), 0o644); err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	if err := os.Rename(specPath+".init", specPath); err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	if err := spec.Write(specPath, o.cluster); err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	tree, err := platform.RenderSite(o.cluster)
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	changes, err := nixos.Write(o.Dir, tree, nixos.WriteOptions{})
	if err != nil {
		return &ExitError{Code: ExitFailure, Err: err}
	}
	fmt.Fprintf(o.Out, "wrote %s, the NixOS tree under %s and the GitOps manifests (%d files)\n", specPath, filepath.Join(o.Dir, nixos.Root), len(tree))
	for _, c := range changes {
		if c.Action == nixos.Skip {
			fmt.Fprintf(o.Out, "kept %s: %s\n", filepath.Join(o.Dir, filepath.FromSlash(c.Path)), c.Reason)
		}
	}
	if len(o.SSHKeyFiles) == 0 || len(o.AgeRecipients) == 0 {
		fmt.Fprintln(o.ErrOut, "warning: nerv.yaml still holds the example's SSH key or age recipient: replace them (or use --ssh-key and --age-recipient) before deploying")
	}
	fmt.Fprintf(o.Out, "next: edit %s (nodes, network, keys), then run: kubectl nerv generate --spec %s\n", specPath, specPath)
	return nil
}
