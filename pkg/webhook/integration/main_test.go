// Package integration runs nerv-webhook against a real kube-apiserver (internal/testenv):
// the webhook is registered through envtest with the rules shipped in manifests/webhook,
// and every request goes through client-go, the apiserver and the webhook's TLS server.
package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/webhook"
)

var env *testenv.Env

const manifestsDir = "../../../manifests/webhook"

func TestMain(m *testing.M) {
	vwc, err := shippedWebhookConfiguration()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	os.Exit(run(m, vwc))
}

// run is testenv.Main's sequence with one addition: nerv-webhook is stopped before the
// control plane, since its open watches otherwise hold up the apiserver's shutdown.
func run(m *testing.M, vwc *admissionregistrationv1.ValidatingWebhookConfiguration) int {
	if v := os.Getenv(testenv.SkipEnv); v == "1" || strings.EqualFold(v, "true") {
		fmt.Fprintf(os.Stderr, "\n*** %s=1: SKIPPING every test of this package: it needs a real kube-apiserver ***\n\n", testenv.SkipEnv)
		return 0
	}
	var err error
	env, err = testenv.Start(context.Background(),
		testenv.WithWebhook(envtest.WebhookInstallOptions{ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{vwc}}),
		testenv.WithCRDPaths("testdata/cert-manager-crds.yaml"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stopping: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// shippedWebhookConfiguration reads the ValidatingWebhookConfiguration of manifests/webhook
// as is; envtest replaces its service reference with the local serving URL and CA.
func shippedWebhookConfiguration() (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(filepath.Join(manifestsDir, "validatingwebhookconfiguration.yaml"))
	if err != nil {
		return nil, err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, vwc); err != nil {
		return nil, fmt.Errorf("manifests/webhook/validatingwebhookconfiguration.yaml: %w", err)
	}
	// Installed under another name, so that TestManifestsDryRun can still dry-run-create the
	// shipped one; the webhooks and their rules are untouched.
	vwc.Name = "nerv-webhook-envtest"
	for i := range vwc.Webhooks {
		if s := vwc.Webhooks[i].ClientConfig.Service; s != nil && s.Path != nil {
			// envtest builds the URL as "https://host:port/" + path; drop the path's own
			// leading slash so that the URL is .../validate, not ...//validate.
			p := strings.TrimPrefix(*s.Path, "/")
			s.Path = &p
		}
	}
	return vwc, nil
}

// running is the one nerv-webhook of this test package.
type running struct {
	server      *webhook.Server
	configPath  string
	metricsAddr string
	healthAddr  string
	log         *logBuffer
	cancel      context.CancelFunc
	done        chan error
}

// stop shuts nerv-webhook down and waits for it, as SIGTERM would.
func (r *running) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("nerv-webhook did not stop within 60s")
	}
}

var (
	startOnce sync.Once
	shared    *running
	startErr  error
)

// policyYAML is the config the package starts with: the shipped defaults, written out.
const policyYAML = `apiVersion: nerv.dev/v1alpha1
kind: PolicyConfig
policies:
  resources:
    mode: enforce
  network:
    mode: enforce
`

// startWebhook starts nerv-webhook on envtest's serving port once and waits until /readyz
// says ready (caches synced).
func startWebhook(t *testing.T) *running {
	t.Helper()
	startOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nerv-webhook-config-")
		if err != nil {
			startErr = err
			return
		}
		r := &running{configPath: filepath.Join(dir, "policy.yaml"), log: &logBuffer{}}
		if err := os.WriteFile(r.configPath, []byte(policyYAML), 0o644); err != nil {
			startErr = err
			return
		}
		r.metricsAddr, r.healthAddr = freeAddr(), freeAddr()
		r.server, err = webhook.New(webhook.Options{
			RestConfig:             env.Config,
			ConfigPath:             r.configPath,
			CertDir:                env.Webhook.LocalServingCertDir,
			Host:                   env.Webhook.LocalServingHost,
			Port:                   env.Webhook.LocalServingPort,
			MetricsBindAddress:     r.metricsAddr,
			HealthProbeBindAddress: r.healthAddr,
			ConfigPollInterval:     500 * time.Millisecond,
			Log:                    logr.FromSlogHandler(r.log.handler()),
		})
		if err != nil {
			startErr = err
			return
		}
		var runCtx context.Context
		runCtx, r.cancel = context.WithCancel(context.Background())
		r.done = make(chan error, 1)
		go func() { r.done <- r.server.Start(runCtx) }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, _ := httpGet("http://" + r.healthAddr + "/readyz")
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				startErr = fmt.Errorf("nerv-webhook not ready after 60s (last /readyz: %d)", code)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		shared = r
	})
	if startErr != nil {
		t.Fatalf("starting nerv-webhook: %v", startErr)
	}
	return shared
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
