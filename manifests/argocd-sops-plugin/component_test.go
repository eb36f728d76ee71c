package sopsplugin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoServer is a stand-in for ArgoCD's argocd-repo-server Deployment, with the var-files and
// plugins volumes ArgoCD's install manifests and Helm chart declare for sidecar plugins.
const repoServer = `apiVersion: apps/v1
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
`

// buildComponent builds this directory's Component onto the stand-in repo-server the way a
// user's ArgoCD kustomization would, and returns the patched Deployment and the generated
// plugin ConfigMap.
func buildComponent(t *testing.T) (appsv1.Deployment, corev1.ConfigMap) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fs := filesys.MakeFsInMemory()
	for _, name := range []string{"kustomization.yaml", "plugin.yaml", "repo-server-sidecar.yaml"} {
		data, err := os.ReadFile(name)
		must(err)
		must(fs.WriteFile("/argocd/argocd-sops-plugin/"+name, data))
	}
	must(fs.WriteFile("/argocd/kustomization.yaml", []byte("resources: [repo-server.yaml]\ncomponents: [argocd-sops-plugin]\n")))
	must(fs.WriteFile("/argocd/repo-server.yaml", []byte(repoServer)))
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
	return deploy, cm
}

// TestManifestsComponent checks the sidecar ArgoCD's docs require in the built Component.
func TestManifestsComponent(t *testing.T) {
	deploy, cm := buildComponent(t)
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
	var p struct {
		Kind     string `json:"kind"`
		Metadata struct{ Name string }
		Spec     struct {
			Generate struct{ Command []string }
			Discover struct{ Find struct{ Command []string } }
		}
	}
	if err := yaml.Unmarshal(PluginYAML, &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "ConfigManagementPlugin" || p.Metadata.Name != "argocd-sops-plugin" ||
		!slices.Equal(p.Spec.Generate.Command, []string{"argocd-sops-plugin", "generate"}) ||
		!slices.Equal(p.Spec.Discover.Find.Command, []string{"argocd-sops-plugin", "discover"}) {
		t.Fatalf("plugin.yaml: %+v", p)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "cmd", p.Spec.Generate.Command[0], "main.go")); err != nil {
		t.Fatalf("generate runs %s, which is not a program of this repository: %v", p.Spec.Generate.Command[0], err)
	}
}
