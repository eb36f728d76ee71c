package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats accepted by -o on every command that prints a result.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// OutputFlags is the -o flag: table for people, json and yaml (stable schemas) for scripts.
type OutputFlags struct {
	Format string
}

// AddFlags registers -o/--output with table as the default.
func (o *OutputFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.Format, "output", "o", OutputTable, "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{OutputTable, OutputJSON, OutputYAML}, cobra.ShellCompDirectiveNoFileComp
	})
}

// Validate rejects unknown formats with the list of valid ones.
func (o *OutputFlags) Validate() error {
	switch o.Format {
	case OutputTable, OutputJSON, OutputYAML:
		return nil
	}
	return Exitf(ExitUsage, "--output %q is not supported: use table, json or yaml", o.Format)
}

// Print writes v as JSON or YAML, or calls table for the human form.
func (o *OutputFlags) Print(w io.Writer, v any, table func(io.Writer) error) error {
	switch o.Format {
	case OutputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		return table(w)
	}
}

// UseColor reports whether w is a terminal and NO_COLOR is unset (https://no-color.org).
func UseColor(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
