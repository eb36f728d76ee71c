package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// logBuffer collects nerv-webhook's JSON log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) handler() slog.Handler { return slog.NewJSONHandler(l, nil) }

// warnings records the admission warnings client-go receives.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// clientWithWarnings is a clientset whose admission warnings land in the returned recorder.
func clientWithWarnings(t *testing.T) (kubernetes.Interface, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, w
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func createNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	_, err := env.Clientset.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func defaultDeny(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{}, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

// createNetworkPolicy creates np and waits until the webhook's informer cache has it.
func createNetworkPolicy(t *testing.T, r *running, np *networkingv1.NetworkPolicy) {
	t.Helper()
	if _, err := env.Clientset.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx(t), np, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating NetworkPolicy %s/%s: %v", np.Namespace, np.Name, err)
	}
	waitCached(t, r, np.Namespace, np.Name, &networkingv1.NetworkPolicy{})
}

// waitCached waits until the webhook's informer cache holds the object.
func waitCached(t *testing.T, r *running, ns, name string, obj client.Object) {
	t.Helper()
	eventually(t, fmt.Sprintf("the webhook's cache to see %T %s/%s", obj, ns, name), func() error {
		return r.server.Manager.GetCache().Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, obj)
	})
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func limits() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
}

func requestsOnly() corev1.ResourceRequirements {
	r := limits()
	r.Limits = nil
	return r
}

func goodPod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1", Resources: limits()}}},
	}
}

func deployment(ns, name string, r corev1.ResourceRequirements) *appsv1.Deployment {
	lbls := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "registry.example/app:1", Resources: limits()},
					{Name: "proxy", Image: "registry.example/proxy:1", Resources: r},
				}},
			},
		},
	}
}

func tlsClient(t *testing.T) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(env.Webhook.LocalServingCAData) {
		t.Fatal("envtest's serving CA is not PEM")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// postReview posts body to the webhook as the API server would and decodes the answer.
func postReview(t *testing.T, cl *http.Client, url string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	resp, err := cl.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("posting to the webhook: %v", err)
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
		t.Fatalf("the answer is not an AdmissionReview: %v", err)
	}
	return ar.Response
}

// dryRunPod creates (dry run) a Pod without resources in ns through the API server.
func dryRunPod(t *testing.T, ns string) error {
	p := goodPod(ns, "probe", nil)
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	_, err := env.Clientset.CoreV1().Pods(ns).Create(ctx(t), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}
