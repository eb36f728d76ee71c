package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilversion "k8s.io/apimachinery/pkg/util/version"
)

// LabelControlPlane marks k3s servers.
const LabelControlPlane = "node-role.kubernetes.io/control-plane"

// maxKubeletSkew is how many minor versions a kubelet may trail the apiserver
// (https://kubernetes.io/releases/version-skew-policy/).
const maxKubeletSkew = 3

func kubernetesChecks() []Check {
	return []Check{
		{
			ID: "kubernetes-api", Category: CategoryKubernetes, Severity: SeverityError,
			Name: "API reachable",
			Hint: "the apiserver answered the probe but not this check: look at the k3s service on the servers (journalctl -u k3s)",
			Run:  checkAPI,
		},
		{
			ID: "kubernetes-nodes-ready", Category: CategoryKubernetes, Severity: SeverityError,
			Name: "nodes Ready without pressure",
			Hint: "kubectl describe node NAME shows the condition's reason; on the node, journalctl -u k3s and df -h / free -m for pressure",
			Run:  checkNodesReady,
		},
		{
			ID: "kubernetes-version-skew", Category: CategoryKubernetes, Severity: SeverityError,
			Name: "kubelet versions within the skew policy",
			Hint: "upgrade the lagging nodes (kubectl nerv node upgrade) so kubelets are at most 3 minors behind and never ahead of the apiserver",
			Run:  checkVersionSkew,
		},
		{
			ID: "kubernetes-server-count", Category: CategoryKubernetes, Severity: SeverityWarning,
			Name: "odd number of servers (embedded etcd)",
			Hint: "add or remove a server (kubectl nerv join --role server / kubectl nerv node remove): an even count tolerates no more failures than one fewer",
			Run:  checkServerCount,
		},
		{
			ID: "kubernetes-spec-nodes", Category: CategoryKubernetes, Severity: SeverityError,
			Name: "nodes match the spec",
			Hint: "join the missing nodes (kubectl nerv join NAME), remove strays, and fix IPs in nerv.yaml or on the hosts so both agree",
			Run:  checkSpecNodes,
		},
	}
}

func checkAPI(ctx context.Context, s *Snapshot) Outcome {
	v, err := s.Version(ctx)
	if err != nil {
		return fromError(err)
	}
	return Passf("Kubernetes %s (%s)", v.GitVersion, v.Platform)
}

// nodeCondition returns the status of the node's condition of type t ("" if absent).
func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) (corev1.ConditionStatus, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status, c.Message
		}
	}
	return "", ""
}

// pressureConditions are the node conditions that are healthy when False.
var pressureConditions = []corev1.NodeConditionType{
	corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable,
}

func checkNodesReady(ctx context.Context, s *Snapshot) Outcome {
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return fromError(err)
	}
	if len(nodes) == 0 {
		return Failf(nil, "the cluster has no nodes")
	}
	var bad []string
	for i := range nodes {
		n := &nodes[i]
		var why []string
		switch st, msg := nodeCondition(n, corev1.NodeReady); st {
		case corev1.ConditionTrue:
		case "":
			why = append(why, "no Ready condition yet")
		default:
			why = append(why, fmt.Sprintf("Ready=%s %s", st, msg))
		}
		for _, t := range pressureConditions {
			if st, msg := nodeCondition(n, t); st == corev1.ConditionTrue {
				why = append(why, fmt.Sprintf("%s %s", t, msg))
			}
		}
		if len(why) > 0 {
			bad = append(bad, n.Name+": "+strings.TrimSpace(strings.Join(why, "; ")))
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d nodes not Ready or under pressure", len(bad), len(nodes))
	}
	return Passf("%d nodes Ready, none under pressure", len(nodes))
}

func checkVersionSkew(ctx context.Context, s *Snapshot) Outcome {
	v, err := s.Version(ctx)
	if err != nil {
		return fromError(err)
	}
	api, err := utilversion.ParseGeneric(v.GitVersion)
	if err != nil {
		return Skipf("cannot parse the apiserver version %q: %v", v.GitVersion, err)
	}
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return fromError(err)
	}
	var bad []string
	versions := map[string]int{}
	for i := range nodes {
		n := &nodes[i]
		kv := n.Status.NodeInfo.KubeletVersion
		versions[kv]++
		k, err := utilversion.ParseGeneric(kv)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: unreadable kubelet version %q", n.Name, kv))
			continue
		}
		switch {
		case k.Major() != api.Major() || k.Minor() > api.Minor():
			bad = append(bad, fmt.Sprintf("%s: kubelet %s is newer than the apiserver %s", n.Name, kv, v.GitVersion))
		case api.Minor()-k.Minor() > maxKubeletSkew:
			bad = append(bad, fmt.Sprintf("%s: kubelet %s is %d minor versions behind the apiserver %s (at most %d allowed)", n.Name, kv, api.Minor()-k.Minor(), v.GitVersion, maxKubeletSkew))
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d nodes outside the version skew policy", len(bad))
	}
	var parts []string
	for _, kv := range sortedKeys(versions) {
		parts = append(parts, fmt.Sprintf("%s ×%d", kv, versions[kv]))
	}
	return Passf("apiserver %s; kubelets %s", v.GitVersion, strings.Join(parts, ", "))
}

func checkServerCount(ctx context.Context, s *Snapshot) Outcome {
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return fromError(err)
	}
	var servers []string
	for i := range nodes {
		if _, ok := nodes[i].Labels[LabelControlPlane]; ok {
			servers = append(servers, nodes[i].Name)
		}
	}
	sort.Strings(servers)
	switch {
	case len(servers) == 0:
		return Skipf("no node is labelled %s: not a k3s cluster with embedded etcd", LabelControlPlane)
	case len(servers)%2 == 0:
		return Failf(servers, "%d servers: an even number tolerates as many failures as %d", len(servers), len(servers)-1)
	}
	return Passf("%d servers (%s), tolerating %d failures", len(servers), strings.Join(servers, ", "), (len(servers)-1)/2)
}

// nodeInternalIP returns the node's InternalIP address ("" if none).
func nodeInternalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

func checkSpecNodes(ctx context.Context, s *Snapshot) Outcome {
	if s.Spec == nil {
		return Skipf("needs --spec nerv.yaml")
	}
	nodes, err := s.Nodes(ctx)
	if err != nil {
		return fromError(err)
	}
	byName := make(map[string]*corev1.Node, len(nodes))
	for i := range nodes {
		byName[nodes[i].Name] = &nodes[i]
	}
	var bad []string
	inSpec := map[string]bool{}
	for _, sn := range s.Spec.Spec.Nodes {
		inSpec[sn.Name] = true
		n, ok := byName[sn.Name]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: in the spec (%s, %s) but not in the cluster", sn.Name, sn.IP, sn.Role))
			continue
		}
		if ip := nodeInternalIP(n); ip != sn.IP {
			bad = append(bad, fmt.Sprintf("%s: InternalIP is %q, the spec says %s", sn.Name, ip, sn.IP))
		}
		_, isServer := n.Labels[LabelControlPlane]
		if isServer != sn.IsServer() {
			role := "agent"
			if isServer {
				role = "server"
			}
			bad = append(bad, fmt.Sprintf("%s: runs as %s, the spec says %s", sn.Name, role, sn.Role))
		}
	}
	for _, name := range sortedKeys(byName) {
		if !inSpec[name] {
			bad = append(bad, fmt.Sprintf("%s: in the cluster but not in the spec", name))
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d differences between the spec and the cluster", len(bad))
	}
	return Passf("%d nodes as in the spec, with their IPs and roles", len(s.Spec.Spec.Nodes))
}
