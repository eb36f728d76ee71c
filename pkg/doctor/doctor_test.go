package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/spec"
)

func checkByID(t *testing.T, id string) Check {
	t.Helper()
	for _, c := range AllChecks() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %s", id)
	return Check{}
}

// runDoctor runs the given checks (all when none) and fails the test if the run cannot happen.
func runDoctor(t *testing.T, cfg *rest.Config, sp *spec.Cluster, ids ...string) *Report {
	t.Helper()
	o := Options{Config: cfg, Spec: sp}
	for _, id := range ids {
		o.Checks = append(o.Checks, checkByID(t, id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("doctor.Run: %v", err)
	}
	return rep
}

func result(t *testing.T, rep *Report, id string) Result {
	t.Helper()
	r, ok := rep.Result(id)
	if !ok {
		t.Fatalf("no result for %s", id)
	}
	return r
}

func describe(r Result) string {
	return fmt.Sprintf("%s: %s %q details=%q", r.ID, r.Status, r.Message, r.Details)
}

// patch applies a merge patch with the admin client.
func patchCustom(t *testing.T, ctx context.Context, k crdKind, ns, name, patch string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	must(t, err)
	var ri dynamic.ResourceInterface = dyn.Resource(k.gvr)
	if ns != "" {
		ri = dyn.Resource(k.gvr).Namespace(ns)
	}
	_, err = ri.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	must(t, err)
}

func createNodeNotReady(t *testing.T, ctx context.Context, name, kubelet string, ready corev1.ConditionStatus, extra ...corev1.NodeCondition) func() {
	t.Helper()
	// Not annotated for kwok: nothing will correct the status this test writes.
	n := testenv.NodeObject(testenv.Node{Name: name, IP: "192.168.1.150", Role: spec.RoleAgent, KubeletVersion: kubelet})
	n.Annotations = nil
	created, err := env.Clientset.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	must(t, err)
	created.Status = n.Status
	created.Status.Conditions = append([]corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "KubeletNotReady", Message: "container runtime is down"}}, extra...)
	_, err = env.Clientset.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	must(t, err)
	return func() { must(t, env.Clientset.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})) }
}

// TestDoctor walks one cluster through its life: bare, healthy, each check broken and
// mended, then seen by a user with few rights.
func TestDoctor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("bare cluster: absent components are skipped with their reason", func(t *testing.T) {
		rep := runDoctor(t, env.Config, nil)
		for _, r := range rep.Results {
			// envtest registered the webhook configuration at start: that component is there.
			if r.Category == CategoryKubernetes || r.Category == CategoryPolicy || r.Category == CategoryWebhook {
				continue
			}
			if r.Status != StatusSkip && r.Status != StatusPass {
				t.Errorf("%s on a bare cluster: want skip, got %s", r.ID, describe(r))
			}
		}
		for id, want := range map[string]string{
			"metallb-controller":    "metallb is not installed: no namespace metallb-system",
			"argocd-components":     "argocd is not installed: no namespace argocd",
			"nerv-webhook-denies":   "", // registered by envtest: not skipped, see below
			"longhorn-nodes":        "", // CRD installed, no objects: fails, see below
			"kubernetes-spec-nodes": "needs --spec nerv.yaml",
		} {
			if want == "" {
				continue
			}
			if r := result(t, rep, id); r.Status != StatusSkip || r.Message != want {
				t.Errorf("%s: want skip %q, got %s", id, want, describe(r))
			}
		}
		if r := result(t, rep, "kubernetes-nodes-ready"); r.Status != StatusFail || r.Message != "the cluster has no nodes" {
			t.Errorf("no nodes: %s", describe(r))
		}
	})

	st := buildHealthySite(t, ctx)

	t.Run("healthy site: every check passes", func(t *testing.T) {
		rep := runDoctor(t, env.Config, st.spec)
		for _, r := range rep.Results {
			want := StatusPass
			if r.ID == "nerv-webhook-endpoints" {
				want = StatusSkip // envtest calls the webhook by URL; covered by its own test
			}
			if r.Status != want {
				t.Errorf("want %s, got %s", want, describe(r))
			}
		}
		if rep.Failed() || len(rep.Warnings()) > 0 {
			t.Errorf("healthy site: failed=%v warnings=%v", rep.Failures(), rep.Warnings())
		}
		if len(rep.Results) != len(AllChecks()) || !slices.Equal(rep.Categories, Categories) {
			t.Errorf("report has %d results in %v, want %d in %v", len(rep.Results), rep.Categories, len(AllChecks()), Categories)
		}
		if r := result(t, rep, "argocd-age-key"); !strings.Contains(r.Message, st.key.Recipient().String()) || strings.Contains(r.Message, "AGE-SECRET-KEY") {
			t.Errorf("age key: want the public key and never the identity: %s", describe(r))
		}
	})

	cs := env.Clientset
	other, err := age.GenerateX25519Identity()
	must(t, err)
	tests := []struct {
		check  string
		status Status
		want   string // in the message or a detail line
		breakf func(t *testing.T) (mend func())
	}{
		{"kubernetes-nodes-ready", StatusFail, "sachiel: Ready=False container runtime is down; MemoryPressure", func(t *testing.T) func() {
			return createNodeNotReady(t, ctx, "sachiel", "", corev1.ConditionFalse, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue})
		}},
		{"kubernetes-version-skew", StatusFail, "sachiel: kubelet v1.30.4 is 7 minor versions behind", func(t *testing.T) func() {
			return createNodeNotReady(t, ctx, "sachiel", "v1.30.4", corev1.ConditionTrue)
		}},
		{"kubernetes-server-count", StatusWarn, "4 servers", func(t *testing.T) func() {
			_, err := env.CreateNode(ctx, testenv.Node{Name: "kaworu", IP: "192.168.1.103", Role: spec.RoleServer})
			must(t, err)
			return func() { must(t, cs.CoreV1().Nodes().Delete(ctx, "kaworu", metav1.DeleteOptions{})) }
		}},
		{"kubernetes-spec-nodes", StatusFail, "kaworu: in the cluster but not in the spec", func(t *testing.T) func() {
			_, err := env.CreateNode(ctx, testenv.Node{Name: "kaworu", IP: "192.168.1.103", Role: spec.RoleAgent})
			must(t, err)
			return func() { must(t, cs.CoreV1().Nodes().Delete(ctx, "kaworu", metav1.DeleteOptions{})) }
		}},
		{"metallb-controller", StatusFail, "Deployment metallb-system/metallb-controller: 0/1 replicas ready", func(t *testing.T) func() {
			setDeploymentReady(t, ctx, metallbNamespace, "metallb-controller", 0)
			return func() { setDeploymentReady(t, ctx, metallbNamespace, "metallb-controller", 1) }
		}},
		{"metallb-speaker", StatusFail, "DaemonSet metallb-system/metallb-speaker: 2/3 pods ready", func(t *testing.T) func() {
			setDaemonSetReady(t, ctx, metallbNamespace, "metallb-speaker", 2, 3)
			return func() { setDaemonSetReady(t, ctx, metallbNamespace, "metallb-speaker", 3, 3) }
		}},
		{"metallb-pool", StatusFail, "not covered: 192.168.1.113, 192.168.1.114, 192.168.1.115", func(t *testing.T) func() {
			patchCustom(t, ctx, kindIPAddressPool, metallbNamespace, "nerv-pool", `{"spec":{"addresses":["192.168.1.110-192.168.1.112"]}}`)
			return func() {
				patchCustom(t, ctx, kindIPAddressPool, metallbNamespace, "nerv-pool", `{"spec":{"addresses":["192.168.1.110-192.168.1.115"]}}`)
			}
		}},
		{"metallb-l2advertisement", StatusFail, "IPAddressPool other-pool does not exist", func(t *testing.T) func() {
			patchCustom(t, ctx, kindL2Advertisement, metallbNamespace, "nerv-pool", `{"spec":{"ipAddressPools":["other-pool"]}}`)
			return func() {
				patchCustom(t, ctx, kindL2Advertisement, metallbNamespace, "nerv-pool", `{"spec":{"ipAddressPools":["nerv-pool"]}}`)
			}
		}},
		{"metallb-services", StatusFail, "default/pending: no address (pending)", func(t *testing.T) func() {
			createLBService(t, ctx, "default", "pending", "")
			return func() { must(t, cs.CoreV1().Services("default").Delete(ctx, "pending", metav1.DeleteOptions{})) }
		}},
		{"metallb-fixed-ips", StatusFail, "traefik: Service traefik/traefik has 192.168.1.114, the spec says 192.168.1.112", func(t *testing.T) func() {
			setServiceIP(t, ctx, traefikNamespace, "traefik", "192.168.1.114")
			return func() { setServiceIP(t, ctx, traefikNamespace, "traefik", "192.168.1.112") }
		}},
		{"argocd-components", StatusFail, "StatefulSet argocd/argocd-application-controller: 0/1 replicas ready", func(t *testing.T) func() {
			setStatefulSetReady(t, ctx, "argocd", "argocd-application-controller", 0)
			return func() { setStatefulSetReady(t, ctx, "argocd", "argocd-application-controller", 1) }
		}},
		{"argocd-applications", StatusFail, "argocd/traefik: sync=OutOfSync health=Degraded: ComparisonError: chart not found; Deployment traefik is not available", func(t *testing.T) func() {
			patchCustom(t, ctx, kindApplication, "argocd", "traefik", `{"status":{"sync":{"status":"OutOfSync"},"health":{"status":"Degraded","message":"Deployment traefik is not available"},"conditions":[{"type":"ComparisonError","message":"ComparisonError: chart not found"}]}}`)
			return func() {
				patchCustom(t, ctx, kindApplication, "argocd", "traefik", `{"status":{"sync":{"status":"Synced"},"health":{"status":"Healthy","message":null},"conditions":null}}`)
			}
		}},
		{"argocd-sops-plugin", StatusFail, "argocd-repo-server has no sidecar running argocd-cmp-server", func(t *testing.T) func() {
			setRepoServer(t, ctx, false)
			return func() { setRepoServer(t, ctx, true) }
		}},
		{"argocd-age-key", StatusFail, "key in the Secret: " + other.Recipient().String(), func(t *testing.T) func() {
			_, err := cs.CoreV1().Secrets("argocd").Update(ctx, ageKeySecretObject(other), metav1.UpdateOptions{})
			must(t, err)
			return func() {
				_, err := cs.CoreV1().Secrets("argocd").Update(ctx, ageKeySecretObject(st.key), metav1.UpdateOptions{})
				must(t, err)
			}
		}},
		{"argocd-redis-netpol", StatusFail, "admits pods of other namespaces", func(t *testing.T) func() {
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "allow-from-traefik", Namespace: "argocd"},
				Spec: networkingv1.NetworkPolicySpec{
					Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "traefik"}},
					}}}},
				},
			}
			_, err := cs.NetworkingV1().NetworkPolicies("argocd").Create(ctx, np, metav1.CreateOptions{})
			must(t, err)
			return func() {
				must(t, cs.NetworkingV1().NetworkPolicies("argocd").Delete(ctx, np.Name, metav1.DeleteOptions{}))
			}
		}},
		{"traefik-ready", StatusFail, "Deployment traefik/traefik: 0/1 replicas ready", func(t *testing.T) func() {
			setDeploymentReady(t, ctx, traefikNamespace, "traefik", 0)
			return func() { setDeploymentReady(t, ctx, traefikNamespace, "traefik", 1) }
		}},
		{"traefik-service", StatusFail, "has no LoadBalancer address", func(t *testing.T) func() {
			setServiceIP(t, ctx, traefikNamespace, "traefik")
			return func() { setServiceIP(t, ctx, traefikNamespace, "traefik", "192.168.1.112") }
		}},
		{"cert-manager-ready", StatusFail, "Deployment cert-manager/cert-manager-cainjector: 0/1 replicas ready", func(t *testing.T) func() {
			setDeploymentReady(t, ctx, certManagerNamespace, "cert-manager-cainjector", 0)
			return func() { setDeploymentReady(t, ctx, certManagerNamespace, "cert-manager-cainjector", 1) }
		}},
		{"cert-manager-issuers", StatusFail, "selfsigned: Ready=False ErrInitIssuer: secret ca-key-pair not found", func(t *testing.T) func() {
			patchCustom(t, ctx, kindClusterIssuer, "", "selfsigned", `{"status":{"conditions":[{"type":"Ready","status":"False","reason":"ErrInitIssuer","message":"secret ca-key-pair not found"}]}}`)
			return func() {
				patchCustom(t, ctx, kindClusterIssuer, "", "selfsigned", `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Ready","message":""}]}}`)
			}
		}},
		{"cert-manager-certificates", StatusFail, "nerv-system/nerv-webhook: expires in", func(t *testing.T) func() {
			soon := time.Now().Add(3 * 24 * time.Hour).UTC().Format(time.RFC3339)
			patchCustom(t, ctx, kindCertificate, webhookNamespace, "nerv-webhook", `{"status":{"notAfter":"`+soon+`"}}`)
			return func() {
				later := time.Now().Add(60 * 24 * time.Hour).UTC().Format(time.RFC3339)
				patchCustom(t, ctx, kindCertificate, webhookNamespace, "nerv-webhook", `{"status":{"notAfter":"`+later+`"}}`)
			}
		}},
		{"longhorn-ready", StatusFail, "DaemonSet longhorn-system/longhorn-manager: 1/3 pods ready", func(t *testing.T) func() {
			setDaemonSetReady(t, ctx, longhornNamespace, "longhorn-manager", 1, 3)
			return func() { setDaemonSetReady(t, ctx, longhornNamespace, "longhorn-manager", 3, 3) }
		}},
		{"longhorn-nodes", StatusFail, "longhorn-system/rei: scheduling disabled", func(t *testing.T) func() {
			patchCustom(t, ctx, kindLonghornNode, longhornNamespace, "rei", `{"spec":{"allowScheduling":false}}`)
			return func() {
				patchCustom(t, ctx, kindLonghornNode, longhornNamespace, "rei", `{"spec":{"allowScheduling":true}}`)
			}
		}},
		{"longhorn-volumes", StatusFail, "longhorn-system/pvc-1: robustness degraded", func(t *testing.T) func() {
			patchCustom(t, ctx, kindLonghornVolume, longhornNamespace, "pvc-1", `{"status":{"robustness":"degraded"}}`)
			return func() {
				patchCustom(t, ctx, kindLonghornVolume, longhornNamespace, "pvc-1", `{"status":{"robustness":"healthy"}}`)
			}
		}},
		{"longhorn-default-storageclass", StatusFail, "local-path (rancher.io/local-path)", func(t *testing.T) func() {
			_, err := cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
				ObjectMeta:  metav1.ObjectMeta{Name: "local-path", Annotations: map[string]string{annotationDefaultClass: "true"}},
				Provisioner: "rancher.io/local-path",
			}, metav1.CreateOptions{})
			must(t, err)
			return func() { must(t, cs.StorageV1().StorageClasses().Delete(ctx, "local-path", metav1.DeleteOptions{})) }
		}},
		{"nerv-webhook-config", StatusFail, "policy.nerv.dev: failurePolicy Ignore", func(t *testing.T) func() {
			restore := editWebhook(t, ctx, func(w *admissionregistrationv1.ValidatingWebhook) {
				w.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			})
			return restore
		}},
		{"nerv-webhook-ca", StatusFail, `policy.nerv.dev: CA "test-ca" expired on`, func(t *testing.T) func() {
			expired := selfSignedCA(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
			return editWebhook(t, ctx, func(w *admissionregistrationv1.ValidatingWebhook) { w.ClientConfig.CABundle = expired })
		}},
		{"nerv-webhook-denies", StatusFail, "was admitted (dry run)", func(t *testing.T) func() {
			webhookHandler.SetEngine(testEngine(t, true)) // the resources policy in audit mode
			return func() { webhookHandler.SetEngine(testEngine(t, false)) }
		}},
		{"policy-default-deny", StatusWarn, "traefik", func(t *testing.T) func() {
			must(t, cs.NetworkingV1().NetworkPolicies(traefikNamespace).Delete(ctx, "default-deny", metav1.DeleteOptions{}))
			return func() {
				_, err := cs.NetworkingV1().NetworkPolicies(traefikNamespace).Create(ctx, defaultDeny(traefikNamespace), metav1.CreateOptions{})
				must(t, err)
			}
		}},
		{"policy-workloads", StatusWarn, "Deployment traefik/greedy: [resources] spec.template.spec.containers[0]", func(t *testing.T) func() {
			tmpl := podTemplate("greedy")
			tmpl.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
			createDeployment(t, ctx, traefikNamespace, "greedy", 1, tmpl)
			return func() {
				must(t, cs.AppsV1().Deployments(traefikNamespace).Delete(ctx, "greedy", metav1.DeleteOptions{}))
			}
		}},
	}
	covered := map[string]bool{"kubernetes-api": true, "nerv-webhook-endpoints": true} // own tests below
	for _, tt := range tests {
		covered[tt.check] = true
		t.Run("broken/"+tt.check, func(t *testing.T) {
			c := checkByID(t, tt.check)
			mend := tt.breakf(t)
			rep := runDoctor(t, env.Config, st.spec, tt.check)
			r := result(t, rep, tt.check)
			text := r.Message + "\n" + strings.Join(r.Details, "\n")
			if r.Status != tt.status || !strings.Contains(text, tt.want) {
				t.Errorf("broken: want %s mentioning %q, got %s", tt.status, tt.want, describe(r))
			}
			if r.Hint != c.Hint || r.Docs != DocsURL+"#"+tt.check {
				t.Errorf("broken: hint %q docs %q, want the check's hint and anchor", r.Hint, r.Docs)
			}
			if (tt.status == StatusFail) != rep.Failed() {
				t.Errorf("Report.Failed() = %v for a %s", rep.Failed(), tt.status)
			}
			mend()
			if r := result(t, runDoctor(t, env.Config, st.spec, tt.check), tt.check); r.Status != StatusPass {
				t.Errorf("mended: want pass, got %s", describe(r))
			}
		})
	}
	for _, c := range AllChecks() {
		if !covered[c.ID] {
			t.Errorf("check %s has no broken case", c.ID)
		}
	}

	t.Run("webhook endpoints through a Service", func(t *testing.T) {
		testWebhookEndpoints(t, ctx)
	})

	t.Run("policy audit judges by the cluster's policy ConfigMap", func(t *testing.T) {
		testPolicyConfigMap(t, ctx)
	})

	t.Run("RBAC-limited user gets skipped checks", func(t *testing.T) {
		testLimitedUser(t, ctx, st)
	})

	t.Run("wait retries a failing check until it passes", func(t *testing.T) {
		setDeploymentReady(t, ctx, traefikNamespace, "traefik", 0)
		go func() {
			time.Sleep(1500 * time.Millisecond)
			setDeploymentReady(t, ctx, traefikNamespace, "traefik", 1)
		}()
		var progress strings.Builder
		rep, err := Run(ctx, Options{Config: env.Config, Checks: []Check{checkByID(t, "traefik-ready")}, Wait: 20 * time.Second, RetryInterval: 500 * time.Millisecond, Progress: &progress})
		must(t, err)
		r := result(t, rep, "traefik-ready")
		if r.Status != StatusPass || r.Attempts < 2 {
			t.Errorf("want a pass after retries, got %s after %d attempts", describe(r), r.Attempts)
		}
		if !strings.Contains(progress.String(), "1 failing (traefik-ready); retrying") {
			t.Errorf("progress: %q", progress.String())
		}
	})
}

func setRepoServer(t *testing.T, ctx context.Context, sidecar bool) {
	t.Helper()
	d, err := env.Clientset.AppsV1().Deployments("argocd").Get(ctx, "argocd-repo-server", metav1.GetOptions{})
	must(t, err)
	d.Spec.Template = repoServerTemplate(sidecar)
	_, err = env.Clientset.AppsV1().Deployments("argocd").Update(ctx, d, metav1.UpdateOptions{})
	must(t, err)
}

// editWebhook changes the nerv-webhook configuration's webhook and returns a func restoring it.
func editWebhook(t *testing.T, ctx context.Context, edit func(*admissionregistrationv1.ValidatingWebhook)) func() {
	t.Helper()
	api := env.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	orig, err := api.Get(ctx, webhookConfig, metav1.GetOptions{})
	must(t, err)
	changed := orig.DeepCopy()
	edit(&changed.Webhooks[0])
	_, err = api.Update(ctx, changed, metav1.UpdateOptions{})
	must(t, err)
	return func() {
		cur, err := api.Get(ctx, webhookConfig, metav1.GetOptions{})
		must(t, err)
		cur.Webhooks = orig.Webhooks
		_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
		must(t, err)
	}
}

// testWebhookEndpoints points the configuration at the nerv-webhook Service (as
// manifests/webhook does) and judges its EndpointSlice.
func testWebhookEndpoints(t *testing.T, ctx context.Context) {
	cs := env.Clientset
	restore := editWebhook(t, ctx, func(w *admissionregistrationv1.ValidatingWebhook) {
		w.ClientConfig.URL = nil
		w.ClientConfig.Service = &admissionregistrationv1.ServiceReference{Namespace: webhookNamespace, Name: webhookService, Path: ptr.To("/validate"), Port: ptr.To[int32](443)}
	})
	defer restore()
	r := result(t, runDoctor(t, env.Config, nil, "nerv-webhook-endpoints"), "nerv-webhook-endpoints")
	if r.Status != StatusFail || !strings.Contains(strings.Join(r.Details, "\n"), "Service nerv-system/nerv-webhook: no ready endpoint") {
		t.Errorf("no endpoints: %s", describe(r))
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "nerv-webhook-abcde", Namespace: webhookNamespace, Labels: map[string]string{discoveryv1.LabelServiceName: webhookService}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.42.0.10"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.42.1.10"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}
	es, err := cs.DiscoveryV1().EndpointSlices(webhookNamespace).Create(ctx, es, metav1.CreateOptions{})
	must(t, err)
	defer func() {
		_ = cs.DiscoveryV1().EndpointSlices(webhookNamespace).Delete(ctx, es.Name, metav1.DeleteOptions{})
	}()
	r = result(t, runDoctor(t, env.Config, nil, "nerv-webhook-endpoints"), "nerv-webhook-endpoints")
	if r.Status != StatusPass || r.Message != "Service nerv-system/nerv-webhook: 1 ready" {
		t.Errorf("one ready endpoint: %s", describe(r))
	}
	es.Endpoints[0].Conditions.Ready = ptr.To(false)
	_, err = cs.DiscoveryV1().EndpointSlices(webhookNamespace).Update(ctx, es, metav1.UpdateOptions{})
	must(t, err)
	r = result(t, runDoctor(t, env.Config, nil, "nerv-webhook-endpoints"), "nerv-webhook-endpoints")
	if r.Status != StatusFail || r.Hint == "" {
		t.Errorf("no ready endpoint: %s", describe(r))
	}
}

// testLimitedUser runs doctor as a user who may list nodes and nothing else.
func testLimitedUser(t *testing.T, ctx context.Context, st *site) {
	cs := env.Clientset
	cfg, err := env.AddUser("shinji")
	must(t, err)
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "doctor-test-nodes"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}}},
	}
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	must(t, err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "doctor-test-nodes"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "shinji"}},
	}, metav1.CreateOptions{})
	must(t, err)

	rep := runDoctor(t, cfg, st.spec)
	for _, r := range rep.Results {
		switch r.Category {
		case CategoryKubernetes:
			if r.Status != StatusPass {
				t.Errorf("nodes are readable: want pass, got %s", describe(r))
			}
		default:
			if r.Status != StatusSkip || !strings.HasPrefix(r.Message, `forbidden: User "shinji" cannot list resource`) {
				t.Errorf("want skipped as forbidden for shinji, got %s", describe(r))
			}
		}
	}
	if rep.Failed() {
		t.Error("a user without rights must get skips, not failures")
	}
}

// testPolicyConfigMap checks that the audit uses nerv-webhook's own config, as the webhook
// would judge, and refuses an invalid one.
func testPolicyConfigMap(t *testing.T, ctx context.Context) {
	cs := env.Clientset
	tmpl := podTemplate("greedy")
	tmpl.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	createDeployment(t, ctx, traefikNamespace, "greedy", 1, tmpl)
	defer func() {
		must(t, cs.AppsV1().Deployments(traefikNamespace).Delete(ctx, "greedy", metav1.DeleteOptions{}))
	}()

	r := result(t, runDoctor(t, env.Config, nil, "policy-workloads"), "policy-workloads")
	if r.Status != StatusWarn || !strings.Contains(r.Message, "judged by the default policy (no ConfigMap nerv-system/nerv-webhook-policy)") {
		t.Errorf("without a ConfigMap: %s", describe(r))
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyConfigMap.Name, Namespace: PolicyConfigMap.Namespace},
		Data: map[string]string{PolicyConfigMap.Key: `apiVersion: nerv.dev/v1alpha1
kind: PolicyConfig
exemptNamespaces: [kube-system, kube-public, kube-node-lease, nerv-system, traefik]
`},
	}
	cm, err := cs.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	must(t, err)
	defer func() { must(t, cs.CoreV1().ConfigMaps(cm.Namespace).Delete(ctx, cm.Name, metav1.DeleteOptions{})) }()
	r = result(t, runDoctor(t, env.Config, nil, "policy-workloads"), "policy-workloads")
	if r.Status != StatusPass || !strings.Contains(r.Message, "comply with ConfigMap nerv-system/nerv-webhook-policy key policy.yaml") {
		t.Errorf("traefik exempt by the ConfigMap: %s", describe(r))
	}
	cm.Data[PolicyConfigMap.Key] = "apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\npolicies:\n  resources:\n    mode: block\n"
	_, err = cs.CoreV1().ConfigMaps(cm.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	must(t, err)
	r = result(t, runDoctor(t, env.Config, nil, "policy-workloads"), "policy-workloads")
	if r.Status != StatusWarn || !strings.Contains(r.Message, "policies.resources.mode") {
		t.Errorf("invalid ConfigMap: %s", describe(r))
	}
}
