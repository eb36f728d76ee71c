package cmp

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/nerv-platform/nerv/internal/version"
	"github.com/nerv-platform/nerv/pkg/sopsdoc"
)

// Exit codes of argocd-sops-plugin.
const (
	ExitOK = 0
	// ExitFailure: generate failed (a file could not be read or decrypted), or discover found
	// no SOPS file (the exit status ArgoCD's discovery reads as "not this plugin").
	ExitFailure = 1
	// ExitUsage: bad flags or arguments, or the key configuration cannot be loaded.
	ExitUsage = 2
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Streams are the process' standard streams, injected so tests run the real command tree.
type Streams struct {
	Out, ErrOut io.Writer
}

// Options are the plugin's settings: flags first, then the ArgoCD environment.
type Options struct {
	AgeKeyFile  string
	MaxFileSize string
	Parallelism int

	getenv    func(string) string
	generator *Generator
}

// Complete loads keys and the ArgoCD environment once.
func (o *Options) Complete() error {
	env, err := EnvFrom(o.getenv)
	if err != nil {
		return err
	}
	if o.MaxFileSize != "" {
		if env.MaxFileSize, err = parseSize(o.MaxFileSize); err != nil {
			return fmt.Errorf("--max-file-size %q: %w", o.MaxFileSize, err)
		}
	}
	dec, err := sopsdoc.New(
		sopsdoc.WithKeysFromEnv(o.getenv),
		sopsdoc.WithAgeKeyFile(o.AgeKeyFile),
		sopsdoc.WithMaxFileSize(env.MaxFileSize),
	)
	if err != nil {
		return fmt.Errorf("loading age keys: %w", err)
	}
	o.generator = &Generator{Decryptor: dec, Env: env, Parallelism: o.Parallelism}
	return nil
}

// Validate checks flag values.
func (o *Options) Validate() error {
	if o.Parallelism < 0 {
		return errors.New("--parallelism must be 0 (GOMAXPROCS) or more")
	}
	return nil
}

func dirArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "." // the cmp-server runs the plugin in the app dir
}

// NewCommand returns the argocd-sops-plugin command tree. getenv is os.Getenv in the binary.
func NewCommand(streams Streams, getenv func(string) string) *cobra.Command {
	o := &Options{getenv: getenv}
	root := &cobra.Command{
		Use:   "argocd-sops-plugin",
		Short: "ArgoCD config management plugin that decrypts SOPS (age) manifests in memory",
		Long: `argocd-sops-plugin renders an ArgoCD app directory, decrypting SOPS-encrypted files in memory.

  discover [DIR]   exit 0 and print the first SOPS file when DIR holds one, exit 1 otherwise
  generate [DIR]   print the app as one multi-document YAML stream (kustomize when DIR has a
                   kustomization.yaml), decrypting every SOPS file; nothing on stdout on error

Keys: age identities from --age-key-file, SOPS_AGE_KEY_FILE and SOPS_AGE_KEY, loaded once.
Exit codes: 0 ok, 1 failure (or discover: no SOPS file), 2 usage or key configuration error.`,
		Version:       version.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{ExitUsage, fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&o.AgeKeyFile, "age-key-file", "", "file with age identities (in addition to SOPS_AGE_KEY_FILE and SOPS_AGE_KEY)")
	pf.StringVar(&o.MaxFileSize, "max-file-size", "", "per-file size limit, e.g. 5Mi (default 5Mi; also PARAM_MAX_FILE_SIZE, ARGOCD_ENV_SOPS_MAX_FILE_SIZE)")
	pf.IntVar(&o.Parallelism, "parallelism", 0, "files read and decrypted at once (0 = GOMAXPROCS)")

	prepare := func() error {
		if err := o.Validate(); err != nil {
			return &exitError{ExitUsage, err}
		}
		if err := o.Complete(); err != nil {
			return &exitError{ExitUsage, err}
		}
		return nil
	}

	root.AddCommand(&cobra.Command{
		Use:   "discover [DIR]",
		Short: "Exit 0 when DIR (default .) holds at least one SOPS file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := prepare(); err != nil {
				return err
			}
			found, err := o.generator.Discover(dirArg(args))
			if err != nil {
				return &exitError{ExitUsage, err}
			}
			if found == "" {
				return &exitError{code: ExitFailure} // silent: "not ours" is not an error
			}
			// ArgoCD's discovery treats any output as a match.
			_, err = fmt.Fprintln(streams.Out, found)
			return err
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "generate [DIR]",
		Short: "Print DIR (default .) as one YAML stream with SOPS files decrypted",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := prepare(); err != nil {
				return err
			}
			out, err := o.generator.Generate(context.Background(), dirArg(args))
			if err != nil {
				return &exitError{ExitFailure, err}
			}
			// Written once, after everything succeeded: ArgoCD never sees half a stream.
			_, err = streams.Out.Write(out)
			return err
		},
	})
	return root
}

// Execute runs cmd and returns the process exit code; errors go to streams.ErrOut once.
func Execute(cmd *cobra.Command, streams Streams) int {
	err := cmd.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(streams.ErrOut, "argocd-sops-plugin: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(streams.ErrOut, "argocd-sops-plugin: %v\n", err)
	// Unknown commands and argument-count errors come from cobra without our wrapper.
	return ExitUsage
}
