package sopsplugin

import (
	"os"
	"reflect"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoServer is a stand-in for the argo-cd chart's argocd-repo-server Deployment, with the
// var-files and plugins volumes the chart declares for sidecar plugins.
const repoServer = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-repo-server
spec:
  selector:
    matchLabels: {app: repo-server}
  template:
    metadata:
      labels: {app: repo-server}
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

	// Build the Component the way a user does, onto the stand-in repo-server.
	fs := filesys.MakeFsInMemory()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fs.WriteFile("/app/repo-server.yaml", []byte(repoServer)))
	must(fs.WriteFile("/app/kustomization.yaml", []byte("resources: [repo-server.yaml]\ncomponents: [../component]\n")))
	must(fs.WriteFile("/component/plugin.yaml", PluginYAML))
	must(fs.WriteFile("/component/repo-server-sidecar.yaml", SidecarPatchYAML))
	kust, err := os.ReadFile("kustomization.yaml")
	must(err)
	must(fs.WriteFile("/component/kustomization.yaml", kust))
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/app")
	must(err)
	var pod map[string]any
	var configMap string
	for _, r := range res.Resources() {
		switch r.GetKind() {
		case "Deployment":
			m, err := r.Map()
			must(err)
			pod = m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		case "ConfigMap":
			configMap = r.GetName()
		}
	}
	if pod == nil || configMap == "" {
		t.Fatalf("the Component built no Deployment or no ConfigMap: %v", res.Resources())
	}

	containers := pod["containers"].([]any)
	if len(containers) != 2 {
		t.Fatalf("the Component gives argocd-repo-server %d containers, want the repo-server and the sidecar", len(containers))
	}
	var sidecar map[string]any
	for _, c := range containers {
		if c := normalize(t, c).(map[string]any); c["name"] != "argocd-repo-server" {
			sidecar = c
		}
	}
	for _, m := range sidecar["volumeMounts"].([]any) {
		if m := m.(map[string]any); m["name"] == ConfigVolume {
			m["subPath"] = plugin.Metadata.Name + ".yaml" // the chart's key in argocd-cmp-cm
		}
	}
	rs := v["repoServer"].(map[string]any)
	extra := rs["extraContainers"].([]any)
	if len(extra) != 1 || !reflect.DeepEqual(normalize(t, extra[0]), sidecar) {
		t.Errorf("repoServer.extraContainers = %v\nwant the Component's sidecar %v", extra, sidecar)
	}

	var want []any
	for _, vol := range pod["volumes"].([]any) {
		vol := normalize(t, vol).(map[string]any)
		switch vol["name"] {
		case "var-files", "plugins": // the chart's own
			continue
		case ConfigVolume:
			if vol["configMap"].(map[string]any)["name"] != configMap {
				t.Errorf("the Component mounts ConfigMap %v, it generates %s", vol["configMap"], configMap)
			}
			vol["configMap"] = map[string]any{"name": CMPConfigMap}
		}
		want = append(want, vol)
	}
	if got := rs["volumes"]; !reflect.DeepEqual(normalize(t, got), normalize(t, want)) {
		t.Errorf("repoServer.volumes = %v\nwant %v", got, want)
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

// normalize round-trips v through YAML so that numbers and maps compare alike.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
