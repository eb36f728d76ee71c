package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// staticViews serves fixed namespaces: the handler's logic without an informer cache
// (the integration tests in ./integration cover the cache).
type staticViews struct {
	byNS     map[string]*policy.StaticNamespace
	unsynced bool
}

func (s *staticViews) View(_ context.Context, ns string) policy.NamespaceView {
	if v, ok := s.byNS[ns]; ok {
		return v
	}
	return &policy.StaticNamespace{}
}

func (s *staticViews) Synced() bool { return !s.unsynced }

// events captures what the handler records (the integration tests check real Events).
type events struct {
	mu    sync.Mutex
	notes []string
}

func (e *events) Eventf(regarding runtime.Object, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := regarding.(metav1.Object)
	e.notes = append(e.notes, fmt.Sprintf("%s %s/%s %s %s: %s", eventtype, m.GetNamespace(), m.GetName(), reason, action, fmt.Sprintf(note, args...)))
}

const (
	deploymentNoLimits = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x","resources":{"requests":{"cpu":"100m","memory":"128Mi"}}}]}}}}`
	deploymentGood     = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x","resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}}}]}}}}`
)

type testServer struct {
	h       *Handler
	events  *events
	reg     *prometheus.Registry
	metrics *Metrics
	views   *staticViews
	http    http.Handler
}

func newTestServer(t testing.TB, cfg func(*policy.Config)) *testServer {
	t.Helper()
	views := benchViews()
	return newTestServerWith(t, cfg, views, views)
}

// newTestServerWith is newTestServer with the handler reading views v (static the same
// views, for tests that change them).
func newTestServerWith(t testing.TB, cfg func(*policy.Config), v Views, static *staticViews) *testServer {
	t.Helper()
	c := policy.DefaultConfig()
	if cfg != nil {
		cfg(c)
	}
	e, err := policy.NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	h := NewHandler(e, v, m, ev, logr.Discard())
	return &testServer{h: h, events: ev, reg: reg, metrics: m, views: static, http: &admission.Webhook{Handler: h, RecoverPanic: ptr.To(false)}}
}

// benchViews holds namespace shop with a default-deny NetworkPolicy.
func benchViews() *staticViews {
	return &staticViews{byNS: map[string]*policy.StaticNamespace{
		"shop": {Policies: []*networkingv1.NetworkPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: "shop"}}}},
	}}
}

func review(op admissionv1.Operation, group, version, kind, ns, name, obj string, dryRun bool) []byte {
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID("uid-1"),
		Kind:      metav1.GroupVersionKind{Group: group, Version: version, Kind: kind},
		Namespace: ns, Name: name, Operation: op, DryRun: &dryRun,
	}
	switch {
	case obj == "":
	case op == admissionv1.Delete:
		req.OldObject.Raw = []byte(obj)
	default:
		req.Object.Raw = []byte(obj)
	}
	b, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
	return b
}

func updateReview(obj, old string) []byte {
	var ar admissionv1.AdmissionReview
	_ = json.Unmarshal(review(admissionv1.Update, "apps", "v1", "Deployment", "shop", "web", obj, false), &ar)
	ar.Request.OldObject.Raw = []byte(old)
	b, _ := json.Marshal(ar)
	return b
}

// post sends body to the webhook and decodes the AdmissionReview it answers.
func (s *testServer) post(t testing.TB, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if len(body) == 0 {
		rd = http.NoBody // what net/http gives a handler for Content-Length: 0
	}
	r := httptest.NewRequest(http.MethodPost, Path, rd)
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.http.ServeHTTP(w, r)
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &ar); err != nil || ar.Response == nil {
		t.Fatalf("response is not an AdmissionReview: %v: %s", err, w.Body.String())
	}
	return ar.Response
}

func TestHandlerDecisions(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(*policy.Config)
		body     []byte
		allowed  bool
		message  []string
		warnings []string
		events   []string
	}{
		{
			name:    "denied deployment names container and field",
			body:    review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false),
			message: []string{"Deployment shop/web violates NERV policy", "spec.template.spec.containers[0].resources.limits.memory", `container "app"`},
		},
		{name: "admitted deployment", body: review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentGood, false), allowed: true},
		{
			name: "warn mode admits with warnings and an event", cfg: func(c *policy.Config) { c.Policies.Resources.Mode = policy.ModeWarn },
			body: review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false), allowed: true,
			warnings: []string{"[resources] spec.template.spec.containers[0].resources.limits.memory: container \"app\" does not set limits.memory"},
			events:   []string{"Warning shop/web NervPolicyWarn Admit: admitted despite resources policy (warn mode): spec.template.spec.containers[0].resources.limits.memory"},
		},
		{
			name: "audit mode admits silently with an event", cfg: func(c *policy.Config) { c.Policies.Resources.Mode = policy.ModeAudit },
			body: review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false), allowed: true,
			events: []string{"Warning shop/web NervPolicyAudit Admit"},
		},
		{
			name: "dry run is judged but records no event", cfg: func(c *policy.Config) { c.Policies.Resources.Mode = policy.ModeWarn },
			body: review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, true), allowed: true,
			warnings: []string{"[resources]"},
		},
		{
			name: "update leaving the pod template as it was",
			body: updateReview(strings.Replace(deploymentNoLimits, `"metadata":{"name":"web"`, `"metadata":{"annotations":{"deployment.kubernetes.io/revision":"2"},"name":"web"`, 1), deploymentNoLimits), allowed: true,
		},
		{
			name:    "update changing the pod template",
			body:    updateReview(deploymentNoLimits, deploymentGood),
			message: []string{"spec.template.spec.containers[0].resources.limits.memory"},
		},
		{
			name:    "pod without networkpolicy in its namespace",
			body:    review(admissionv1.Create, "", "v1", "Pod", "empty", "p", `{"metadata":{"name":"p","labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"x","resources":{"requests":{"cpu":"1","memory":"1Gi"},"limits":{"memory":"1Gi"}}}]}}`, false),
			message: []string{"Pod empty/p", `no NetworkPolicy in namespace "empty"`},
		},
		{
			name:    "world-open networkpolicy",
			body:    review(admissionv1.Create, "networking.k8s.io", "v1", "NetworkPolicy", "shop", "open", `{"metadata":{"name":"open"},"spec":{"podSelector":{},"ingress":[{}]}}`, false),
			message: []string{"spec.ingress[0].from", "nerv.dev/allow-world"},
		},
		{
			name: "exempt namespace",
			body: review(admissionv1.Create, "apps", "v1", "Deployment", "kube-system", "web", strings.Replace(deploymentNoLimits, `"shop"`, `"kube-system"`, 1), false), allowed: true,
		},
		{
			name:    "wrong kind",
			body:    review(admissionv1.Create, "", "v1", "ConfigMap", "shop", "cm", `{"metadata":{"name":"cm"}}`, false),
			message: []string{"nerv-webhook does not judge v1 ConfigMap", "manifests/webhook"},
		},
		{
			name:    "object of the wrong shape",
			body:    review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", `{"spec":{"replicas":"many"}}`, false),
			message: []string{"shop/web", "decoding Deployment"},
		},
		{name: "no object", body: review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", "", false), message: []string{"carries no object"}},
		{name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), message: []string{"not an admission.k8s.io/v1 AdmissionReview"}},
		{name: "malformed JSON", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`), message: []string{"unexpected end of JSON input"}},
		{name: "empty body", body: []byte{}, message: []string{"request body is empty"}},
		{name: "review of the wrong kind", body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","data":{}}`), message: []string{"not an admission.k8s.io/v1 AdmissionReview"}},
		{name: "10 MiB body", body: append(append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"`), bytes.Repeat([]byte("a"), 10<<20)...), []byte(`"}}`)...), message: []string{"request entity is too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			resp := s.post(t, tt.body)
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v; result %+v", resp.Allowed, tt.allowed, resp.Result)
			}
			msg := ""
			if resp.Result != nil {
				msg = resp.Result.Message
			}
			for _, w := range tt.message {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if !tt.allowed && resp.Result == nil {
				t.Error("a refusal must carry a status")
			}
			if len(resp.Warnings) != len(tt.warnings) {
				t.Errorf("warnings = %q, want %d", resp.Warnings, len(tt.warnings))
			}
			for i := range min(len(tt.warnings), len(resp.Warnings)) {
				if !strings.HasPrefix(resp.Warnings[i], tt.warnings[i]) {
					t.Errorf("warning %q does not start with %q", resp.Warnings[i], tt.warnings[i])
				}
			}
			if len(s.events.notes) != len(tt.events) {
				t.Fatalf("events = %q, want %d", s.events.notes, len(tt.events))
			}
			for i, w := range tt.events {
				if !strings.HasPrefix(s.events.notes[i], w) {
					t.Errorf("event %q does not start with %q", s.events.notes[i], w)
				}
			}
		})
	}
}

func TestHandlerServesOnAfterBadRequests(t *testing.T) {
	s := newTestServer(t, nil)
	for _, body := range [][]byte{{}, []byte("{"), []byte("null"), []byte(`{"request":{"kind":{"kind":"Pod","version":"v1"},"object":{"spec":[]}}}`)} {
		if resp := s.post(t, body); resp.Allowed {
			t.Errorf("%q was allowed", body)
		}
	}
	if resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentGood, false)); !resp.Allowed || resp.UID != "uid-1" {
		t.Errorf("a good review after bad ones: %+v", resp)
	}
}

func TestHandlerNotSynced(t *testing.T) {
	s := newTestServer(t, nil)
	s.views.unsynced = true
	resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentGood, false))
	if resp.Allowed || resp.Result.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Result.Message, "not synced") {
		t.Errorf("before the caches sync a review must be refused as unavailable: %+v", resp.Result)
	}
}

func TestHandlerMetrics(t *testing.T) {
	s := newTestServer(t, func(c *policy.Config) { c.Policies.Network.Mode = policy.ModeAudit })
	s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false))
	s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentGood, false))
	s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "other", "web", strings.Replace(deploymentGood, `"shop"`, `"other"`, 1), false))
	s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "kube-system", "web", strings.Replace(deploymentGood, `"shop"`, `"kube-system"`, 1), false))
	want := `
# HELP nerv_webhook_decisions_total Policy decisions by policy, mode, verdict (pass, exempt, deny, warn, audit) and namespace.
# TYPE nerv_webhook_decisions_total counter
nerv_webhook_decisions_total{mode="audit",namespace="kube-system",policy="network",verdict="exempt"} 1
nerv_webhook_decisions_total{mode="audit",namespace="other",policy="network",verdict="audit"} 1
nerv_webhook_decisions_total{mode="audit",namespace="shop",policy="network",verdict="pass"} 2
nerv_webhook_decisions_total{mode="enforce",namespace="kube-system",policy="resources",verdict="exempt"} 1
nerv_webhook_decisions_total{mode="enforce",namespace="other",policy="resources",verdict="pass"} 1
nerv_webhook_decisions_total{mode="enforce",namespace="shop",policy="resources",verdict="deny"} 1
nerv_webhook_decisions_total{mode="enforce",namespace="shop",policy="resources",verdict="pass"} 1
`
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want), "nerv_webhook_decisions_total"); err != nil {
		t.Error(err)
	}
	// Registering again on the same registry reuses the collectors.
	m2, err := NewMetrics(s.reg)
	if err != nil || m2.Decisions != s.metrics.Decisions {
		t.Errorf("second registration: %v", err)
	}
}

// laggingViews is a cache that has not yet seen namespace shop's NetworkPolicy, while the
// API server (FreshView) has it.
type laggingViews struct {
	staticViews
	fresh map[string]*policy.StaticNamespace
	asked int
}

func (l *laggingViews) FreshView(_ context.Context, ns string) policy.NamespaceView {
	l.asked++
	if v, ok := l.fresh[ns]; ok {
		return v
	}
	return &policy.StaticNamespace{}
}

func TestHandlerConfirmsNetworkDenialsAgainstTheAPIServer(t *testing.T) {
	views := &laggingViews{staticViews: staticViews{byNS: map[string]*policy.StaticNamespace{}}, fresh: benchViews().byNS}
	s := newTestServerWith(t, nil, views, &views.staticViews)

	// Lagging cache, NetworkPolicy in the API server: admitted after one re-check.
	if resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentGood, false)); !resp.Allowed {
		t.Errorf("a Deployment whose NetworkPolicy the cache has not seen yet was denied: %+v", resp.Result)
	}
	// No NetworkPolicy anywhere: still denied, after one re-check.
	if resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "other", "web", strings.Replace(deploymentGood, `"shop"`, `"other"`, 1), false)); resp.Allowed {
		t.Error("a Deployment without any NetworkPolicy was admitted")
	}
	// No limits, lagging cache: re-checked for the network policy, still denied by resources.
	if resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false)); resp.Allowed {
		t.Error("a Deployment without limits was admitted")
	}
	// Once the cache has caught up, a denial by another policy alone is not re-checked.
	views.byNS["shop"] = views.fresh["shop"]
	if resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentNoLimits, false)); resp.Allowed {
		t.Error("a Deployment without limits was admitted")
	}
	if views.asked != 3 {
		t.Errorf("FreshView asked %d times, want 3 (network denials only)", views.asked)
	}
	want := `
# HELP nerv_webhook_network_rechecks_total Network-policy denials re-checked against the API server's NetworkPolicies, by result: confirmed, or overturned (the informer cache lagged).
# TYPE nerv_webhook_network_rechecks_total counter
nerv_webhook_network_rechecks_total{result="confirmed"} 1
nerv_webhook_network_rechecks_total{result="overturned"} 2
`
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want), "nerv_webhook_network_rechecks_total"); err != nil {
		t.Error(err)
	}
}

// TestHandlerWithoutFresherViewKeepsTheCacheDenial: CacheViews without an APIReader offers no
// fresher view, so the cache's denial stands and no re-check is counted.
func TestHandlerWithoutFresherViewKeepsTheCacheDenial(t *testing.T) {
	if v := (&CacheViews{}).FreshView(context.Background(), "shop"); v != nil {
		t.Fatalf("CacheViews without an APIReader offered a fresh view: %T", v)
	}
	views := &staticViews{byNS: map[string]*policy.StaticNamespace{}}
	s := newTestServerWith(t, nil, noFreshViews{views}, views)
	if resp := s.post(t, review(admissionv1.Create, "apps", "v1", "Deployment", "shop", "web", deploymentGood, false)); resp.Allowed {
		t.Error("a Deployment without a NetworkPolicy in the cache was admitted")
	}
	if n := testutil.CollectAndCount(s.metrics.Rechecks); n != 0 {
		t.Errorf("%d re-check series recorded without a fresher view", n)
	}
}

// noFreshViews offers FreshViews but has nothing fresher than its cache.
type noFreshViews struct{ *staticViews }

func (noFreshViews) FreshView(context.Context, string) policy.NamespaceView { return nil }
