package platform

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// AllowWorldAnnotation is what nerv-webhook requires on a NetworkPolicy that opens ingress to
// the world; its value is the reason.
const AllowWorldAnnotation = "nerv.dev/allow-world"

// DefaultDenyName is the name of the default-deny NetworkPolicy in every platform namespace.
const DefaultDenyName = "default-deny"

// nsPolicies is what one platform namespace needs beyond DNS and the API server.
type nsPolicies struct {
	namespace string
	// world lists the pods that serve on a LoadBalancer IP to anyone on the network.
	world []worldRule
	// fromAPIServer lists ports the API server calls (admission and conversion webhooks).
	fromAPIServer []int32
	// egressWorld lists ports the namespace's pods reach on the internet (git, charts, ACME).
	egressWorld []int32
	// extra policies (argocd-redis).
	extra []networkingv1.NetworkPolicy
	// private pods are left out of allow-same-namespace; an extra policy says who reaches them.
	private []string
}

type worldRule struct {
	name, reason string
	selector     map[string]string
	ports        []int32
}

func namespacePolicies(c *spec.Cluster) []nsPolicies {
	return []nsPolicies{
		{
			namespace: NamespaceArgoCD,
			world: []worldRule{{name: "allow-world-argocd-server", reason: "the ArgoCD UI and API on " + c.Spec.Network.ServiceIPs.ArgoCD,
				selector: map[string]string{"app.kubernetes.io/name": "argocd-server"}, ports: []int32{8080}}},
			egressWorld: []int32{22, 443},
			extra:       []networkingv1.NetworkPolicy{argocdRedis()},
			private:     []string{"argocd-redis"},
		},
		{namespace: NamespaceMetalLB, fromAPIServer: []int32{9443}},
		{namespace: NamespaceCertManager, fromAPIServer: []int32{10250}, egressWorld: []int32{443}},
		{
			namespace: NamespaceTraefik,
			world: []worldRule{{name: "allow-world-traefik", reason: "the site's ingress (80/443) and the Traefik dashboard on " + c.Spec.Network.ServiceIPs.Traefik + ":8080",
				selector: map[string]string{"app.kubernetes.io/name": "traefik"}, ports: []int32{8000, 8443, 8080}}},
		},
		{
			namespace: NamespaceLonghorn,
			world: []worldRule{{name: "allow-world-longhorn-ui", reason: "the Longhorn UI on " + c.Spec.Network.ServiceIPs.Longhorn,
				selector: map[string]string{"app": "longhorn-ui"}, ports: []int32{8000}}},
			fromAPIServer: []int32{9501, 9502},
		},
		{namespace: NamespaceNERV, fromAPIServer: []int32{9443}},
	}
}

// argocdRedis admits to Redis only ArgoCD's own components: Redis caches every rendered
// manifest, decrypted Secrets included.
func argocdRedis() networkingv1.NetworkPolicy {
	peers := []networkingv1.NetworkPolicyPeer{}
	for _, name := range []string{"argocd-server", "argocd-repo-server", "argocd-application-controller"} {
		peers = append(peers, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"app.kubernetes.io/name": name}}})
	}
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-redis-from-argocd-only", Namespace: NamespaceArgoCD},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "argocd-redis"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers, Ports: tcpPorts(6379)}},
		},
	}
}

func renderPolicies(t nixos.Tree, c *spec.Cluster) error {
	servers, err := serverBlocks(c)
	if err != nil {
		return err
	}
	subnet := c.Spec.Network.Subnet
	var files []string
	for _, ns := range namespacePolicies(c) {
		objs := []any{
			namespaceObject(ns.namespace),
			policy(ns.namespace, DefaultDenyName, nil, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			}),
			policy(ns.namespace, "allow-same-namespace", nil, networkingv1.NetworkPolicySpec{
				PodSelector: exceptNames(ns.private),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}},
			}),
			policy(ns.namespace, "allow-dns", nil, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
						PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
					}},
					Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, 53), port(corev1.ProtocolTCP, 53)},
				}},
			}),
			// k3s serves the API on every server's node IP; pods reach it there after the
			// kubernetes Service is translated.
			policy(ns.namespace, "allow-apiserver", nil, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: servers, Ports: tcpPorts(6443)}},
			}),
		}
		if len(ns.fromAPIServer) > 0 {
			objs = append(objs, policy(ns.namespace, "allow-from-apiserver", nil, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: subnet}}},
					Ports: tcpPorts(ns.fromAPIServer...),
				}},
			}))
		}
		if len(ns.egressWorld) > 0 {
			objs = append(objs, policy(ns.namespace, "allow-egress-internet", nil, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}},
					Ports: tcpPorts(ns.egressWorld...),
				}},
			}))
		}
		for _, w := range ns.world {
			objs = append(objs, policy(ns.namespace, w.name, map[string]string{AllowWorldAnnotation: w.reason}, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: w.selector},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: tcpPorts(w.ports...)}},
			}))
		}
		if ns.namespace == NamespaceTraefik {
			// Traefik forwards to backends in every namespace.
			objs = append(objs, policy(ns.namespace, "allow-egress-to-backends", nil, networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "traefik"}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}},
			}))
		} else {
			objs = append(objs, policy(ns.namespace, "allow-from-traefik", nil, networkingv1.NetworkPolicySpec{
				PodSelector: exceptNames(ns.private),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": NamespaceTraefik}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "traefik"}},
				}}}},
			}))
		}
		for i := range ns.extra {
			ns.extra[i].TypeMeta = metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"}
			objs = append(objs, clean(&ns.extra[i]))
		}
		name := ns.namespace + ".yaml"
		files = append(files, name)
		if err := put(t, PoliciesDir, name, fmt.Sprintf("# Namespace %s: default deny, then exactly what it needs.\n", ns.namespace), objs...); err != nil {
			return err
		}
	}
	return put(t, PoliciesDir, "kustomization.yaml", "", kustomization(files...))
}

// exceptNames selects every pod but those named (app.kubernetes.io/name) in names.
func exceptNames(names []string) metav1.LabelSelector {
	if len(names) == 0 {
		return metav1.LabelSelector{}
	}
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "app.kubernetes.io/name", Operator: metav1.LabelSelectorOpNotIn, Values: names,
	}}}
}

func namespaceObject(name string) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Namespace",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{"app.kubernetes.io/part-of": "nerv"}},
	}
}

func policy(ns, name string, annotations map[string]string, spec networkingv1.NetworkPolicySpec) any {
	return clean(&networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec:       spec,
	})
}

// clean drops the empty creationTimestamp and status typed objects marshal to.
func clean(np *networkingv1.NetworkPolicy) map[string]any {
	m := map[string]any{
		"apiVersion": np.APIVersion,
		"kind":       np.Kind,
		"metadata":   map[string]any{"name": np.Name, "namespace": np.Namespace},
		"spec":       np.Spec,
	}
	if len(np.Annotations) > 0 {
		m["metadata"].(map[string]any)["annotations"] = np.Annotations
	}
	return m
}

func port(proto corev1.Protocol, p int32) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(p)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &v}
}

func tcpPorts(ports ...int32) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, p := range ports {
		out = append(out, port(corev1.ProtocolTCP, p))
	}
	return out
}

// serverBlocks are /32 peers for every server's node IP (where k3s serves the API).
func serverBlocks(c *spec.Cluster) ([]networkingv1.NetworkPolicyPeer, error) {
	var peers []networkingv1.NetworkPolicyPeer
	for i, n := range c.Spec.Nodes {
		if !n.IsServer() {
			continue
		}
		a, err := netip.ParseAddr(n.IP)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.nodes[%d].ip: %w", c.Source(), i, err)
		}
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(a, 32).String()}})
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("%s: spec.nodes: no server to reach the API on", c.Source())
	}
	return peers, nil
}
