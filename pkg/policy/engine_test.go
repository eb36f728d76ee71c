package policy

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// res builds a ResourceList from "requests.cpu=100m"-free pairs: res("cpu", "100m", "memory", "1Gi").
func res(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func goodResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "128Mi"), Limits: res("memory", "256Mi")}
}

func container(name string, r corev1.ResourceRequirements) corev1.Container {
	return corev1.Container{Name: name, Image: "registry.example/app:1", Resources: r}
}

func podSpec(cs ...corev1.Container) corev1.PodSpec { return corev1.PodSpec{Containers: cs} }

func deployment(name string, spec corev1.PodSpec) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec:       spec,
		}},
	}
}

func pod(name string, lbls map[string]string, spec corev1.PodSpec) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: lbls}, Spec: spec}
}

func netpol(name string, sel metav1.LabelSelector, types []networkingv1.PolicyType, ingress ...networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: types, Ingress: ingress},
	}
}

func defaultDeny() *networkingv1.NetworkPolicy {
	return netpol("default-deny", metav1.LabelSelector{}, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress})
}

func withNetpols(nps ...*networkingv1.NetworkPolicy) *StaticNamespace {
	return &StaticNamespace{Policies: nps}
}

func engineFor(t testing.TB, mutate func(*Config)) *Engine {
	t.Helper()
	c := DefaultConfig()
	if mutate != nil {
		mutate(c)
	}
	e, err := NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// field lists "policy field" of each violation, the shape the table tests compare.
func fields(d Decision) []string {
	var out []string
	for _, v := range d.Violations {
		out = append(out, v.Policy+" "+v.Field)
	}
	return out
}

type engineCase struct {
	name      string
	config    func(*Config)
	op        Operation
	obj       runtime.Object
	ns        NamespaceView
	want      []string // "policy field" per violation, in order
	wantMsg   []string // substrings that must appear in the messages (joined)
	verdicts  map[string]Verdict
	wantDeny  bool
	namespace string
}

func runEngineCases(t *testing.T, tests []engineCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engineFor(t, tt.config)
			d, err := e.Evaluate(Request{Operation: tt.op, Object: tt.obj, Namespace: tt.namespace}, tt.ns)
			if err != nil {
				t.Fatal(err)
			}
			if got := fields(d); !slices.Equal(got, tt.want) {
				t.Errorf("violations:\n got  %q\n want %q", got, tt.want)
			}
			var msgs []string
			for _, v := range d.Violations {
				msgs = append(msgs, v.Message)
				if v.Object != d.Object || v.Mode == "" {
					t.Errorf("violation %+v does not carry the object %+v and a mode", v, d.Object)
				}
			}
			joined := strings.Join(msgs, "\n")
			for _, w := range tt.wantMsg {
				if !strings.Contains(joined, w) {
					t.Errorf("messages %q do not contain %q", joined, w)
				}
			}
			for p, want := range tt.verdicts {
				got := Verdict("not evaluated")
				for _, r := range d.Results {
					if r.Policy == p {
						got = r.Verdict
					}
				}
				if got != want {
					t.Errorf("verdict of %s = %s, want %s (results %+v)", p, got, want, d.Results)
				}
			}
			if d.Denied() != tt.wantDeny {
				t.Errorf("Denied() = %v, want %v", d.Denied(), tt.wantDeny)
			}
		})
	}
}

func TestResourcesPolicy(t *testing.T) {
	covered := withNetpols(defaultDeny())
	noLimits := corev1.ResourceRequirements{Requests: res("cpu", "100m", "memory", "128Mi")}
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report", Namespace: "shop"}}
	cron.Spec.JobTemplate.Spec.Template.Spec = podSpec(container("report", corev1.ResourceRequirements{}))
	initPod := pod("migrate", nil, podSpec(container("app", goodResources())))
	initPod.Spec.InitContainers = []corev1.Container{container("wait", noLimits)}

	runEngineCases(t, []engineCase{
		{
			name: "deployment without resources", obj: deployment("web", podSpec(container("app", corev1.ResourceRequirements{}))), ns: covered,
			want: []string{
				"resources spec.template.spec.containers[0].resources.requests.cpu",
				"resources spec.template.spec.containers[0].resources.requests.memory",
				"resources spec.template.spec.containers[0].resources.limits.memory",
			},
			wantMsg:  []string{`container "app" does not set limits.memory`, "e.g. limits.memory: 256Mi"},
			verdicts: map[string]Verdict{PolicyResources: VerdictDeny, PolicyNetwork: VerdictPass},
			wantDeny: true,
		},
		{
			name: "compliant deployment", obj: deployment("web", podSpec(container("app", goodResources()))), ns: covered,
			verdicts: map[string]Verdict{PolicyResources: VerdictPass, PolicyNetwork: VerdictPass},
		},
		{
			name: "second container without memory limit", ns: covered,
			obj:     deployment("web", podSpec(container("app", goodResources()), container("sidecar", noLimits))),
			want:    []string{"resources spec.template.spec.containers[1].resources.limits.memory"},
			wantMsg: []string{`container "sidecar"`}, wantDeny: true,
		},
		{
			name: "init container of a pod", obj: initPod, ns: covered,
			want: []string{"resources spec.initContainers[0].resources.limits.memory"}, wantDeny: true,
		},
		{
			name: "cronjob path", obj: cron, ns: covered,
			want: []string{
				"resources spec.jobTemplate.spec.template.spec.containers[0].resources.requests.cpu",
				"resources spec.jobTemplate.spec.template.spec.containers[0].resources.requests.memory",
				"resources spec.jobTemplate.spec.template.spec.containers[0].resources.limits.memory",
			}, wantDeny: true,
		},
		{
			name: "required set adds limits.cpu", ns: covered,
			config: func(c *Config) { c.Policies.Resources.Required = append(c.Policies.Resources.Required, "limits.cpu") },
			obj:    deployment("web", podSpec(container("app", goodResources()))),
			want:   []string{"resources spec.template.spec.containers[0].resources.limits.cpu"}, wantMsg: []string{"e.g. limits.cpu: 500m"}, wantDeny: true,
		},
		{
			name: "maximum exceeded", ns: covered,
			config: func(c *Config) { c.Policies.Resources.Maximums = map[string]string{"limits.memory": "1Gi"} },
			obj: deployment("web", podSpec(container("app", corev1.ResourceRequirements{
				Requests: res("cpu", "1", "memory", "1Gi"), Limits: res("memory", "2Gi")}))),
			want:    []string{"resources spec.template.spec.containers[0].resources.limits.memory"},
			wantMsg: []string{"sets limits.memory to 2Gi, above the maximum 1Gi"}, wantDeny: true,
		},
		{
			name: "ratio exceeded", ns: covered,
			config: func(c *Config) {
				c.Policies.Resources.MaxLimitRequestRatio = map[string]string{"cpu": "4", "memory": "2"}
			},
			obj: deployment("web", podSpec(container("app", corev1.ResourceRequirements{
				Requests: res("cpu", "100m", "memory", "128Mi"), Limits: res("cpu", "1", "memory", "256Mi")}))),
			want:    []string{"resources spec.template.spec.containers[0].resources.limits.cpu"},
			wantMsg: []string{"cpu limit/request ratio of 10", "above the maximum 4"}, wantDeny: true,
		},
		{
			name: "warn mode admits", ns: covered,
			config:   func(c *Config) { c.Policies.Resources.Mode = ModeWarn },
			obj:      deployment("web", podSpec(container("app", noLimits))),
			want:     []string{"resources spec.template.spec.containers[0].resources.limits.memory"},
			verdicts: map[string]Verdict{PolicyResources: VerdictWarn},
		},
		{
			name: "audit mode admits", ns: covered,
			config:   func(c *Config) { c.Policies.Resources.Mode = ModeAudit },
			obj:      deployment("web", podSpec(container("app", noLimits))),
			want:     []string{"resources spec.template.spec.containers[0].resources.limits.memory"},
			verdicts: map[string]Verdict{PolicyResources: VerdictAudit},
		},
		{
			name: "kinds without pods are not judged", obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}},
			verdicts: map[string]Verdict{PolicyResources: "not evaluated", PolicyNetwork: "not evaluated"},
		},
	})
}

func TestNetworkPolicy(t *testing.T) {
	web := map[string]string{"app": "web", "tier": "front"}
	good := podSpec(container("app", goodResources()))
	ingressOnly := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly := []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	selectWeb := metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	selectDB := metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	exprWeb := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front", "edge"}}}}
	fromPods := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &selectDB}}}
	open := networkingv1.NetworkPolicyIngressRule{}
	world6 := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &selectDB}, {IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}}}}
	world4 := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8"}}}}}
	lan := networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.1.0/24"}}}}
	allowed := netpol("public", selectWeb, ingressOnly, open)
	allowed.Annotations = map[string]string{AnnotationAllowWorld: "public storefront"}
	blankReason := netpol("public", selectWeb, ingressOnly, open)
	blankReason.Annotations = map[string]string{AnnotationAllowWorld: "  "}
	running := []PodInfo{{Name: "web-2", Labels: web}, {Name: "web-1", Labels: web}, {Name: "db-0", Labels: map[string]string{"app": "db"}}}

	runEngineCases(t, []engineCase{
		{
			name: "pod in a namespace without NetworkPolicy", obj: pod("web", web, good), ns: withNetpols(),
			want:     []string{"network metadata.labels"},
			wantMsg:  []string{`no NetworkPolicy in namespace "shop" selects this Pod`, "app=web,tier=front", "default-deny"},
			verdicts: map[string]Verdict{PolicyResources: VerdictPass, PolicyNetwork: VerdictDeny}, wantDeny: true,
		},
		{name: "nil view is an empty namespace", obj: pod("web", web, good), want: []string{"network metadata.labels"}, wantDeny: true},
		{name: "default-deny selects every pod", obj: pod("web", web, good), ns: withNetpols(defaultDeny())},
		{name: "policy with implied ingress type", obj: pod("web", web, good), ns: withNetpols(netpol("web", selectWeb, nil, fromPods))},
		{name: "policy with matchExpressions", obj: pod("web", web, good), ns: withNetpols(netpol("front", exprWeb, ingressOnly))},
		{
			name: "policy for other pods only", obj: pod("web", web, good), ns: withNetpols(netpol("db", selectDB, ingressOnly)),
			want: []string{"network metadata.labels"}, wantDeny: true,
		},
		{
			name: "egress-only policy does not count", obj: pod("web", web, good), ns: withNetpols(netpol("out", metav1.LabelSelector{}, egressOnly)),
			want: []string{"network metadata.labels"}, wantDeny: true,
		},
		{
			name: "deployment template labels", obj: deployment("web", good), ns: withNetpols(netpol("db", selectDB, ingressOnly)),
			want: []string{"network spec.template.metadata.labels"}, wantMsg: []string{"selects these Pods (labels app=web)"}, wantDeny: true,
		},
		{
			name: "request namespace fills a missing one", obj: &corev1.Pod{Spec: good, ObjectMeta: metav1.ObjectMeta{GenerateName: "web-"}},
			namespace: "team-a", want: []string{"network metadata.labels"}, wantMsg: []string{`namespace "team-a"`}, wantDeny: true,
		},
		{
			name: "world-open rule without from", obj: netpol("public", selectWeb, ingressOnly, fromPods, open),
			want: []string{"network spec.ingress[1].from"}, wantMsg: []string{"no from", AnnotationAllowWorld}, wantDeny: true,
		},
		{
			name: "world-open ipBlocks", obj: netpol("public", selectWeb, nil, world6, world4, lan),
			want:    []string{"network spec.ingress[0].from[1].ipBlock.cidr", "network spec.ingress[1].from[0].ipBlock.cidr"},
			wantMsg: []string{"ipBlock ::/0", "ipBlock 0.0.0.0/0"}, wantDeny: true,
		},
		{name: "world-open with a reason", obj: allowed, verdicts: map[string]Verdict{PolicyNetwork: VerdictPass}},
		{name: "world-open with a blank reason", obj: blankReason, want: []string{"network spec.ingress[0].from"}, wantDeny: true},
		{name: "egress-only policy opens no ingress", obj: netpol("out", selectWeb, egressOnly, open)},
		{name: "a default-deny is fine", obj: defaultDeny()},
		{
			name: "deleting the last policy over running pods", op: OperationDelete, obj: netpol("web", selectWeb, ingressOnly),
			ns:      &StaticNamespace{Policies: []*networkingv1.NetworkPolicy{netpol("web", selectWeb, ingressOnly), netpol("db", selectDB, ingressOnly)}, Pods: running},
			want:    []string{"network spec.podSelector"},
			wantMsg: []string{"2 running Pod(s) for ingress (web-1, web-2)", "create a replacement first"}, wantDeny: true,
		},
		{
			name: "deleting a policy another one backs up", op: OperationDelete, obj: netpol("web", selectWeb, ingressOnly),
			ns:       &StaticNamespace{Policies: []*networkingv1.NetworkPolicy{netpol("web", selectWeb, ingressOnly), defaultDeny()}, Pods: running},
			verdicts: map[string]Verdict{PolicyNetwork: VerdictPass},
		},
		{
			name: "deleting a policy selecting no running pod", op: OperationDelete, obj: netpol("web", selectWeb, ingressOnly),
			ns: &StaticNamespace{Policies: []*networkingv1.NetworkPolicy{netpol("web", selectWeb, ingressOnly)}, Pods: running[2:]},
		},
		{
			name: "deleting in a terminating namespace", op: OperationDelete, obj: netpol("web", selectWeb, ingressOnly),
			ns: &StaticNamespace{IsTerminating: true, Policies: []*networkingv1.NetworkPolicy{netpol("web", selectWeb, ingressOnly)}, Pods: running},
		},
		{
			name: "delete refused only in enforce mode", op: OperationDelete, obj: netpol("web", selectWeb, ingressOnly),
			config: func(c *Config) { c.Policies.Network.Mode = ModeWarn },
			ns:     &StaticNamespace{Policies: []*networkingv1.NetworkPolicy{netpol("web", selectWeb, ingressOnly)}, Pods: running},
			want:   []string{"network spec.podSelector"}, verdicts: map[string]Verdict{PolicyNetwork: VerdictWarn},
		},
		{
			name: "deleting a pod is not judged", op: OperationDelete, obj: pod("web", web, podSpec(container("app", corev1.ResourceRequirements{}))),
			verdicts: map[string]Verdict{PolicyResources: "not evaluated", PolicyNetwork: "not evaluated"},
		},
	})
}

func TestExemptions(t *testing.T) {
	bad := podSpec(container("app", corev1.ResourceRequirements{}))
	annotated := func(ann map[string]string) *appsv1.Deployment {
		d := deployment("web", bad)
		d.Annotations = ann
		return d
	}
	templateAnnotated := deployment("web", bad)
	templateAnnotated.Spec.Template.Annotations = map[string]string{AnnotationExempt: "resources, network", AnnotationExemptReason: "vendor chart"}
	inKubeSystem := deployment("coredns", bad)
	inKubeSystem.Namespace = "kube-system"
	deleting := deployment("web", bad)
	deleting.DeletionTimestamp = &metav1.Time{}
	allMissing := []string{
		"resources spec.template.spec.containers[0].resources.requests.cpu",
		"resources spec.template.spec.containers[0].resources.requests.memory",
		"resources spec.template.spec.containers[0].resources.limits.memory",
	}

	runEngineCases(t, []engineCase{
		{name: "default exempt namespace", obj: inKubeSystem, verdicts: map[string]Verdict{PolicyResources: VerdictExempt, PolicyNetwork: VerdictExempt}},
		{
			name: "exempt namespaces replaced by config", obj: inKubeSystem, ns: withNetpols(defaultDeny()),
			config: func(c *Config) { c.ExemptNamespaces = []string{} }, want: allMissing, wantDeny: true,
		},
		{
			name: "namespace label", obj: deployment("web", bad),
			ns:       &StaticNamespace{NamespaceLabels: map[string]string{LabelPolicy: LabelPolicyExempt}},
			verdicts: map[string]Verdict{PolicyResources: VerdictExempt, PolicyNetwork: VerdictExempt},
		},
		{
			name: "other namespace label value", obj: deployment("web", bad), ns: &StaticNamespace{NamespaceLabels: map[string]string{LabelPolicy: "strict"}, Policies: []*networkingv1.NetworkPolicy{defaultDeny()}},
			want: allMissing, wantDeny: true,
		},
		{
			name: "annotation with reason", obj: annotated(map[string]string{AnnotationExempt: "resources", AnnotationExemptReason: "batch job sized by the operator"}),
			want: []string{"network spec.template.metadata.labels"}, wantDeny: true,
			verdicts: map[string]Verdict{PolicyResources: VerdictExempt, PolicyNetwork: VerdictDeny},
		},
		{
			name: "annotation without reason is ignored and says so", obj: annotated(map[string]string{AnnotationExempt: "resources"}), ns: withNetpols(defaultDeny()),
			want: allMissing, wantMsg: []string{"nerv.dev/exempt: resources is ignored without a non-empty nerv.dev/exempt-reason"}, wantDeny: true,
		},
		{
			name: "annotation naming both policies on the template", obj: templateAnnotated,
			verdicts: map[string]Verdict{PolicyResources: VerdictExempt, PolicyNetwork: VerdictExempt},
		},
		{name: "object being deleted", obj: deleting, verdicts: map[string]Verdict{PolicyResources: VerdictExempt}},
	})
}

func TestUnstructuredMatchesTyped(t *testing.T) {
	e := engineFor(t, nil)
	d := deployment("web", podSpec(container("app", goodResources()), container("sidecar", corev1.ResourceRequirements{})))
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("apps/v1")
	u.SetKind("Deployment")
	want, _ := e.Evaluate(Request{Object: d}, nil)
	got, err := e.Evaluate(Request{Object: u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fields(got), fields(want)) || len(want.Violations) != 4 {
		t.Errorf("unstructured %q, typed %q", fields(got), fields(want))
	}

	bad := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "x"}, "spec": "nope"}}
	if _, err := e.Evaluate(Request{Object: bad}, nil); err == nil || !strings.Contains(err.Error(), "Pod x") {
		t.Errorf("malformed unstructured Pod: err = %v, want one naming the Pod", err)
	}
}

func TestDenyMessage(t *testing.T) {
	e := engineFor(t, func(c *Config) { c.Policies.Network.Mode = ModeWarn })
	d, _ := e.Evaluate(Request{Object: deployment("web", podSpec(container("app", corev1.ResourceRequirements{Requests: res("cpu", "1", "memory", "1Gi")})))}, nil)
	msg := d.DenyMessage()
	if !strings.HasPrefix(msg, "Deployment shop/web violates NERV policy:") ||
		!strings.Contains(msg, "[resources] spec.template.spec.containers[0].resources.limits.memory: container \"app\"") {
		t.Errorf("deny message:\n%s", msg)
	}
	if strings.Contains(msg, "[network]") {
		t.Errorf("warn-mode violations must not be in the deny message:\n%s", msg)
	}
	if w := d.ViolationsIn(ModeWarn); len(w) != 1 || w[0].Policy != PolicyNetwork {
		t.Errorf("warn violations = %+v", w)
	}
}

func TestDecode(t *testing.T) {
	for _, gvk := range JudgedKinds() {
		obj, err := Decode(gvk, []byte(`{"metadata":{"name":"x","namespace":"y"}}`))
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		if obj.GetObjectKind().GroupVersionKind() != gvk {
			t.Errorf("%s decoded as %s", gvk, obj.GetObjectKind().GroupVersionKind())
		}
		if _, ok := subjectOf(obj); !ok {
			t.Errorf("%s decodes to %T, which no policy handles", gvk, obj)
		}
	}
	if _, err := Decode(corev1.SchemeGroupVersion.WithKind("ConfigMap"), []byte(`{}`)); err == nil {
		t.Error("decoding a ConfigMap must fail: no policy judges it")
	}
	if _, err := Decode(corev1.SchemeGroupVersion.WithKind("Pod"), []byte(`{"spec":1}`)); err == nil || !strings.Contains(err.Error(), "Pod") {
		t.Errorf("malformed Pod: %v", err)
	}
}

func TestUpdateLeavingPoliciesUnchanged(t *testing.T) {
	e := engineFor(t, nil)
	bad := podSpec(container("app", corev1.ResourceRequirements{}))
	old := deployment("web", bad)
	scaled := old.DeepCopy()
	scaled.Spec.Replicas = new(int32)
	scaled.Annotations = map[string]string{"deployment.kubernetes.io/revision": "2"}
	d, err := e.Evaluate(Request{Operation: OperationUpdate, Object: scaled, OldObject: old}, nil)
	if err != nil || len(d.Violations) != 0 || d.Results[0].Verdict != VerdictExempt {
		t.Errorf("an update that keeps the pod template must not be judged again: %+v %v", d, err)
	}
	changed := scaled.DeepCopy()
	changed.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2"
	d, _ = e.Evaluate(Request{Operation: OperationUpdate, Object: changed, OldObject: old}, nil)
	if !d.Denied() {
		t.Errorf("an update changing the pod template must be judged: %+v", d)
	}
	// Without the old object (offline, or a CREATE) everything is judged.
	d, _ = e.Evaluate(Request{Operation: OperationUpdate, Object: scaled}, nil)
	if !d.Denied() {
		t.Errorf("an update without the old object must be judged: %+v", d)
	}
	np := netpol("public", metav1.LabelSelector{}, nil, networkingv1.NetworkPolicyIngressRule{})
	relabelled := np.DeepCopy()
	relabelled.Labels = map[string]string{"team": "a"}
	if d, _ := e.Evaluate(Request{Operation: OperationUpdate, Object: relabelled, OldObject: np}, nil); len(d.Violations) != 0 {
		t.Errorf("relabelling a NetworkPolicy must not be judged again: %+v", d)
	}
	dropped := np.DeepCopy()
	np.Annotations = map[string]string{AnnotationAllowWorld: "public"}
	if d, _ := e.Evaluate(Request{Operation: OperationUpdate, Object: dropped, OldObject: np}, nil); !d.Denied() {
		t.Errorf("removing nerv.dev/allow-world must be judged: %+v", d)
	}
}
