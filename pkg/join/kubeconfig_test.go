package join

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/nerv-platform/nerv/internal/sshtest"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// k3sKubeconfig has the shape k3s writes to /etc/rancher/k3s/k3s.yaml.
const k3sKubeconfig = `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Y2EK
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    client-certificate-data: Y2VydAo=
    client-key-data: a2V5Cg==
`

func TestMergeKubeconfig(t *testing.T) {
	tests := []struct {
		name        string
		existing    string
		wantCurrent string
	}{
		{"new file", "", "nerv"},
		{"keeps other contexts and the current one", `apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://other:6443"}
  name: other
contexts:
- context: {cluster: other, user: other}
  name: other
current-context: other
users:
- name: other
  user: {token: t}
`, "other"},
		{"replaces a stale entry of the same name", `apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://192.168.1.99:6443"}
  name: nerv
contexts:
- context: {cluster: nerv, user: nerv}
  name: nerv
current-context: ""
users:
- name: nerv
  user: {token: old}
`, "nerv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kube", "config")
			if tt.existing != "" {
				os.MkdirAll(filepath.Dir(path), 0o700)
				os.WriteFile(path, []byte(tt.existing), 0o644)
			}
			if err := MergeKubeconfig(path, []byte(k3sKubeconfig), "nerv", "https://192.168.1.100:6443"); err != nil {
				t.Fatal(err)
			}
			cfg, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx := cfg.Contexts["nerv"]
			if ctx == nil || ctx.Cluster != "nerv" || ctx.AuthInfo != "nerv" {
				t.Fatalf("context nerv: %+v", ctx)
			}
			if s := cfg.Clusters["nerv"].Server; s != "https://192.168.1.100:6443" {
				t.Errorf("server %s", s)
			}
			if string(cfg.AuthInfos["nerv"].ClientKeyData) != "key\n" || cfg.AuthInfos["nerv"].Token != "" {
				t.Errorf("user not replaced by the node's: %+v", cfg.AuthInfos["nerv"])
			}
			if cfg.CurrentContext != tt.wantCurrent {
				t.Errorf("current context %q, want %q", cfg.CurrentContext, tt.wantCurrent)
			}
			if tt.wantCurrent == "other" && cfg.Contexts["other"] == nil {
				t.Error("the other context was dropped")
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
	if err := MergeKubeconfig(filepath.Join(t.TempDir(), "c"), []byte("clusters: [}"), "nerv", "https://x:6443"); err == nil {
		t.Error("a garbled kubeconfig was merged")
	}
}

// The first server's kubeconfig step reads k3s' file over real SSH (here from a file the
// test writes, standing in for /etc/rancher/k3s/k3s.yaml) and merges it.
func TestKubeconfigStepFetchesOverSSH(t *testing.T) {
	srv := sshtest.Start(t)
	remote := filepath.Join(t.TempDir(), "k3s.yaml")
	local := filepath.Join(t.TempDir(), "config")
	c, err := spec.Parse(spec.Example(), "example")
	if err != nil {
		t.Fatal(err)
	}
	c.Default()
	var out strings.Builder
	j := &joiner{
		o: Options{Node: "misato", SSHAddress: srv.Addr, AdminUser: srv.User, IdentityFile: srv.ClientKeyPath,
			KnownHostsFile: srv.KnownHostsFile, ConnectTimeout: 5 * time.Second, RemoteKubeconfig: remote,
			Kubeconfig: local, Timeout: 30 * time.Second, Out: &out},
		cluster: c, first: true,
	}
	j.node, _ = c.Node("misato")
	old := kubeconfigRetry
	kubeconfigRetry = 200 * time.Millisecond
	defer func() { kubeconfigRetry = old }()

	// k3s writes the file a little after the node boots: the step waits for it.
	go func() {
		time.Sleep(time.Second)
		os.WriteFile(remote, []byte(k3sKubeconfig), 0o600)
	}()
	detail, err := j.kubeconfig(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(detail, `context "nerv" (server https://192.168.1.100:6443)`) {
		t.Errorf("detail %q", detail)
	}
	if !strings.Contains(out.String(), "waiting for "+remote) {
		t.Errorf("no progress while the file was missing:\n%s", out.String())
	}
	if !j.contextPresent() {
		t.Error("contextPresent false after the merge")
	}
	if done, _, _ := j.kubeconfigDone(context.Background()); !done {
		t.Error("kubeconfigDone false after the merge")
	}
	// An agent has nothing to merge.
	j.first = false
	if _, err := j.kubeconfig(context.Background()); err == nil || !strings.Contains(err.Error(), "not the first server") {
		t.Errorf("agent: %v", err)
	}
}
