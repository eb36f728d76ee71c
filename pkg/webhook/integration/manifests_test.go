package integration

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/nerv-platform/nerv/pkg/policy"
)

func buildManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), manifestsDir)
	if err != nil {
		t.Fatalf("kustomize build manifests/webhook: %v", err)
	}
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		// Through JSON: kyaml's Map() holds plain ints, which unstructured cannot deep-copy.
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

// TestManifestsDryRun creates every object of manifests/webhook with a server-side dry run
// and strict field validation (cert-manager CRDs installed), after creating the namespace.
func TestManifestsDryRun(t *testing.T) {
	objs := buildManifests(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Issuer", "Certificate",
		"Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy", "ValidatingWebhookConfiguration"} {
		if kinds[k] != 1 {
			t.Errorf("manifests/webhook has %d %s, want 1", kinds[k], k)
		}
	}
	strict := []client.CreateOption{client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict)}
	for _, o := range objs {
		if o.GetKind() != "Namespace" {
			continue
		}
		if err := env.Client.Create(ctx(t), o.DeepCopy(), strict...); err != nil {
			t.Fatalf("dry-run create Namespace %s: %v", o.GetName(), err)
		}
		// Namespaced dry runs need the namespace to exist.
		if err := env.Client.Create(ctx(t), o.DeepCopy()); err != nil {
			t.Fatalf("create Namespace %s: %v", o.GetName(), err)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		if err := env.Client.Create(ctx(t), o.DeepCopy(), strict...); err != nil {
			t.Errorf("dry-run create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// TestManifestsShape checks the properties docs/nerv-webhook.md promises about the install.
func TestManifestsShape(t *testing.T) {
	objs := buildManifests(t)
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	var dep appsv1.Deployment
	var policyYAML string
	for _, o := range objs {
		var err error
		switch o.GetKind() {
		case "ValidatingWebhookConfiguration":
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &vwc)
		case "Deployment":
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep)
		case "ConfigMap":
			policyYAML, _, _ = unstructured.NestedString(o.Object, "data", "policy.yaml")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(vwc.Webhooks) != 1 {
		t.Fatalf("webhooks: %d", len(vwc.Webhooks))
	}
	w := vwc.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone || *w.TimeoutSeconds != 5 {
		t.Errorf("failurePolicy %s, sideEffects %s, timeoutSeconds %d", *w.FailurePolicy, *w.SideEffects, *w.TimeoutSeconds)
	}
	if vwc.Annotations["cert-manager.io/inject-ca-from"] != "nerv-system/nerv-webhook" {
		t.Errorf("cainjector annotation: %v", vwc.Annotations)
	}
	skipped := map[string][]string{}
	for _, e := range w.NamespaceSelector.MatchExpressions {
		if e.Operator == metav1.LabelSelectorOpNotIn {
			skipped[e.Key] = e.Values
		}
	}
	if !slices.Contains(skipped["kubernetes.io/metadata.name"], "kube-system") || !slices.Contains(skipped["kubernetes.io/metadata.name"], "nerv-system") ||
		!slices.Contains(skipped["nerv.dev/policy"], "exempt") {
		t.Errorf("namespaceSelector must skip kube-system, nerv-system and exempt namespaces: %+v", w.NamespaceSelector)
	}
	// The rules must cover every kind the policies judge, and nothing else.
	covered := map[string]bool{}
	for _, r := range w.Rules {
		for _, res := range r.Resources {
			covered[r.APIGroups[0]+"/"+res] = true
		}
	}
	plural := map[string]string{"Pod": "pods", "ReplicationController": "replicationcontrollers", "Deployment": "deployments", "StatefulSet": "statefulsets",
		"DaemonSet": "daemonsets", "ReplicaSet": "replicasets", "Job": "jobs", "CronJob": "cronjobs", "NetworkPolicy": "networkpolicies"}
	judged := policy.JudgedKinds()
	if len(covered) != len(judged) {
		t.Errorf("rules cover %d resources, policies judge %d kinds", len(covered), len(judged))
	}
	for _, gvk := range judged {
		if !covered[gvk.Group+"/"+plural[gvk.Kind]] {
			t.Errorf("no webhook rule for %s", gvk)
		}
	}

	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Affinity == nil || dep.Spec.Template.Spec.Affinity.PodAntiAffinity == nil {
		t.Errorf("Deployment: replicas %d, anti-affinity %+v", *dep.Spec.Replicas, dep.Spec.Template.Spec.Affinity)
	}
	psc := dep.Spec.Template.Spec.SecurityContext
	c := dep.Spec.Template.Spec.Containers[0]
	sc := c.SecurityContext
	if psc == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != "RuntimeDefault" ||
		sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("restricted security context: pod %+v, container %+v", psc, sc)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("the webhook must set its own requests and limits: %+v", c.Resources)
	}
	// The shipped config must load.
	if _, err := policy.LoadConfig([]byte(policyYAML), "manifests/webhook/configmap.yaml"); err != nil {
		t.Errorf("shipped policy config: %v", err)
	}
}
