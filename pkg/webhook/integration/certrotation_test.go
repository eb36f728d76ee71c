package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/webhook"
)

// TestCertificateRotation replaces the serving certificate in the cert dir, as cert-manager
// and the kubelet do when they renew a Secret, and checks that nerv-webhook presents the new
// one to new connections without a restart, and goes on answering reviews.
func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	host := env.Webhook.LocalServingHost
	mustServingCert(t, dir, host, 1)
	port := freePort(t)
	s, err := webhook.New(webhook.Options{
		RestConfig: env.Config, CertDir: dir, Host: host, Port: port,
		MetricsBindAddress: "0", HealthProbeBindAddress: "0", Log: logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() { stop(); <-done })

	addr := net.JoinHostPort(host, fmt.Sprint(port))
	serial := func() (int64, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads which certificate is served
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	eventually(t, "the webhook's caches to sync", func() error {
		if !s.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	eventually(t, "the webhook to serve certificate 1", func() error {
		if n, err := serial(); err != nil || n != 1 {
			return fmt.Errorf("serial %d, %v", n, err)
		}
		return nil
	})

	mustServingCert(t, dir, host, 2)
	eventually(t, "the webhook to serve the renewed certificate 2", func() error {
		if n, err := serial(); err != nil || n != 2 {
			return fmt.Errorf("serial %d, %v", n, err)
		}
		return nil
	})

	// Still the same process answering reviews, over a connection verified against the new
	// certificate.
	pool := x509.NewCertPool()
	crt, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(crt)
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"r","kind":{"version":"v1","kind":"Pod"},"namespace":"kube-public","operation":"CREATE","object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}}}`)
	if resp := postReview(t, cl, "https://"+addr+webhook.Path, body); !resp.Allowed || resp.UID != "r" {
		t.Errorf("review after rotation: %+v", resp)
	}
}

// mustServingCert writes a certificate with the given serial into dir, as a renewed Secret
// volume would.
func mustServingCert(t *testing.T, dir, host string, serial int64) {
	t.Helper()
	if _, err := testenv.WriteServingCert(dir, host, serial); err != nil {
		t.Fatal(err)
	}
}
