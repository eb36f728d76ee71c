// Package sopsplugin carries the argocd-sops-plugin manifests of this directory into Go, so
// that the argo-cd chart values of the platform (pkg/platform) and of the NixOS bootstrap
// (pkg/nixos) install the very plugin definition and sidecar that the kustomize Component
// ships, instead of copies that could drift.
package sopsplugin

import (
	_ "embed"
	"fmt"
	"sync"

	"sigs.k8s.io/yaml"
)

// PluginYAML is plugin.yaml: the ConfigManagementPlugin argocd-cmp-server reads.
//
//go:embed plugin.yaml
var PluginYAML []byte

// SidecarPatchYAML is repo-server-sidecar.yaml: the patch adding the sidecar container and
// its volumes to argocd-repo-server.
//
//go:embed repo-server-sidecar.yaml
var SidecarPatchYAML []byte

const (
	// ConfigVolume is the sidecar's volume holding plugin.yaml.
	ConfigVolume = "argocd-sops-plugin-config"
	// CMPConfigMap is the ConfigMap the argo-cd chart writes configs.cmp.plugins into, one
	// key "<plugin>.yaml" per plugin.
	CMPConfigMap = "argocd-cmp-cm"
)

// ChartValues returns the argo-cd Helm chart values that install the plugin: its
// ConfigManagementPlugin in the chart's argocd-cmp-cm (configs.cmp), and the sidecar
// container and its volumes as repoServer.extraContainers and repoServer.volumes, taken from
// this directory's files. The one change is that plugin.yaml is mounted from argocd-cmp-cm.
// The top-level keys are configs and repoServer. Each call returns a fresh copy.
func ChartValues() (map[string]any, error) {
	b, err := chartValues()
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// chartValues computes the values once and keeps them serialized, for fresh copies.
var chartValues = sync.OnceValues(func() ([]byte, error) {
	var plugin struct {
		Metadata struct{ Name string }
		Spec     map[string]any
	}
	if err := yaml.Unmarshal(PluginYAML, &plugin); err != nil {
		return nil, fmt.Errorf("manifests/argocd-sops-plugin/plugin.yaml: %w", err)
	}
	var patch struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []map[string]any
					Volumes    []map[string]any
				}
			}
		}
	}
	if err := yaml.Unmarshal(SidecarPatchYAML, &patch); err != nil {
		return nil, fmt.Errorf("manifests/argocd-sops-plugin/repo-server-sidecar.yaml: %w", err)
	}
	pod := patch.Spec.Template.Spec
	if plugin.Metadata.Name == "" || plugin.Spec == nil {
		return nil, fmt.Errorf("manifests/argocd-sops-plugin/plugin.yaml: metadata.name and spec are required")
	}
	if len(pod.Containers) != 1 {
		return nil, fmt.Errorf("manifests/argocd-sops-plugin/repo-server-sidecar.yaml: spec.template.spec.containers: want exactly the sidecar, got %d containers", len(pod.Containers))
	}
	mounted, found := false, false
	mounts, _ := pod.Containers[0]["volumeMounts"].([]any)
	for _, m := range mounts {
		if m, ok := m.(map[string]any); ok && m["name"] == ConfigVolume {
			m["subPath"] = plugin.Metadata.Name + ".yaml"
			mounted = true
		}
	}
	for _, vol := range pod.Volumes {
		if vol["name"] == ConfigVolume {
			vol["configMap"] = map[string]any{"name": CMPConfigMap}
			found = true
		}
	}
	if !mounted || !found {
		return nil, fmt.Errorf("manifests/argocd-sops-plugin/repo-server-sidecar.yaml: no volume and volumeMount named %s", ConfigVolume)
	}
	return yaml.Marshal(map[string]any{
		"configs": map[string]any{"cmp": map[string]any{
			"create":  true,
			"plugins": map[string]any{plugin.Metadata.Name: plugin.Spec},
		}},
		"repoServer": map[string]any{
			"extraContainers": pod.Containers,
			"volumes":         pod.Volumes,
		},
	})
})
