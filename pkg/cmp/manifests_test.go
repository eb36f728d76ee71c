package cmp_test

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

func componentDir(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "manifests", "argocd-sops-plugin")
}

// TestManifestsComponent builds the shipped component onto a minimal argocd-repo-server the
// way a user's ArgoCD kustomization would, and checks the sidecar ArgoCD's docs require.
func TestManifestsComponent(t *testing.T) {
	fs := filesys.MakeFsInMemory()
	for _, name := range []string{"kustomization.yaml", "plugin.yaml", "repo-server-sidecar.yaml"} {
		data, err := os.ReadFile(filepath.Join(componentDir(t), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/argocd/argocd-sops-plugin/"+name, data); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fs.WriteFile("/argocd/kustomization.yaml", []byte("resources: [repo-server.yaml]\ncomponents: [argocd-sops-plugin]\n")))
	must(fs.WriteFile("/argocd/repo-server.yaml", []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-repo-server
spec:
  template:
    spec:
      containers:
        - name: argocd-repo-server
          image: quay.io/argoproj/argocd:v3.6.1
      volumes:
        - name: var-files
          emptyDir: {}
        - name: plugins
          emptyDir: {}
`)))
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/argocd")
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	var deploy appsv1.Deployment
	var cm corev1.ConfigMap
	for _, r := range resMap.Resources() {
		data, err := r.AsYAML()
		must(err)
		switch r.GetKind() {
		case "Deployment":
			must(yaml.UnmarshalStrict(data, &deploy))
		case "ConfigMap":
			must(yaml.UnmarshalStrict(data, &cm))
		}
	}
	if !strings.HasPrefix(cm.Name, "argocd-sops-plugin-") || !strings.Contains(cm.Data["plugin.yaml"], "kind: ConfigManagementPlugin") {
		t.Fatalf("plugin ConfigMap: %s %v", cm.Name, cm.Data)
	}

	spec := deploy.Spec.Template.Spec
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "argocd-sops-plugin" })
	if len(spec.Containers) != 2 || i < 0 {
		t.Fatalf("want repo-server plus the sidecar, got %d containers", len(spec.Containers))
	}
	c := spec.Containers[i]
	if !slices.Equal(c.Command, []string{"/var/run/argocd/argocd-cmp-server"}) {
		t.Fatalf("sidecar %s command %v", c.Name, c.Command)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 999 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Fatalf("securityContext: %+v", sc)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Fatalf("resources: %+v", c.Resources)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if mounts["var-files"].MountPath != "/var/run/argocd" || mounts["plugins"].MountPath != "/home/argocd/cmp-server/plugins" {
		t.Fatalf("ArgoCD mounts: %+v", mounts)
	}
	cfg := mounts["argocd-sops-plugin-config"]
	if cfg.MountPath != "/home/argocd/cmp-server/config/plugin.yaml" || cfg.SubPath != "plugin.yaml" ||
		volumes[cfg.Name].ConfigMap == nil || volumes[cfg.Name].ConfigMap.Name != cm.Name {
		t.Fatalf("plugin.yaml mount %+v from %+v (ConfigMap %s)", cfg, volumes[cfg.Name], cm.Name)
	}
	if tmp := mounts["argocd-sops-plugin-tmp"]; tmp.MountPath != "/tmp" || volumes[tmp.Name].EmptyDir == nil {
		t.Fatalf("tmp mount %+v", tmp)
	}
	key := mounts["argocd-sops-age-key"]
	if !key.ReadOnly || volumes[key.Name].Secret == nil || volumes[key.Name].Secret.SecretName != "argocd-sops-age-key" {
		t.Fatalf("key mount %+v volume %+v", key, volumes[key.Name])
	}
	var keyFile string
	for _, e := range c.Env {
		if e.Name == "SOPS_AGE_KEY_FILE" {
			keyFile = e.Value
		}
	}
	if keyFile == "" || filepath.Dir(keyFile) != key.MountPath || volumes[key.Name].Secret.Items[0].Path != filepath.Base(keyFile) {
		t.Fatalf("SOPS_AGE_KEY_FILE %q does not point into the key mount %s", keyFile, key.MountPath)
	}
}

// The plugin definition runs this repository's program by the name its main package builds.
func TestPluginDefinition(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(componentDir(t), "plugin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Kind     string `json:"kind"`
		Metadata struct{ Name string }
		Spec     struct {
			Generate struct{ Command []string }
			Discover struct{ Find struct{ Command []string } }
		}
	}
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "ConfigManagementPlugin" || p.Metadata.Name != "argocd-sops-plugin" ||
		!slices.Equal(p.Spec.Generate.Command, []string{"argocd-sops-plugin", "generate"}) ||
		!slices.Equal(p.Spec.Discover.Find.Command, []string{"argocd-sops-plugin", "discover"}) {
		t.Fatalf("plugin.yaml: %+v", p)
	}
	if _, err := os.Stat(filepath.Join(componentDir(t), "..", "..", "cmd", p.Spec.Generate.Command[0], "main.go")); err != nil {
		t.Fatalf("generate runs %s, which is not a program of this repository: %v", p.Spec.Generate.Command[0], err)
	}
}
