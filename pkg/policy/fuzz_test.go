package policy

import (
	"encoding/json"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FuzzEvaluate feeds arbitrary objects through both entry points (typed decode and
// unstructured) and checks the engine never panics and always answers coherently.
func FuzzEvaluate(f *testing.F) {
	seeds := []runtime.Object{
		deployment("web", podSpec(container("app", goodResources()), container("side", corev1.ResourceRequirements{}))),
		pod("web", map[string]string{"app": "web"}, podSpec(container("app", corev1.ResourceRequirements{Requests: res("cpu", "1", "memory", "1Gi"), Limits: res("cpu", "9", "memory", "1Gi")}))),
		netpol("open", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}}, nil,
			networkingv1.NetworkPolicyIngressRule{}, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}}}}),
	}
	kinds := []string{"apps/v1 Deployment", "v1 Pod", "networking.k8s.io/v1 NetworkPolicy"}
	for i, s := range seeds {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		gv, kind, _ := cutSpace(kinds[i])
		m["apiVersion"], m["kind"] = gv, kind
		b, _ = json.Marshal(m)
		f.Add(b, uint8(i))
	}
	f.Add([]byte(`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"annotations":{"nerv.dev/exempt":",resources,,"}},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[{"name":"a","resources":{"limits":{"memory":"1e3"}}}]}}}}}}`), uint8(0))
	f.Add([]byte(`{"apiVersion":"v1","kind":"ReplicationController","spec":{}}`), uint8(1))

	e := engineFor(f, func(c *Config) {
		c.Policies.Resources.Maximums = map[string]string{"limits.memory": "2Gi", "requests.cpu": "4"}
		c.Policies.Resources.MaxLimitRequestRatio = map[string]string{"cpu": "4"}
		c.Policies.Network.Mode = ModeWarn
	})
	view := &StaticNamespace{
		Policies: []*networkingv1.NetworkPolicy{netpol("db", metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, nil), netpol("open", metav1.LabelSelector{}, nil)},
		Pods:     []PodInfo{{Name: "web-0", Labels: map[string]string{"app": "web"}}},
	}
	ops := []Operation{OperationCreate, OperationUpdate, OperationDelete}

	f.Fuzz(func(t *testing.T, data []byte, opByte uint8) {
		op := ops[int(opByte)%len(ops)]
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err == nil {
			d1, err1 := e.Evaluate(Request{Operation: op, Object: u, Namespace: "fuzz"}, view)
			d2, err2 := e.Evaluate(Request{Operation: op, Object: u, Namespace: "fuzz"}, view)
			if (err1 == nil) != (err2 == nil) || !slices.Equal(fields(d1), fields(d2)) {
				t.Fatalf("evaluation is not deterministic: %q / %q", fields(d1), fields(d2))
			}
			checkCoherent(t, d1)
		}
		var tm metav1.TypeMeta
		if json.Unmarshal(data, &tm) == nil {
			gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
			if obj, err := Decode(gvk, data); err == nil {
				d, err := e.Evaluate(Request{Operation: op, Object: obj, Namespace: "fuzz"}, view)
				if err != nil {
					t.Fatalf("typed object rejected: %v", err)
				}
				checkCoherent(t, d)
			}
		}
	})
}

func checkCoherent(t *testing.T, d Decision) {
	t.Helper()
	deny := false
	for _, r := range d.Results {
		if !r.Mode.Valid() || (r.Verdict == VerdictExempt) != (r.ExemptBy != "") {
			t.Fatalf("incoherent result %+v", r)
		}
		deny = deny || r.Verdict == VerdictDeny
	}
	for _, v := range d.Violations {
		if v.Policy == "" || v.Field == "" || v.Message == "" || !v.Mode.Valid() {
			t.Fatalf("incomplete violation %+v", v)
		}
	}
	if d.Denied() != deny {
		t.Fatalf("Denied() = %v but results %+v", d.Denied(), d.Results)
	}
}

func cutSpace(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
