package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/internal/testenv"
)

// webhookOptions runs the real nerv-webhook next to the demo control plane: envtest issues
// its serving certificate and registers the shipped ValidatingWebhookConfiguration, pointed
// at the local port with the CA bundle, exactly as cert-manager's cainjector would in-cluster.
type webhookOptions struct {
	bin, manifests string
}

func (w webhookOptions) configuration() (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	path := filepath.Join(w.manifests, "validatingwebhookconfiguration.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, vwc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range vwc.Webhooks {
		if s := vwc.Webhooks[i].ClientConfig.Service; s != nil && s.Path != nil {
			// envtest joins "https://host:port/" and the path: keep one slash.
			p := strings.TrimPrefix(*s.Path, "/")
			s.Path = &p
		}
	}
	return vwc, nil
}

// policy extracts the policy file from the shipped ConfigMap.
func (w webhookOptions) policy() ([]byte, error) {
	path := filepath.Join(w.manifests, "configmap.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, ok := cm.Data["policy.yaml"]
	if !ok {
		return nil, fmt.Errorf("%s: data.policy.yaml: missing", path)
	}
	return []byte(p), nil
}

func (w webhookOptions) start(ctx context.Context, env *testenv.Env, dir string) error {
	policy, err := w.policy()
	if err != nil {
		return err
	}
	policyPath, _ := filepath.Abs(filepath.Join(dir, "policy.yaml"))
	if err := os.WriteFile(policyPath, policy, 0o600); err != nil {
		return err
	}
	health, err := freeAddr()
	if err != nil {
		return err
	}
	metrics, err := freeAddr()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "webhook-metrics"), []byte("http://"+metrics+"/metrics\n"), 0o600); err != nil {
		return err
	}
	err = env.StartProgram("nerv-webhook", w.bin, []string{"KUBECONFIG=" + env.Kubeconfig},
		"--cert-dir="+env.Webhook.LocalServingCertDir,
		"--port="+strconv.Itoa(env.Webhook.LocalServingPort),
		"--config="+policyPath,
		"--health-probe-bind-address="+health,
		"--metrics-bind-address="+metrics,
		"--shutdown-delay=1s",
	)
	if err != nil {
		return err
	}
	// Ready means the NetworkPolicy and Namespace caches synced; only then do reviews work.
	url := "http://" + health + "/readyz"
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nerv-webhook not ready within 60s (log: %s)", filepath.Join(dir, "nerv-webhook.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And the TLS endpoint the apiserver calls must answer with the certificate envtest issued.
	conn, err := tls.Dial("tcp", net.JoinHostPort(env.Webhook.LocalServingHost, strconv.Itoa(env.Webhook.LocalServingPort)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // liveness only
	if err != nil {
		return fmt.Errorf("nerv-webhook TLS port: %w", err)
	}
	return conn.Close()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
