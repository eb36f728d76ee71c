package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/nerv-platform/nerv/internal/version"
)

// run executes the real command tree with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewRootCommand(streams)
	cmd.SetArgs(args)
	code := Execute(cmd, streams)
	return out.String(), errOut.String(), code
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
		code  int
	}{
		{name: "table", args: []string{"version"}, check: func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "kubectl-nerv "+version.Version) {
				t.Errorf("got %q", out)
			}
		}},
		{name: "json", args: []string{"version", "-o", "json"}, check: func(t *testing.T, out string) {
			var info version.Info
			if err := json.NewDecoder(bytes.NewBufferString(out)).Decode(&info); err != nil {
				t.Fatalf("not json: %v: %q", err, out)
			}
			if info != version.Get() {
				t.Errorf("got %+v, want %+v", info, version.Get())
			}
		}},
		{name: "yaml", args: []string{"version", "-o", "yaml"}, check: func(t *testing.T, out string) {
			if !strings.Contains(out, "version: "+version.Version) {
				t.Errorf("got %q", out)
			}
		}},
		{name: "bad format", args: []string{"version", "-o", "xml"}, code: ExitUsage},
		{name: "unknown flag", args: []string{"version", "--bogus"}, code: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
			if tt.code != 0 && !strings.HasPrefix(errOut, "error: ") {
				t.Errorf("stderr %q should start with error:", errOut)
			}
		})
	}
}
