package doctor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/policy"
)

var env *testenv.Env

// enforceLabel scopes the test webhook to namespaces that ask for it, so that the other
// tests' objects never pass through it.
const enforceLabel = "doctor-test/enforce"

// webhookAdmitsAll turns the test webhook into one that admits everything: a broken
// enforcement for the dry-run check to find.
var webhookAdmitsAll atomic.Bool

func TestMain(m *testing.M) {
	testenv.Main(m, &env,
		testenv.WithCRDPaths("testdata/crds"),
		testenv.WithWebhook(envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{nervWebhookConfig()},
		}),
	)
}

// nervWebhookConfig mirrors the shape of manifests/webhook's configuration: name, Service,
// failurePolicy Fail, sideEffects None. envtest rewrites the Service to a local URL.
func nervWebhookConfig() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhookConfig},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "pods.nerv.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Namespace: webhookNamespace, Name: webhookService, Path: ptr.To("validate")},
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{enforceLabel: "true"}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
		}},
	}
}

var serverOnce struct {
	done atomic.Bool
	err  error
}

// startWebhookServer serves the test webhook where envtest pointed the configuration: the
// real policy engine (resources enforced, network only audited, so that the probe is denied
// for the reason the check looks for), answering through controller-runtime's admission
// server. It runs until the test binary exits.
func startWebhookServer(t *testing.T) {
	t.Helper()
	if serverOnce.done.Swap(true) {
		if serverOnce.err != nil {
			t.Fatal(serverOnce.err)
		}
		return
	}
	cfg := policy.DefaultConfig()
	cfg.Policies.Network.Mode = policy.ModeAudit
	engine, err := policy.NewEngine(cfg)
	if err != nil {
		serverOnce.err = err
		t.Fatal(err)
	}
	srv := webhook.NewServer(webhook.Options{
		Host: env.Webhook.LocalServingHost, Port: env.Webhook.LocalServingPort, CertDir: env.Webhook.LocalServingCertDir,
	})
	srv.Register("/validate", &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		if webhookAdmitsAll.Load() {
			return admission.Allowed("")
		}
		gvk := req.Kind
		obj, err := policy.Decode(schemaGVK(gvk.Group, gvk.Version, gvk.Kind), req.Object.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		d, err := engine.Evaluate(policy.Request{Object: obj, Namespace: req.Namespace}, nil)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if d.Denied() {
			return admission.Denied(d.DenyMessage())
		}
		return admission.Allowed("")
	})})
	go func() {
		if err := srv.Start(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "test webhook server: %v\n", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for srv.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			serverOnce.err = fmt.Errorf("test webhook server did not start")
			t.Fatal(serverOnce.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func schemaGVK(group, version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}
