package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closedKubeconfig points at a loopback port nothing listens on.
func closedKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDoctorCannotRun(t *testing.T) {
	kc := closedKubeconfig(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unreachable apiserver", []string{"doctor", "--kubeconfig", kc, "--timeout", "3s"},
			"error: cannot reach the Kubernetes API at https://127.0.0.1:1: Get \"https://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused"},
		{"unreachable with --wait bounded by --timeout", []string{"doctor", "--kubeconfig", kc, "--timeout", "3s", "--wait", "1h"},
			"error: cannot reach the Kubernetes API at https://127.0.0.1:1"},
		{"unreachable as json", []string{"doctor", "--kubeconfig", kc, "--timeout", "3s", "-o", "json"},
			"error: cannot reach the Kubernetes API at https://127.0.0.1:1"},
		{"unknown category", []string{"doctor", "--kubeconfig", kc, "--category", "kubernetes,metalb"},
			`error: --category: unknown category "metalb": use one of kubernetes, metallb, argocd, traefik, cert-manager, longhorn, nerv-webhook, policy`},
		{"bad output", []string{"doctor", "--kubeconfig", kc, "-o", "wide"}, `error: --output "wide" is not supported`},
		{"negative wait", []string{"doctor", "--kubeconfig", kc, "--wait", "-1s"}, "error: --wait -1s: must not be negative"},
		{"zero timeout", []string{"doctor", "--kubeconfig", kc, "--timeout", "0s"}, "error: --timeout 0s: must be positive"},
		{"missing spec", []string{"doctor", "--kubeconfig", kc, "--spec", "/nonexistent/nerv.yaml"}, "error: reading cluster spec: open /nonexistent/nerv.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, errOut, code := runIn(t, "", tt.args...)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d (stderr %q)", code, ExitUsage, errOut)
			}
			// The error is the last line; --wait may print progress before it.
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if !strings.HasPrefix(lines[len(lines)-1], tt.wantErr) {
				t.Errorf("stderr = %q, want its last line to start with %q", errOut, tt.wantErr)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s: must give up within --timeout", d)
			}
		})
	}
}

func TestDoctorCategoryCompletion(t *testing.T) {
	out, _, code := runIn(t, "", "__complete", "doctor", "--category", "")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"kubernetes", "metallb", "argocd", "traefik", "cert-manager", "longhorn", "nerv-webhook", "policy"} {
		if !strings.Contains(out, c+"\n") {
			t.Errorf("completion lacks %s:\n%s", c, out)
		}
	}
}
