package policy

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BenchmarkEvaluate measures one evaluation in a namespace with a realistic number of
// NetworkPolicies (a default-deny last, so every other one is tried first) and Pods.
func BenchmarkEvaluate(b *testing.B) {
	var nps []*networkingv1.NetworkPolicy
	var pods []PodInfo
	for i := range 10 {
		app := fmt.Sprintf("app-%d", i)
		nps = append(nps, netpol(app, metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}, nil))
		for j := range 5 {
			pods = append(pods, PodInfo{Name: fmt.Sprintf("%s-%d", app, j), Labels: map[string]string{"app": app}})
		}
	}
	nps = append(nps, defaultDeny())
	view := &StaticNamespace{Policies: nps, Pods: pods}
	e := engineFor(b, func(c *Config) {
		c.Policies.Resources.Maximums = map[string]string{"limits.memory": "8Gi"}
		c.Policies.Resources.MaxLimitRequestRatio = map[string]string{"memory": "4"}
	})
	cases := []struct {
		name string
		op   Operation
		obj  runtime.Object
	}{
		{"compliant-deployment", OperationCreate, deployment("web", podSpec(container("app", goodResources()), container("proxy", goodResources())))},
		{"violating-deployment", OperationCreate, deployment("web", podSpec(container("app", corev1.ResourceRequirements{}), container("proxy", goodResources())))},
		{"pod", OperationCreate, pod("web", map[string]string{"app": "web"}, podSpec(container("app", goodResources())))},
		{"networkpolicy", OperationCreate, netpol("web", metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, nil, networkingv1.NetworkPolicyIngressRule{})},
		{"networkpolicy-delete", OperationDelete, nps[3]},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req := Request{Operation: c.op, Object: c.obj}
			for b.Loop() {
				if _, err := e.Evaluate(req, view); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
