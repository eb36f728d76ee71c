package cli

import (
	"strings"
	"testing"
)

// kubectl (>= 1.26) completes `kubectl nerv ...` by running kubectl_complete-nerv, which
// calls `kubectl-nerv __complete ARGS...`: these tests drive that protocol through the real
// command tree, and the scripts `kubectl nerv completion SHELL` prints.
func TestCompletion(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "subcommands", args: []string{"__complete", ""}, want: []string{"version", "validate", "doctor", "completion"}},
		{name: "output formats", args: []string{"__complete", "version", "-o", ""}, want: []string{"table", "json", "yaml"}},
		// Standalone scripts complete the binary itself (kubectl-nerv ...).
		{name: "bash script", args: []string{"completion", "bash"}, want: []string{"complete -o default -F __start_kubectl-nerv kubectl-nerv"}},
		{name: "zsh script", args: []string{"completion", "zsh"}, want: []string{"#compdef kubectl-nerv"}},
		{name: "fish script", args: []string{"completion", "fish"}, want: []string{"complete -c kubectl-nerv"}},
		{name: "help names the plugin as kubectl runs it", args: []string{"--help"}, want: []string{"kubectl nerv [command]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%.600s", w, out)
				}
			}
		})
	}
}
