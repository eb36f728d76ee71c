package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/utils/ptr"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const podGood = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-7d9f8-abcde","namespace":"shop","labels":{"app":"web","pod-template-hash":"7d9f8"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8","uid":"0b8c5c2e-8c1f-4f55-a0b6-3b0f1e0e4a11","controller":true}]},"spec":{"containers":[{"name":"app","image":"registry.example/web:1.2.3","ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}},"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","schedulerName":"default-scheduler"}}`

// BenchmarkHandler measures one review through the whole HTTP handler: controller-runtime's
// decoding of the AdmissionReview, our object decoding and evaluation, and the encoded answer.
func BenchmarkHandler(b *testing.B) {
	cases := []struct{ name, group, kind, obj string }{
		{"pod-admitted", "", "Pod", podGood},
		{"deployment-admitted", "apps", "Deployment", deploymentGood},
		{"deployment-denied", "apps", "Deployment", deploymentNoLimits},
		{"networkpolicy-denied", "networking.k8s.io", "NetworkPolicy", `{"metadata":{"name":"open","namespace":"shop"},"spec":{"podSelector":{},"ingress":[{}]}}`},
	}
	s := newTestServer(b, nil)
	for _, c := range cases {
		body := review(admissionv1.Create, c.group, "v1", c.kind, "shop", "x", c.obj, false)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				s.http.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Body.String())
				}
			}
		})
	}
}

// BenchmarkHandlerTLSLoad drives the production webhook server (controller-runtime's, with
// TLS and its metrics instrumentation) with 64 concurrent TLS clients on loopback, each on
// its own connection, sending Pod reviews:
//
//   - saturation: closed loop, as fast as answers come back; reports the throughput.
//   - rate-5000: open loop at 5,000 reviews/s in total; latency is measured from each
//     request's scheduled send time, so a stall is not hidden by the clients waiting.
//
// Each b.N is the number of reviews sent.
func BenchmarkHandlerTLSLoad(b *testing.B) {
	const clients = 64
	s := newTestServer(b, nil)
	addr, pool := startTLSServer(b, s)
	body := review(admissionv1.Create, "", "v1", "Pod", "shop", "web", podGood, false)
	url := "https://" + addr + Path
	newClient := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
		}}
	}
	cs := make([]*http.Client, clients)
	for i := range cs {
		cs[i] = newClient()
		send(b, cs[i], url, body) // handshake outside the measurement
	}

	run := func(b *testing.B, rate float64) {
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		start := time.Now()
		per := b.N / clients
		if per == 0 {
			per = 1
		}
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := make([]time.Duration, 0, per)
				for k := range per {
					sched := time.Now()
					if rate > 0 {
						// Client i sends its k-th review at a fixed offset of the global schedule.
						sched = start.Add(time.Duration(float64(k*clients+i) / rate * float64(time.Second)))
						if d := time.Until(sched); d > 0 {
							time.Sleep(d)
						}
					}
					send(b, cs[i], url, body)
					l = append(l, time.Since(sched))
				}
				lat[i] = l
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e6 }
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "reviews/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("saturation", func(b *testing.B) { run(b, 0) })
	b.Run("rate-5000", func(b *testing.B) { run(b, 5000) })
}

func send(b *testing.B, c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// startTLSServer runs controller-runtime's webhook server with s's handler on loopback, with
// a fresh self-signed certificate, and returns its address and a pool trusting it.
func startTLSServer(b *testing.B, s *testServer) (string, *x509.CertPool) {
	dir := b.TempDir()
	certPEM := writeSelfSignedCert(b, dir)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	srv.Register(Path, &admission.Webhook{Handler: s.h, RecoverPanic: ptr.To(true)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	check := srv.StartedChecker()
	for i := 0; check(nil) != nil; i++ {
		if i > 100 {
			b.Fatal("webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("127.0.0.1:%d", port), pool
}

func writeSelfSignedCert(t testing.TB, dir string) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nerv-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
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
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}
