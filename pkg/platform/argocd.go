package platform

import "github.com/nerv-platform/nerv/pkg/spec"

// ArgoCDValues are the argo-cd chart values ArgoCD manages itself with: the server on its
// fixed LoadBalancer IP and Redis password-protected (the chart's default, kept explicit:
// Redis caches rendered manifests, decrypted Secrets included).
func ArgoCDValues(c *spec.Cluster) map[string]any {
	return map[string]any{
		"server": map[string]any{
			"service": map[string]any{
				"type":        "LoadBalancer",
				"annotations": map[string]any{"metallb.io/loadBalancerIPs": c.Spec.Network.ServiceIPs.ArgoCD},
			},
		},
		"redisSecretInit": map[string]any{"enabled": true},
	}
}
