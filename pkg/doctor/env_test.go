package doctor

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/policy"
	nervwebhook "github.com/nerv-platform/nerv/pkg/webhook"
)

var env *testenv.Env

// enforceLabel scopes the test webhook to namespaces that ask for it, so that the other
// tests' objects never pass through it.
const enforceLabel = "doctor-test/enforce"

// webhookHandler is nerv-webhook's own admission handler (pkg/webhook) serving the test
// configuration; tests swap its engine to break enforcement.
var webhookHandler *nervwebhook.Handler

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
			Name: "policy.nerv.dev",
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

// testEngine is the policy engine the test webhook starts with: resources enforced,
// network only audited (so that the probe is denied for the reason the check looks for).
// With audit set, the resources policy is only audited too: enforcement is off.
func testEngine(t *testing.T, audit bool) *policy.Engine {
	t.Helper()
	cfg := policy.DefaultConfig()
	cfg.Policies.Network.Mode = policy.ModeAudit
	if audit {
		cfg.Policies.Resources.Mode = policy.ModeAudit
	}
	engine, err := policy.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return engine
}

// staticViews answers the handler's namespace questions with an empty namespace: the test
// webhook has no informers, and the network policy is only audited.
type staticViews struct{}

func (staticViews) View(context.Context, string) policy.NamespaceView {
	return &policy.StaticNamespace{}
}
func (staticViews) Synced() bool { return true }

// startWebhookServer serves pkg/webhook's handler where envtest pointed the configuration,
// through controller-runtime's admission server. It runs until the test binary exits.
func startWebhookServer(t *testing.T) {
	t.Helper()
	if serverOnce.done.Swap(true) {
		if serverOnce.err != nil {
			t.Fatal(serverOnce.err)
		}
		return
	}
	metrics, err := nervwebhook.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		serverOnce.err = err
		t.Fatal(err)
	}
	webhookHandler = nervwebhook.NewHandler(testEngine(t, false), staticViews{}, metrics, nil, logr.Discard())
	srv := webhook.NewServer(webhook.Options{
		Host: env.Webhook.LocalServingHost, Port: env.Webhook.LocalServingPort, CertDir: env.Webhook.LocalServingCertDir,
	})
	srv.Register("/validate", &admission.Webhook{Handler: webhookHandler})
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
