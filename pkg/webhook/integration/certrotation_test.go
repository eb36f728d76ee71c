package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nerv-platform/nerv/pkg/webhook"
)

// TestCertificateRotation replaces the serving certificate in the cert dir, as cert-manager
// and the kubelet do when they renew a Secret, and checks that nerv-webhook presents the new
// one to new connections without a restart, and goes on answering reviews.
func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	host := env.Webhook.LocalServingHost
	writeServingCert(t, dir, host, 1)
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

	writeServingCert(t, dir, host, 2)
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

// writeServingCert writes a self-signed certificate for host with the given serial into dir
// the way a Secret volume is updated: new files renamed over the old ones.
func writeServingCert(t *testing.T, dir, host string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "nerv-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(host)}, DNSNames: []string{host},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name  string
		block *pem.Block
	}{
		{"tls.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}},
		{"tls.crt", &pem.Block{Type: "CERTIFICATE", Bytes: der}},
	} {
		name, block := f.name, f.block
		tmp := filepath.Join(dir, "."+name+".new")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}
