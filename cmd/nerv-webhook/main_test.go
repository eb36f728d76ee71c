package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/internal/version"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\npolicies:\n  network: {mode: block}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A kubeconfig is only parsed before the policy config is loaded; nothing is contacted.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{name: "version", args: []string{"--version"}, code: 0, out: "nerv-webhook " + version.Get().String()},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, err: "flag provided but not defined: -bogus"},
		{name: "bad config", args: []string{"--kubeconfig", kubeconfig, "--config", bad}, code: 2, err: bad + ": policies.network.mode: Unsupported value: \"block\""},
		{name: "missing config", args: []string{"--kubeconfig", kubeconfig, "--config", filepath.Join(dir, "absent.yaml")}, code: 2, err: "absent.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.err) {
				t.Errorf("stdout %q (want %q), stderr %q (want %q)", out.String(), tt.out, errOut.String(), tt.err)
			}
		})
	}
}
