package platform

import (
	sopsplugin "github.com/nerv-platform/nerv/manifests/argocd-sops-plugin"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// ArgoCDValues are the argo-cd chart values ArgoCD manages itself with: the server on its
// fixed LoadBalancer IP, Redis password-protected (the chart's default, kept explicit: Redis
// caches rendered manifests, decrypted Secrets included), and argocd-sops-plugin as a
// repo-server sidecar (SopsPluginValues).
func ArgoCDValues(c *spec.Cluster) map[string]any {
	v := SopsPluginValues()
	v["server"] = map[string]any{
		"service": map[string]any{
			"type":        "LoadBalancer",
			"annotations": map[string]any{"metallb.io/loadBalancerIPs": c.Spec.Network.ServiceIPs.ArgoCD},
		},
	}
	v["redisSecretInit"] = map[string]any{"enabled": true}
	return v
}

// SopsPluginValues are the argo-cd chart values that install argocd-sops-plugin as a
// repo-server sidecar; see sopsplugin.ChartValues.
func SopsPluginValues() map[string]any {
	v, err := sopsplugin.ChartValues()
	if err != nil {
		// The inputs are files embedded at build time, checked by sopsplugin's tests.
		panic(err)
	}
	return v
}
