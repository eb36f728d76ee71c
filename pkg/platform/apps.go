package platform

import (
	"fmt"
	"path"
	"strconv"

	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// Sync waves: the namespaces and their NetworkPolicies first (nerv-webhook admits no Pod that
// no NetworkPolicy selects), then the operators whose CRDs others need, then the objects of
// those CRDs and the webhook (its certificate comes from cert-manager), then the workloads.
const (
	wavePolicies  = -40
	waveOperators = -30
	waveConfig    = -20
	waveWebhook   = -10
	waveWorkloads = 0
)

// Namespaces of the platform services.
const (
	NamespaceArgoCD      = "argocd"
	NamespaceMetalLB     = "metallb-system"
	NamespaceCertManager = "cert-manager"
	NamespaceTraefik     = "traefik"
	NamespaceLonghorn    = "longhorn-system"
	NamespaceNERV        = "nerv-system"
)

// app is one child Application of the app-of-apps.
type app struct {
	name, namespace string
	wave            int
	// Either a Helm chart from a chart repository ...
	chartRepo, chart, version string
	values                    map[string]any
	// ... or a directory of the site's GitOps repository.
	repoPath string
}

func apps(c *spec.Cluster) []app {
	ips := c.Spec.Network.ServiceIPs
	base := c.Spec.GitOps.Path
	return []app{
		{name: "policies", namespace: "default", wave: wavePolicies, repoPath: PoliciesDir},
		{name: "metallb", namespace: NamespaceMetalLB, wave: waveOperators,
			chartRepo: "https://metallb.github.io/metallb", chart: "metallb", version: MetalLBChartVersion},
		{name: "cert-manager", namespace: NamespaceCertManager, wave: waveOperators,
			chartRepo: "https://charts.jetstack.io", chart: "cert-manager", version: CertManagerChartVersion,
			values: map[string]any{"crds": map[string]any{"enabled": true}}},
		{name: "metallb-config", namespace: NamespaceMetalLB, wave: waveConfig, repoPath: path.Join(base, "metallb-config")},
		{name: "cert-manager-config", namespace: NamespaceCertManager, wave: waveConfig, repoPath: path.Join(base, "cert-manager-config")},
		{name: "nerv-webhook", namespace: NamespaceNERV, wave: waveWebhook, repoPath: "manifests/webhook"},
		{name: "argocd", namespace: NamespaceArgoCD, wave: waveWorkloads,
			chartRepo: "https://argoproj.github.io/argo-helm", chart: "argo-cd", version: ArgoCDChartVersion,
			values: ArgoCDValues(c)},
		{name: "traefik", namespace: NamespaceTraefik, wave: waveWorkloads,
			chartRepo: "https://traefik.github.io/charts", chart: "traefik", version: TraefikChartVersion,
			values: map[string]any{
				"service": map[string]any{
					"type":        "LoadBalancer",
					"annotations": map[string]any{"metallb.io/loadBalancerIPs": ips.Traefik},
				},
				// The dashboard on the Traefik entrypoint, exposed on the LoadBalancer at :8080.
				"ingressRoute": map[string]any{"dashboard": map[string]any{"enabled": true, "entryPoints": []any{"traefik"}}},
				"ports": map[string]any{"traefik": map[string]any{
					"port": 8080, "exposedPort": 8080, "expose": map[string]any{"default": true},
				}},
				"resources": resources("100m", "128Mi", "256Mi"),
			}},
		{name: "longhorn", namespace: NamespaceLonghorn, wave: waveWorkloads,
			chartRepo: "https://charts.longhorn.io", chart: "longhorn", version: LonghornChartVersion,
			values: map[string]any{
				"service":         map[string]any{"ui": map[string]any{"type": "LoadBalancer", "loadBalancerIP": ips.Longhorn}},
				"persistence":     map[string]any{"defaultClass": true, "defaultClassReplicaCount": c.StorageReplicas()},
				"defaultSettings": map[string]any{"defaultReplicaCount": c.StorageReplicas()},
			}},
	}
}

func resources(cpu, memRequest, memLimit string) map[string]any {
	return map[string]any{
		"requests": map[string]any{"cpu": cpu, "memory": memRequest},
		"limits":   map[string]any{"memory": memLimit},
	}
}

// application is an argoproj.io/v1alpha1 Application.
func application(c *spec.Cluster, a app) map[string]any {
	var source map[string]any
	if a.chart != "" {
		source = map[string]any{"repoURL": a.chartRepo, "chart": a.chart, "targetRevision": a.version}
		if a.values != nil {
			source["helm"] = map[string]any{"releaseName": a.name, "valuesObject": a.values}
		}
	} else {
		source = map[string]any{"repoURL": c.Spec.GitOps.RepoURL, "targetRevision": c.Spec.GitOps.Revision, "path": a.repoPath}
	}
	return map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Application",
		"metadata": map[string]any{
			"name":        a.name,
			"namespace":   NamespaceArgoCD,
			"labels":      map[string]any{"app.kubernetes.io/part-of": "nerv", "nerv.dev/cluster": c.Metadata.Name},
			"annotations": map[string]any{"argocd.argoproj.io/sync-wave": strconv.Itoa(a.wave)},
			// Deleting the Application deletes what it deployed, as an app-of-apps child should.
			"finalizers": []any{"resources-finalizer.argocd.argoproj.io"},
		},
		"spec": map[string]any{
			"project":     "default",
			"source":      source,
			"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": a.namespace},
			"syncPolicy": map[string]any{
				"automated":   map[string]any{"prune": true, "selfHeal": true},
				"syncOptions": []any{"CreateNamespace=true", "ServerSideApply=true"},
				"retry": map[string]any{"limit": 5, "backoff": map[string]any{
					"duration": "10s", "factor": 2, "maxDuration": "3m"}},
			},
		},
	}
}

// RootApplication is the app-of-apps root: it tracks spec.gitops.path, where every child
// Application lives, itself included, so that ArgoCD keeps the root in sync too.
func RootApplication(c *spec.Cluster) map[string]any {
	root := application(c, app{name: "root", namespace: NamespaceArgoCD, repoPath: c.Spec.GitOps.Path})
	meta := root["metadata"].(map[string]any)
	delete(meta, "annotations")
	// Never cascade-delete the whole platform because the root was deleted.
	delete(meta, "finalizers")
	return root
}

func renderPlatform(t nixos.Tree, c *spec.Cluster) error {
	dir := c.Spec.GitOps.Path
	if dir == "" {
		dir = PlatformDir
	}
	files := []string{"root.yaml"}
	if err := put(t, dir, "root.yaml", "# The root app-of-apps; the NixOS layer applies it once at bootstrap, ArgoCD keeps it.\n", RootApplication(c)); err != nil {
		return err
	}
	for _, a := range apps(c) {
		name := a.name + ".yaml"
		files = append(files, name)
		if err := put(t, dir, name, "", application(c, a)); err != nil {
			return err
		}
	}
	if err := put(t, dir, "kustomization.yaml", "", kustomization(files...)); err != nil {
		return err
	}
	if err := renderMetalLBConfig(t, c, path.Join(dir, "metallb-config")); err != nil {
		return err
	}
	return renderCertManagerConfig(t, path.Join(dir, "cert-manager-config"))
}

func renderMetalLBConfig(t nixos.Tree, c *spec.Cluster, dir string) error {
	pool := map[string]any{
		"apiVersion": "metallb.io/v1beta1",
		"kind":       "IPAddressPool",
		"metadata":   map[string]any{"name": "nerv", "namespace": NamespaceMetalLB},
		"spec": map[string]any{
			"addresses": []any{c.Spec.Network.LoadBalancerPool.String()},
			// Only Services that ask for an address (the platform's fixed IPs, or an explicit
			// annotation) get one from this small pool.
			"autoAssign": true,
		},
	}
	l2 := map[string]any{
		"apiVersion": "metallb.io/v1beta1",
		"kind":       "L2Advertisement",
		"metadata":   map[string]any{"name": "nerv", "namespace": NamespaceMetalLB},
		"spec":       map[string]any{"ipAddressPools": []any{"nerv"}},
	}
	if err := put(t, dir, "ipaddresspool.yaml", fmt.Sprintf("# MetalLB answers ARP for %s on the node network.\n", c.Spec.Network.LoadBalancerPool), pool, l2); err != nil {
		return err
	}
	return put(t, dir, "kustomization.yaml", "", kustomization("ipaddresspool.yaml"))
}

func renderCertManagerConfig(t nixos.Tree, dir string) error {
	selfSigned := map[string]any{
		"apiVersion": "cert-manager.io/v1",
		"kind":       "ClusterIssuer",
		"metadata":   map[string]any{"name": "selfsigned"},
		"spec":       map[string]any{"selfSigned": map[string]any{}},
	}
	ca := map[string]any{
		"apiVersion": "cert-manager.io/v1",
		"kind":       "Certificate",
		"metadata":   map[string]any{"name": "nerv-ca", "namespace": NamespaceCertManager},
		"spec": map[string]any{
			"isCA":       true,
			"commonName": "nerv-ca",
			"secretName": "nerv-ca",
			"duration":   "87600h",
			"privateKey": map[string]any{"algorithm": "ECDSA", "size": 256},
			"issuerRef":  map[string]any{"name": "selfsigned", "kind": "ClusterIssuer", "group": "cert-manager.io"},
		},
	}
	caIssuer := map[string]any{
		"apiVersion": "cert-manager.io/v1",
		"kind":       "ClusterIssuer",
		"metadata":   map[string]any{"name": "nerv-ca"},
		"spec":       map[string]any{"ca": map[string]any{"secretName": "nerv-ca"}},
	}
	if err := put(t, dir, "issuers.yaml", "# A self-signed root bootstraps the site's own CA; services get certificates from nerv-ca.\n", selfSigned, ca, caIssuer); err != nil {
		return err
	}
	return put(t, dir, "kustomization.yaml", "", kustomization("issuers.yaml"))
}
