package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// setConfig writes a new policy config and waits until the running webhook uses it: the
// reload path (file watch) is what these tests exercise.
func setConfig(t *testing.T, r *running, yaml string, want func(*policy.Config) bool) {
	t.Helper()
	if err := os.WriteFile(r.configPath+".tmp", []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(r.configPath+".tmp", r.configPath); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the config to reload", func() error {
		if !want(r.server.Handler.Engine().Config()) {
			return fmt.Errorf("still the old config")
		}
		return nil
	})
}

func withResourcesMode(t *testing.T, r *running, mode policy.Mode) {
	t.Helper()
	setConfig(t, r, strings.Replace(policyYAML, "resources:\n    mode: enforce", "resources:\n    mode: "+string(mode), 1),
		func(c *policy.Config) bool { return c.Policies.Resources.Mode == mode })
	t.Cleanup(func() {
		setConfig(t, r, policyYAML, func(c *policy.Config) bool { return c.Policies.Resources.Mode == policy.ModeEnforce })
	})
}

func TestDeploymentResources(t *testing.T) {
	r := startWebhook(t)
	createNamespace(t, "res", nil)
	createNetworkPolicy(t, r, defaultDeny("res", "default-deny"))

	_, err := env.Clientset.AppsV1().Deployments("res").Create(ctx(t), deployment("res", "nolimits", requestsOnly()), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a Deployment without limits: err = %v, want Forbidden", err)
	}
	for _, want := range []string{
		`admission webhook "policy.nerv.dev" denied the request`,
		"Deployment res/nolimits violates NERV policy",
		"[resources] spec.template.spec.containers[1].resources.limits.memory",
		`container "proxy" does not set limits.memory`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "containers[0]") {
		t.Errorf("the compliant container must not be named: %v", err)
	}

	if _, err := env.Clientset.AppsV1().Deployments("res").Create(ctx(t), deployment("res", "limited", limits()), metav1.CreateOptions{}); err != nil {
		t.Fatalf("a Deployment with limits must be admitted: %v", err)
	}
}

func TestWarnModeAndDryRun(t *testing.T) {
	r := startWebhook(t)
	createNamespace(t, "warn", nil)
	createNetworkPolicy(t, r, defaultDeny("warn", "default-deny"))
	withResourcesMode(t, r, policy.ModeWarn)
	cs, w := clientWithWarnings(t)

	// The dry run first: its (absent) Event would otherwise have had time to appear by the
	// time the real request's Event is seen.
	if _, err := cs.AppsV1().Deployments("warn").Create(ctx(t), deployment("warn", "dry", requestsOnly()), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry run in warn mode: %v", err)
	}
	if got := w.take(); len(got) != 1 || !strings.HasPrefix(got[0], "[resources] spec.template.spec.containers[1].resources.limits.memory") {
		t.Errorf("dry-run warnings = %q: dry runs are judged like real requests", got)
	}
	if _, err := env.Clientset.AppsV1().Deployments("warn").Get(ctx(t), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry run persisted the Deployment: %v", err)
	}

	if _, err := cs.AppsV1().Deployments("warn").Create(ctx(t), deployment("warn", "web", requestsOnly()), metav1.CreateOptions{}); err != nil {
		t.Fatalf("warn mode must admit: %v", err)
	}
	got := w.take()
	if len(got) != 1 || !strings.Contains(got[0], `container "proxy" does not set limits.memory`) {
		t.Errorf("client-visible warnings = %q", got)
	}

	var events []eventsv1.Event
	eventually(t, "the warn Event", func() error {
		list, err := env.Clientset.EventsV1().Events("warn").List(ctx(t), metav1.ListOptions{})
		if err != nil {
			return err
		}
		events = list.Items
		for _, e := range events {
			if e.Regarding.Name == "web" {
				return nil
			}
		}
		return fmt.Errorf("no Event regarding warn/web among %d", len(events))
	})
	for _, e := range events {
		switch e.Regarding.Name {
		case "web":
			if e.Reason != "NervPolicyWarn" || e.Type != corev1.EventTypeWarning || e.Regarding.Kind != "Deployment" ||
				!strings.Contains(e.Note, "spec.template.spec.containers[1].resources.limits.memory") || e.ReportingController != "nerv-webhook" {
				t.Errorf("Event %+v", e)
			}
		case "dry":
			t.Errorf("a dry-run request left an Event: %+v", e)
		}
	}

	logs := r.log.String()
	if !strings.Contains(logs, `"msg":"policy violation"`) || !strings.Contains(logs, `"verdict":"warn"`) || !strings.Contains(logs, `"dryRun":true`) {
		t.Errorf("warn decisions must be logged as JSON, with dry runs marked:\n%s", logs)
	}
}

func TestPodNeedsNetworkPolicy(t *testing.T) {
	r := startWebhook(t)
	createNamespace(t, "net", nil)

	_, err := env.Clientset.CoreV1().Pods("net").Create(ctx(t), goodPod("net", "web", map[string]string{"app": "web"}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `no NetworkPolicy in namespace "net" selects this Pod`) {
		t.Fatalf("a Pod in a namespace without NetworkPolicy: err = %v, want a denial naming the namespace", err)
	}
	createNetworkPolicy(t, r, defaultDeny("net", "default-deny"))
	if _, err := env.Clientset.CoreV1().Pods("net").Create(ctx(t), goodPod("net", "web", map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("after a default-deny exists the Pod must be admitted: %v", err)
	}
}

// TestNetworkPolicyAndPodInOneApply sends a NetworkPolicy and, without waiting, a Pod it
// selects, as `kubectl apply -f dir/` does with both in one directory. The webhook's cache may
// not have seen the NetworkPolicy yet; a network denial is confirmed against the API server
// first, so the Pod is admitted every time. (Whether the cache lags in a given round is up to
// the machine; the handler's unit test forces the lag. Here the re-check runs for real: a Pod
// in a namespace without NetworkPolicy is denied after a confirming list call.)
func TestNetworkPolicyAndPodInOneApply(t *testing.T) {
	r := startWebhook(t)
	createNamespace(t, "apply-none", nil)
	if _, err := env.Clientset.CoreV1().Pods("apply-none").Create(ctx(t), goodPod("apply-none", "web", nil), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("a Pod without any NetworkPolicy: err = %v, want denied", err)
	}
	if code, body := httpGet("http://" + r.metricsAddr + "/metrics"); code != 200 || !strings.Contains(body, `nerv_webhook_network_rechecks_total{result="confirmed"}`) {
		t.Errorf("the denial was not confirmed against the API server (/metrics %d):\n%s", code, body)
	}
	for i := range 10 {
		ns := fmt.Sprintf("apply-%d", i)
		createNamespace(t, ns, nil)
		if _, err := env.Clientset.NetworkingV1().NetworkPolicies(ns).Create(ctx(t), defaultDeny(ns, "default-deny"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Clientset.CoreV1().Pods(ns).Create(ctx(t), goodPod(ns, "web", map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
			t.Fatalf("round %d: the Pod sent right after its NetworkPolicy was refused: %v", i, err)
		}
	}
}

func TestWorldOpenNetworkPolicy(t *testing.T) {
	startWebhook(t)
	createNamespace(t, "world", nil)
	open := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "public", Namespace: "world"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0"}}}}},
		},
	}
	_, err := env.Clientset.NetworkingV1().NetworkPolicies("world").Create(ctx(t), open, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "spec.ingress[0].from[0].ipBlock.cidr") || !strings.Contains(err.Error(), "nerv.dev/allow-world") {
		t.Fatalf("world-open NetworkPolicy: err = %v, want a denial naming the field and the annotation", err)
	}
	open.Annotations = map[string]string{"nerv.dev/allow-world": "public shop front"}
	if _, err := env.Clientset.NetworkingV1().NetworkPolicies("world").Create(ctx(t), open, metav1.CreateOptions{}); err != nil {
		t.Fatalf("with nerv.dev/allow-world it must be admitted: %v", err)
	}
}

func TestDeleteLastNetworkPolicy(t *testing.T) {
	r := startWebhook(t)
	createNamespace(t, "del", nil)
	web := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "del"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	createNetworkPolicy(t, r, web)
	if _, err := env.Clientset.CoreV1().Pods("del").Create(ctx(t), goodPod("del", "web-0", map[string]string{"app": "web"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCached(t, r, "del", "web-0", &corev1.Pod{})

	err := env.Clientset.NetworkingV1().NetworkPolicies("del").Delete(ctx(t), "web", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "last NetworkPolicy selecting 1 running Pod(s) for ingress (web-0)") {
		t.Fatalf("deleting the last NetworkPolicy over a running Pod: err = %v, want a denial naming the Pod", err)
	}
	createNetworkPolicy(t, r, defaultDeny("del", "default-deny"))
	if err := env.Clientset.NetworkingV1().NetworkPolicies("del").Delete(ctx(t), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("with a default-deny in place the delete must be admitted: %v", err)
	}
}

func TestExemptions(t *testing.T) {
	r := startWebhook(t)
	bare := func(ns, name string, ann map[string]string) *corev1.Pod {
		p := goodPod(ns, name, map[string]string{"app": name})
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
		p.Annotations = ann
		return p
	}
	// Labelled namespace: the webhook's namespaceSelector keeps it away from the webhook.
	createNamespace(t, "labelled", map[string]string{"nerv.dev/policy": "exempt"})
	if _, err := env.Clientset.CoreV1().Pods("labelled").Create(ctx(t), bare("labelled", "a", nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("namespace labelled nerv.dev/policy=exempt: %v", err)
	}
	// kube-public reaches the webhook (not in the namespaceSelector) and is exempt by config.
	if _, err := env.Clientset.CoreV1().Pods("kube-public").Create(ctx(t), bare("kube-public", "b", nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("kube-public is in the default exemptNamespaces: %v", err)
	}
	// An annotated object, with and without a reason.
	createNamespace(t, "annotated", nil)
	createNetworkPolicy(t, r, defaultDeny("annotated", "default-deny"))
	_, err := env.Clientset.CoreV1().Pods("annotated").Create(ctx(t), bare("annotated", "c", map[string]string{"nerv.dev/exempt": "resources"}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "is ignored without a non-empty nerv.dev/exempt-reason") {
		t.Errorf("exempt annotation without a reason: err = %v, want a denial saying why", err)
	}
	if _, err := env.Clientset.CoreV1().Pods("annotated").Create(ctx(t), bare("annotated", "d", map[string]string{
		"nerv.dev/exempt": "resources", "nerv.dev/exempt-reason": "sized by its operator"}), metav1.CreateOptions{}); err != nil {
		t.Errorf("annotated with a reason: %v", err)
	}
}

func TestMalformedRequestsAndProbes(t *testing.T) {
	r := startWebhook(t)
	url := fmt.Sprintf("https://%s:%d/validate", env.Webhook.LocalServingHost, env.Webhook.LocalServingPort)
	cl := tlsClient(t)
	big := append(append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"`), strings.Repeat("a", 10<<20)...), `"}}`...)
	for _, tt := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty body", nil, "request body is empty"},
		{"malformed JSON", []byte(`{"request":`), "unexpected end of JSON input"},
		{"wrong kind", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Secret"},"object":{}}}`), "does not judge v1 Secret"},
		{"10 MiB body", big, "request entity is too large"},
	} {
		resp := postReview(t, cl, url, tt.body)
		if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, tt.want) {
			t.Errorf("%s: response %+v, want a refusal containing %q", tt.name, resp.Result, tt.want)
		}
	}
	// And it goes on serving.
	if _, err := env.Clientset.CoreV1().Namespaces().Get(ctx(t), "default", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dryRunPod(t, "kube-public"); err != nil {
		t.Errorf("after bad requests: %v", err)
	}

	if code, body := httpGet("http://" + r.healthAddr + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := httpGet("http://" + r.healthAddr + "/readyz?verbose"); code != 200 || !strings.Contains(body, "caches ok") {
		t.Errorf("/readyz = %d %s", code, body)
	}
	code, metrics := httpGet("http://" + r.metricsAddr + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`nerv_webhook_decisions_total{mode="enforce",namespace="kube-public",policy="resources",verdict="exempt"}`,
		"controller_runtime_webhook_latency_seconds_bucket",
		`nerv_webhook_config_reloads_total`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestBadConfigKeepsLastGood(t *testing.T) {
	r := startWebhook(t)
	before := r.server.Handler.Engine()
	bad := strings.Replace(policyYAML, "mode: enforce", "mode: block", 1)
	if err := os.WriteFile(r.configPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejection to be logged", func() error {
		if !strings.Contains(r.log.String(), `policy config rejected; the last good config stays active`) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if r.server.Handler.Engine() != before {
		t.Error("a bad config replaced the engine")
	}
	if !strings.Contains(r.log.String(), "policies.resources.mode") {
		t.Error("the log line must name the bad field")
	}
	if err := dryRunPod(t, "kube-public"); err != nil {
		t.Errorf("serving with the last good config: %v", err)
	}
	// Restore the good config; the reloader applies it because it differs from the bad one.
	if err := os.WriteFile(r.configPath, []byte(policyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the good config to be applied", func() error {
		if r.server.Handler.Engine() == before {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// TestTightenedConfigKeepsExistingObjectsManageable: after limits.cpu becomes required, an
// existing Deployment can still be scaled and annotated, but a template change must comply.
func TestTightenedConfigKeepsExistingObjectsManageable(t *testing.T) {
	r := startWebhook(t)
	createNamespace(t, "tight", nil)
	createNetworkPolicy(t, r, defaultDeny("tight", "default-deny"))
	if _, err := env.Clientset.AppsV1().Deployments("tight").Create(ctx(t), deployment("tight", "web", limits()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setConfig(t, r, strings.Replace(policyYAML, "    mode: enforce\n", "    mode: enforce\n    required: [requests.cpu, requests.memory, limits.memory, limits.cpu]\n", 1),
		func(c *policy.Config) bool { return len(c.Policies.Resources.Required) == 4 })
	t.Cleanup(func() {
		setConfig(t, r, policyYAML, func(c *policy.Config) bool { return len(c.Policies.Resources.Required) == 3 })
	})

	d, err := env.Clientset.AppsV1().Deployments("tight").Get(ctx(t), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = new(int32)
	d.Annotations = map[string]string{"team": "shop"}
	if d, err = env.Clientset.AppsV1().Deployments("tight").Update(ctx(t), d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scaling an existing Deployment under a tightened config: %v", err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2"
	_, err = env.Clientset.AppsV1().Deployments("tight").Update(ctx(t), d, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "spec.template.spec.containers[0].resources.limits.cpu") {
		t.Fatalf("changing the template must meet the new config: err = %v", err)
	}
}
