package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/nerv-platform/nerv/pkg/webhook"
)

// TestGracefulShutdown runs a second nerv-webhook, stops it while reviews are being sent,
// and checks it fails readiness at once, answers every review it accepted, then exits.
func TestGracefulShutdown(t *testing.T) {
	startWebhook(t) // the shared one must not be disturbed; this one has its own port
	health, port := freeAddr(), freePort(t)
	s, err := webhook.New(webhook.Options{
		RestConfig: env.Config, CertDir: env.Webhook.LocalServingCertDir, Host: env.Webhook.LocalServingHost, Port: port,
		MetricsBindAddress: "0", HealthProbeBindAddress: health, ShutdownDelay: 2 * time.Second, Log: logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(runCtx) }()
	eventually(t, "the second webhook to be ready", func() error {
		if code, body := httpGet("http://" + health + "/readyz"); code != 200 {
			return fmt.Errorf("/readyz %d %s", code, body)
		}
		return nil
	})

	url := fmt.Sprintf("https://%s:%d/validate", env.Webhook.LocalServingHost, port)
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"namespace":"kube-public","operation":"CREATE","object":{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}}}`)
	cl := tlsClient(t)
	var wg sync.WaitGroup
	answered := make(chan *admissionv1.AdmissionResponse, 10000)
	stopped := time.Now()
	stop()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Keep sending during the shutdown delay, as an apiserver not yet told would.
			for time.Since(stopped) < 1500*time.Millisecond {
				answered <- postReview(t, cl, url, body)
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if code, body := httpGet("http://" + health + "/readyz?verbose"); code == 200 || !strings.Contains(body, "draining failed") {
		t.Errorf("during the shutdown delay /readyz must fail with draining: %d %s", code, body)
	}
	wg.Wait()
	close(answered)
	n := 0
	for resp := range answered {
		n++
		if !resp.Allowed || resp.UID != "u" {
			t.Errorf("a review during shutdown got %+v", resp)
		}
	}
	if n < 8 {
		t.Errorf("only %d reviews answered during the shutdown delay", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start returned %v", err)
		}
		if d := time.Since(stopped); d < 2*time.Second {
			t.Errorf("stopped after %s, before the 2s shutdown delay", d)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("nerv-webhook did not stop")
	}
}

func freePort(t *testing.T) int {
	addr := freeAddr()
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}
