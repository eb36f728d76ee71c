// Package argocd runs argocd-sops-plugin under ArgoCD's own code: the real cmp-server reads the
// shipped plugin.yaml and execs the plugin binary, and the real repo-server clones a local git
// repository and asks the cmp-server for manifests over its unix socket, exactly as the
// argocd-repo-server pod and its sidecar do in a cluster.
//
// This is a separate module because argo-cd v3.6 needs Go 1.27 and pins k8s.io with replace
// directives; run it with GOTOOLCHAIN=go1.27.3 (see the Makefile). The plugin itself is built
// from the main module with the machine's own toolchain.
package argocd

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/cmpserver"
	"github.com/argoproj/argo-cd/v3/cmpserver/plugin"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/reposerver"
	"github.com/argoproj/argo-cd/v3/reposerver/apiclient"
	reposervercache "github.com/argoproj/argo-cd/v3/reposerver/cache"
	"github.com/argoproj/argo-cd/v3/reposerver/metrics"
	"github.com/argoproj/argo-cd/v3/reposerver/repository"
	"github.com/argoproj/argo-cd/v3/util/askpass"
	cacheutil "github.com/argoproj/argo-cd/v3/util/cache"
	utiltls "github.com/argoproj/argo-cd/v3/util/tls"
)

const (
	dbPassword  = "db-password-from-argocd-Qw71"
	envPassword = "env-password-from-argocd-Ur38"
)

// repoRoot is the main module, two levels up from this directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// buildPlugin builds cmd/argocd-sops-plugin of the main module with the machine's toolchain
// (the main module stays on Go 1.26) into a directory it puts first on PATH, where the
// cmp-server finds the command plugin.yaml names.
func buildPlugin(t *testing.T) {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "argocd-sops-plugin"), "./cmd/argocd-sops-plugin")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the plugin: %s", out)
	installVerifyWrapper(t, bin)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// installVerifyWrapper puts ArgoCD's own git-verify-wrapper.sh into bin, as the argocd image
// has it in /usr/local/bin: the repo-server runs it on every checkout (v3.6 does so even
// without signature verification configured) and answers "permission denied" without it.
func installVerifyWrapper(t *testing.T, bin string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-cd/v3")
	out, err := cmd.Output()
	require.NoError(t, err, "locating the argo-cd module")
	script, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "hack", "git-verify-wrapper.sh"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bin, "git-verify-wrapper.sh"), script, 0o755))
}

// sopsCLI is the sops binary hack/test-assets.sh builds (the real encrypt path).
func sopsCLI(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("NERV_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		cache = filepath.Join(home, ".cache", "nerv")
	}
	p := filepath.Join(cache, "assets", "sops-v3.13.3", "sops")
	_, err := os.Stat(p)
	require.NoError(t, err, "sops test asset missing: run hack/test-assets.sh")
	return p
}

func run(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s %v: %s", name, args, stderr.String())
	return out
}

// writeEncrypted writes plain at dir/rel and encrypts it in place with the sops CLI.
func writeEncrypted(t *testing.T, sops, dir, rel, plain, recipient string, extra ...string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(plain), 0o600))
	args := append([]string{"encrypt", "-i"}, extra...)
	run(t, dir, []string{"SOPS_AGE_RECIPIENTS=" + recipient}, sops, append(args, p)...)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NotContains(t, string(data), dbPassword)
	require.NotContains(t, string(data), envPassword)
}

// gitRepo lays out the apps and commits them; it returns the repo's file:// URL.
func gitRepo(t *testing.T, key, stranger *age.X25519Identity) string {
	t.Helper()
	sops := sopsCLI(t)
	dir := t.TempDir()
	secret := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  password: " + dbPassword + "\n"
	regex := []string{"--encrypted-regex", "^(data|stringData)$"}

	// A plain directory app, found by discovery.
	writeEncrypted(t, sops, dir, "apps/plain/secret.yaml", secret, key.Recipient().String(), regex...)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "apps/plain/config.yaml"),
		[]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: info\n"), 0o644))

	// A kustomize app with an encrypted secretGenerator env file.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "apps/kustomized"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "apps/kustomized/kustomization.yaml"), []byte(
		"resources:\n  - secret.yaml\nsecretGenerator:\n  - name: env\n    envs: [db.env]\ngeneratorOptions:\n  disableNameSuffixHash: true\n"), 0o644))
	writeEncrypted(t, sops, dir, "apps/kustomized/secret.yaml", secret, key.Recipient().String(), regex...)
	writeEncrypted(t, sops, dir, "apps/kustomized/db.env", "PASSWORD="+envPassword+"\n", key.Recipient().String())

	// An app encrypted for someone else's key.
	writeEncrypted(t, sops, dir, "apps/foreign/secret.yaml", secret, stranger.Recipient().String(), regex...)

	git := []string{"-c", "user.name=nerv", "-c", "user.email=nerv@example.invalid", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}
	run(t, dir, nil, "git", append(git, "init", "-q")...)
	run(t, dir, nil, "git", append(git, "add", ".")...)
	run(t, dir, nil, "git", append(git, "commit", "-q", "-m", "apps")...)
	return "file://" + dir
}

// startCMPServer runs ArgoCD's cmp-server for the shipped plugin.yaml, listening where the
// repo-server looks for plugin sockets.
func startCMPServer(t *testing.T) {
	t.Helper()
	cfg, err := plugin.ReadPluginConfig(filepath.Join(repoRoot(t), "manifests", "argocd-sops-plugin"))
	require.NoError(t, err)
	// Each cmp-server gets its own work dir; CreateGRPC reads it from the environment.
	t.Setenv(common.EnvCMPWorkDir, t.TempDir())
	srv, err := cmpserver.NewServer(plugin.CMPServerInitConstants{PluginConfig: *cfg})
	require.NoError(t, err)
	grpcServer, err := srv.CreateGRPC()
	require.NoError(t, err)
	lis, err := net.Listen("unix", cfg.Address())
	require.NoError(t, err)
	go func() { _ = grpcServer.Serve(lis) }()
	t.Cleanup(grpcServer.Stop)
}

// startRepoServer runs ArgoCD's repo-server with an in-memory cache and returns a client.
func startRepoServer(t *testing.T, sockDir string) apiclient.RepoServerServiceClient {
	t.Helper()
	cache := reposervercache.NewCache(cacheutil.NewCache(cacheutil.NewInMemoryCache(time.Hour)), time.Minute, time.Minute, 10*time.Second)
	srv, err := reposerver.NewServer(metrics.NewMetricsServer(), cache, nil,
		repository.RepoServerInitConstants{ParallelismLimit: 2},
		askpass.NewServer(filepath.Join(sockDir, "askpass.sock")), "", true)
	require.NoError(t, err)
	grpcServer := srv.CreateGRPC()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = grpcServer.Serve(lis) }()
	t.Cleanup(grpcServer.Stop)
	conn, client, err := apiclient.NewRepoServerClientset(lis.Addr().String(), 120, utiltls.Configuration{DisableTLS: true}).NewRepoServerClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return client
}

type object struct {
	Kind       string `json:"kind"`
	Metadata   struct{ Name string }
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

func TestGenerateManifestThroughArgoCD(t *testing.T) {
	// Unix socket paths must stay under 108 bytes: keep the socket dir short.
	sockDir, err := os.MkdirTemp("/tmp", "cmp")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	t.Setenv(common.EnvPluginSockFilePath, sockDir)
	// The repo-server keeps its clones under TMPDIR; the test must not leave them around.
	t.Setenv("TMPDIR", t.TempDir())

	key, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	stranger, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	require.NoError(t, os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600))
	// The cmp-server passes its own environment to the plugin, as the sidecar's env does.
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)

	buildPlugin(t)
	repoURL := gitRepo(t, key, stranger)
	startCMPServer(t)
	client := startRepoServer(t, sockDir)

	generate := func(path string, pluginName string) (*apiclient.ManifestResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		repo := &v1alpha1.Repository{Repo: repoURL}
		return client.GenerateManifest(ctx, &apiclient.ManifestRequest{
			Repo:      repo,
			Revision:  "HEAD",
			AppName:   "shop",
			Namespace: "prod",
			ApplicationSource: &v1alpha1.ApplicationSource{
				RepoURL: repoURL, Path: path, TargetRevision: "HEAD",
				Plugin: &v1alpha1.ApplicationSourcePlugin{Name: pluginName},
			},
			NoCache:            true,
			ProjectName:        "default",
			ProjectSourceRepos: []string{"*"},
			KubeVersion:        "1.37.2",
		})
	}
	decode := func(t *testing.T, resp *apiclient.ManifestResponse) map[string]object {
		t.Helper()
		objs := map[string]object{}
		for _, m := range resp.Manifests {
			var o object
			require.NoError(t, yaml.Unmarshal([]byte(m), &o))
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
		return objs
	}

	t.Run("plain directory found by discovery", func(t *testing.T) {
		resp, err := generate("apps/plain", "")
		require.NoError(t, err)
		objs := decode(t, resp)
		require.Contains(t, objs, "ConfigMap/settings")
		require.Contains(t, objs, "Secret/db")
		sec := objs["Secret/db"]
		got := sec.StringData["password"]
		if got == "" {
			b, _ := base64.StdEncoding.DecodeString(sec.Data["password"])
			got = string(b)
		}
		require.Equal(t, dbPassword, got)
	})

	t.Run("kustomize app by plugin name", func(t *testing.T) {
		resp, err := generate("apps/kustomized", "argocd-sops-plugin")
		require.NoError(t, err)
		objs := decode(t, resp)
		require.Equal(t, dbPassword, objs["Secret/db"].StringData["password"])
		b, err := base64.StdEncoding.DecodeString(objs["Secret/env"].Data["PASSWORD"])
		require.NoError(t, err)
		require.Equal(t, envPassword, string(b))
	})

	t.Run("wrong key: the plugin's stderr reaches the gRPC error", func(t *testing.T) {
		resp, err := generate("apps/foreign", "argocd-sops-plugin")
		require.Error(t, err, "manifests: %v", resp)
		msg := err.Error()
		require.Contains(t, msg, "secret.yaml: no key fits")
		require.Contains(t, msg, stranger.Recipient().String())
		require.Contains(t, msg, key.Recipient().String())
		require.Contains(t, msg, "app shop")
		require.NotContains(t, msg, dbPassword)
		require.False(t, strings.Contains(msg, "AGE-SECRET-KEY"), "error leaks a private key")
	})
}
