package sopsplugin

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestChartValuesMatchTheComponent checks that the chart values install what the kustomize
// Component does: the same plugin spec, and the same container and volumes once the
// Component's generated ConfigMap is swapped for the chart's argocd-cmp-cm.
func TestChartValuesMatchTheComponent(t *testing.T) {
	v, err := ChartValues()
	if err != nil {
		t.Fatal(err)
	}
	var plugin struct {
		Metadata struct{ Name string }
		Spec     map[string]any
	}
	if err := yaml.Unmarshal(PluginYAML, &plugin); err != nil {
		t.Fatal(err)
	}
	cmp := v["configs"].(map[string]any)["cmp"].(map[string]any)
	if cmp["create"] != true {
		t.Errorf("configs.cmp.create = %v, want true", cmp["create"])
	}
	if got := cmp["plugins"].(map[string]any)[plugin.Metadata.Name]; !reflect.DeepEqual(got, plugin.Spec) {
		t.Errorf("configs.cmp.plugins.%s = %v, want plugin.yaml's spec %v", plugin.Metadata.Name, got, plugin.Spec)
	}

	// What the Component gives argocd-repo-server, with the chart's ConfigMap and key.
	deploy, cm := buildComponent(t)
	var want struct {
		Containers []corev1.Container
		Volumes    []corev1.Volume
	}
	for _, c := range deploy.Spec.Template.Spec.Containers {
		if c.Name == "argocd-repo-server" {
			continue
		}
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].Name == ConfigVolume {
				c.VolumeMounts[i].SubPath = plugin.Metadata.Name + ".yaml" // the chart's key
			}
		}
		want.Containers = append(want.Containers, c)
	}
	for _, vol := range deploy.Spec.Template.Spec.Volumes {
		switch vol.Name {
		case "var-files", "plugins": // the repo-server's own
			continue
		case ConfigVolume:
			if vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name {
				t.Fatalf("the Component mounts %+v, it generates ConfigMap %s", vol.VolumeSource, cm.Name)
			}
			vol.ConfigMap.Name = CMPConfigMap
		}
		want.Volumes = append(want.Volumes, vol)
	}

	var got struct {
		Containers []corev1.Container `json:"extraContainers"`
		Volumes    []corev1.Volume    `json:"volumes"`
	}
	b, err := yaml.Marshal(v["repoServer"])
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &got); err != nil {
		t.Fatalf("repoServer values are not a container list and volumes: %v", err)
	}
	if len(want.Containers) != 1 || !reflect.DeepEqual(got.Containers, want.Containers) {
		t.Errorf("repoServer.extraContainers = %+v\nwant the Component's sidecar %+v", got.Containers, want.Containers)
	}
	if !reflect.DeepEqual(got.Volumes, want.Volumes) {
		t.Errorf("repoServer.volumes = %+v\nwant %+v", got.Volumes, want.Volumes)
	}
}

func TestChartValuesAreFreshCopies(t *testing.T) {
	a, err := ChartValues()
	if err != nil {
		t.Fatal(err)
	}
	a["repoServer"].(map[string]any)["extraContainers"] = nil
	b, err := ChartValues()
	if err != nil {
		t.Fatal(err)
	}
	if b["repoServer"].(map[string]any)["extraContainers"] == nil {
		t.Fatal("a caller's change reached the next caller")
	}
}
