package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// ValidateOptions drives `kubectl nerv validate`.
type ValidateOptions struct {
	Filenames  []string
	Recursive  bool
	ConfigPath string
	Output     OutputFlags
	// Namespace is given to objects without one (the -n flag, else "default").
	Namespace string

	engine *policy.Engine
	genericiooptions.IOStreams
}

func newValidateCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &ValidateOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "validate -f PATH|DIR|- [-R] [--config policy.yaml]",
		Short: "Check manifests offline against the policies nerv-webhook enforces",
		Long: `Check manifests against NERV's admission policies without a cluster, with the same engine
nerv-webhook runs. -f takes files (YAML or JSON, multi-document), directories (a directory with a
kustomization is built with kustomize) or - for stdin. The network policy is judged against the
NetworkPolicies (and Namespace labels) found in the same input, as if it were applied to an empty
cluster.

Exit codes: 0 no violations; 1 violations in enforce or warn mode (audit-mode violations are
listed but do not fail); 2 unusable input or flags (the error names the file and line).`,
		Example: `  kubectl nerv validate -f deploy.yaml
  kustomize build overlays/prod | kubectl nerv validate -f -
  kubectl nerv validate -f manifests/ -R -o json --config policy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringSliceVarP(&o.Filenames, "filename", "f", nil, "file, directory or - (stdin) to validate; repeatable")
	cmd.Flags().BoolVarP(&o.Recursive, "recursive", "R", false, "descend into subdirectories of directories given with -f")
	cmd.Flags().StringVar(&o.ConfigPath, "config", "", "policy config file (as mounted into nerv-webhook); default: the built-in defaults")
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete reads the namespace from the kubectl flags and loads the policy config.
func (o *ValidateOptions) Complete(cmd *cobra.Command) error {
	o.Namespace = "default"
	if f := cmd.Flag("namespace"); f != nil && f.Value.String() != "" {
		o.Namespace = f.Value.String()
	}
	cfg := policy.DefaultConfig()
	if o.ConfigPath != "" {
		data, err := os.ReadFile(o.ConfigPath)
		if err != nil {
			return Exitf(ExitUsage, "reading policy config: %v", err)
		}
		if cfg, err = policy.LoadConfig(data, o.ConfigPath); err != nil {
			return Exitf(ExitUsage, "%v", err)
		}
	}
	var err error
	if o.engine, err = policy.NewEngine(cfg); err != nil {
		return Exitf(ExitUsage, "%v", err)
	}
	return nil
}

// Validate checks the flags.
func (o *ValidateOptions) Validate() error {
	if len(o.Filenames) == 0 {
		return Exitf(ExitUsage, "no input: give -f FILE, -f DIR or -f - (stdin)")
	}
	stdin := 0
	for _, f := range o.Filenames {
		if f == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return Exitf(ExitUsage, "-f - (stdin) can be given only once")
	}
	return o.Output.Validate()
}

// Run reads every input, evaluates it and prints the report.
func (o *ValidateOptions) Run() error {
	var ms []policy.Manifest
	for _, name := range o.Filenames {
		got, err := o.read(name)
		if err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		ms = append(ms, got...)
	}
	res, err := o.engine.EvaluateManifests(ms, o.Namespace)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("unusable input: %w", err)}
	}
	if err := o.Output.Print(o.Out, res, func(w io.Writer) error { return printValidateTable(w, res, UseColor(o.Out)) }); err != nil {
		return err
	}
	for _, v := range res.Violations {
		if v.Mode != policy.ModeAudit {
			return &ExitError{Code: ExitFailure, Silent: true}
		}
	}
	return nil
}

// read returns the manifests in one -f argument.
func (o *ValidateOptions) read(name string) ([]policy.Manifest, error) {
	if name == "-" {
		return decodeManifests(o.In, "<stdin>")
	}
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if !fi.IsDir() {
		return readManifestFile(name)
	}
	return o.readDir(name)
}

func (o *ValidateOptions) readDir(dir string) ([]policy.Manifest, error) {
	if isKustomization(dir) {
		return buildKustomization(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	var out []policy.Manifest
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			if o.Recursive {
				got, err := o.readDir(p)
				if err != nil {
					return nil, err
				}
				out = append(out, got...)
			}
		case isManifestFile(e):
			got, err := readManifestFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	return out, nil
}

func isManifestFile(e fs.DirEntry) bool {
	switch strings.ToLower(filepath.Ext(e.Name())) {
	case ".yaml", ".yml", ".json":
		return e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0
	}
	return false
}

func isKustomization(dir string) bool {
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// buildKustomization runs kustomize (the library kubectl embeds) on the real filesystem.
func buildKustomization(dir string) ([]policy.Manifest, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("%s: kustomize build: %w", dir, err)
	}
	var out []policy.Manifest
	for _, r := range rm.Resources() {
		// Through JSON: kyaml's Map() holds plain ints, which unstructured cannot deep-copy.
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: kustomize build: %s: %w", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("%s: kustomize build: %s: %w", dir, r.CurId(), err)
		}
		out = append(out, policy.Manifest{
			Object: u,
			Source: fmt.Sprintf("%s (kustomize %s)", dir, r.CurId()),
		})
	}
	return out, nil
}

func readManifestFile(path string) ([]policy.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	defer f.Close()
	return decodeManifests(f, path)
}

// decodeManifests reads a YAML or JSON stream of documents; v1 Lists are expanded. Each
// manifest's Source is "name:line" of its document.
func decodeManifests(r io.Reader, name string) ([]policy.Manifest, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: reading: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []policy.Manifest
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// yaml's message carries the line ("yaml: line 7: mapping values are not allowed").
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // empty document, e.g. a trailing ---
		}
		root := doc.Content[0]
		src := fmt.Sprintf("%s:%d", name, root.Line)
		var v any
		if err := root.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not a Kubernetes object (a %s, not a mapping)", src, strings.TrimPrefix(root.Tag, "!!"))
		}
		objs, err := toObjects(m, src)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// toObjects turns one decoded document into objects, checking that each is one.
func toObjects(m map[string]any, src string) ([]policy.Manifest, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: not a Kubernetes object: %w", src, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("%s: not a Kubernetes object: %w", src, err)
	}
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		var out []policy.Manifest
		for i := range list.Items {
			out = append(out, policy.Manifest{Object: &list.Items[i], Source: fmt.Sprintf("%s items[%d]", src, i)})
		}
		return out, nil
	}
	return []policy.Manifest{{Object: u, Source: src}}, nil
}

func printValidateTable(w io.Writer, res policy.ManifestResult, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	modeColor := map[policy.Mode]string{policy.ModeEnforce: "31", policy.ModeWarn: "33", policy.ModeAudit: "36"}
	var b strings.Builder
	last := ""
	objects := 0
	for _, v := range res.Violations {
		head := v.Source + "  " + v.Object.String()
		if head != last {
			if last != "" {
				b.WriteString("\n")
			}
			b.WriteString(paint("1", head) + "\n")
			last = head
			objects++
		}
		fmt.Fprintf(&b, "  %s %s  %s\n      %s\n", paint(modeColor[v.Mode], fmt.Sprintf("%-7s", v.Mode)), v.Policy, v.Field, v.Message)
	}
	if len(res.Violations) == 0 {
		fmt.Fprintf(&b, "%d objects checked (%d judged by a policy, %d exempt): no violations\n", res.Objects, res.Judged, res.Exempt)
	} else {
		fmt.Fprintf(&b, "\n%d violation(s) in %d of %d objects (%d judged by a policy, %d exempt)\n", len(res.Violations), objects, res.Objects, res.Judged, res.Exempt)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
