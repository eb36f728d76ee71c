package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/utils/ptr"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/policy"
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
// its own keep-alive connection, sending Pod reviews. The server runs in its own process, as
// it does in a cluster where the client is the API server: sharing one Go runtime (its
// scheduler and garbage collector) with 64 load goroutines would measure the load generator.
// Both processes share the machine's cores.
//
//   - nerv: nerv-webhook's handler with the default policies;
//   - minimal: the baseline, a handler that decodes the review and admits.
//
// For each, one after the other:
//
//   - saturation: closed loop, as fast as answers come back; reports the throughput.
//   - rate-5000: open loop at 5,000 reviews/s in total; latency is measured from each
//     request's scheduled send time, so a stall is not hidden by the clients waiting.
//
// Each b.N is the number of reviews sent.
func BenchmarkHandlerTLSLoad(b *testing.B) {
	const clients = 64
	body := review(admissionv1.Create, "", "v1", "Pod", "shop", "web", podGood, false)
	for _, handler := range []string{"nerv", "minimal"} {
		b.Run(handler, func(b *testing.B) {
			addr, pool := startServerProcess(b, handler)
			url := "https://" + addr + Path
			cs := make([]*http.Client, clients)
			for i := range cs {
				cs[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
				}}
				send(b, cs[i], url, body) // handshake outside the measurement
			}
			b.Run("saturation", func(b *testing.B) { loadRun(b, cs, url, body, 0) })
			b.Run("rate-5000", func(b *testing.B) { loadRun(b, cs, url, body, 5000) })
		})
	}
}

// loadRun sends b.N reviews spread over the clients, at rate reviews/s in total (0: closed
// loop), and reports throughput and latency percentiles.
func loadRun(b *testing.B, cs []*http.Client, url string, body []byte, rate float64) {
	clients := len(cs)
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	per := max(b.N/clients, 1)
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
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
		})
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

func TestMain(m *testing.M) {
	if h := os.Getenv(serverProcessEnv); h != "" {
		if err := serveBenchProcess(h); err != nil {
			fmt.Fprintln(os.Stderr, "webhook bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serverProcessEnv names the handler a re-executed test binary serves (see TestMain).
const serverProcessEnv = "NERV_WEBHOOK_BENCH_SERVE"

// startServerProcess re-executes the test binary as a webhook server process serving
// handler ("nerv" or "minimal") and returns its address and a pool trusting its certificate.
func startServerProcess(b *testing.B, handler string) (string, *x509.CertPool) {
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverProcessEnv+"="+handler, "NERV_WEBHOOK_BENCH_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the server exits when this closes
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("webhook server process: %v", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return strings.TrimSpace(line), pool
}

// serveBenchProcess is the server side of startServerProcess: it serves until stdin closes.
func serveBenchProcess(handler string) error {
	var h admission.Handler = admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})
	if handler == "nerv" {
		e, err := policy.NewEngine(policy.DefaultConfig())
		if err != nil {
			return err
		}
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return err
		}
		h = NewHandler(e, benchViews(), m, &events{}, logr.Discard())
	}
	dir := os.Getenv("NERV_WEBHOOK_BENCH_DIR")
	if _, err := testenv.WriteServingCert(dir, "127.0.0.1", 1); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	srv.Register(Path, &admission.Webhook{Handler: h, RecoverPanic: ptr.To(true)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	check := srv.StartedChecker()
	for i := 0; check(nil) != nil; i++ {
		if i > 100 {
			return errors.New("webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("127.0.0.1:%d\n", port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	return <-done
}
