// Command webhook-load measures what admission policy costs a Pod create through a real
// kube-apiserver (internal/testenv), in one invocation:
//
//	(a) no admission policy
//	(b) a ValidatingAdmissionPolicy in CEL doing the resources check
//	(c) a minimal webhook that only decodes the review and admits
//	(d) nerv-webhook with both policies (resources and network) in enforce mode
//
// For each concurrency it runs the four configurations in alternating rounds (a b c d a b c
// d ...) because a shared machine is noisy, and prints per configuration the median over
// rounds of p50, p99 and throughput, plus the ratios d/c and d/a.
//
//	go run ./hack/bench/webhook-load -n 400 -rounds 5 -c 16,1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/webhook"
)

const ns = "bench"

type config struct {
	key, name string
}

var configs = []config{
	{"a", "no policy"},
	{"b", "ValidatingAdmissionPolicy (CEL)"},
	{"c", "minimal webhook"},
	{"d", "nerv-webhook"},
}

type result struct {
	p50, p99 time.Duration
	rate     float64
}

func main() {
	n := flag.Int("n", 400, "Pod creates per run")
	rounds := flag.Int("rounds", 5, "alternating rounds (a b c d) per concurrency")
	conc := flag.String("c", "16,1", "comma-separated concurrencies")
	manifests := flag.String("manifests", "manifests/webhook", "manifests/webhook directory (its ValidatingWebhookConfiguration rules are used)")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	if err := run(*n, *rounds, *conc, *manifests); err != nil {
		fmt.Fprintf(os.Stderr, "webhook-load: %v\n", err)
		os.Exit(1)
	}
}

func run(n, rounds int, concList, manifests string) error {
	var concs []int
	for _, s := range strings.Split(concList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("-c %q: want positive integers", concList)
		}
		concs = append(concs, c)
	}
	shipped, err := readWebhookConfiguration(filepath.Join(manifests, "validatingwebhookconfiguration.yaml"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd ...")
	env, err := testenv.Start(ctx)
	if err != nil {
		return err
	}
	defer env.Stop()

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1e6, 1e6 // the client must not be the bottleneck
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}

	certDir, err := os.MkdirTemp("", "webhook-load-certs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(certDir)
	caPEM, err := testenv.WriteServingCert(certDir, "127.0.0.1", 1)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	// (c): controller-runtime's webhook server with a handler that admits everything.
	var minimalCalls atomic.Int64
	minimalPort, err := freePort()
	if err != nil {
		return err
	}
	minimal := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: minimalPort, CertDir: certDir})
	minimal.Register(webhook.Path, &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		minimalCalls.Add(1)
		return admission.Allowed("")
	})})
	go func() { _ = minimal.Start(runCtx) }()

	// (d): nerv-webhook exactly as cmd/nerv-webhook runs it, with the default config.
	nervPort, err := freePort()
	if err != nil {
		return err
	}
	nerv, err := webhook.New(webhook.Options{RestConfig: env.Config, CertDir: certDir, Host: "127.0.0.1", Port: nervPort,
		MetricsBindAddress: "0", HealthProbeBindAddress: "0", Log: logr.Discard()})
	if err != nil {
		return err
	}
	go func() { _ = nerv.Start(runCtx) }()
	if err := poll(60*time.Second, func() error { return boolErr(nerv.Ready(), "nerv-webhook caches not synced") }); err != nil {
		return err
	}

	sw := &switcher{cs: cs, shipped: shipped, ca: caPEM, ports: map[string]int{"c": minimalPort, "d": nervPort}, minimalCalls: &minimalCalls}
	results := map[int]map[string][]result{}
	fmt.Fprintf(os.Stderr, "load average before: %s\n", loadavg())
	for _, c := range concs {
		results[c] = map[string][]result{}
		for r := range rounds {
			for _, cf := range configs {
				if err := sw.use(ctx, cf.key); err != nil {
					return fmt.Errorf("switching to (%s): %w", cf.key, err)
				}
				res, err := createPods(ctx, cs, n, c, fmt.Sprintf("c%d-r%d-%s", c, r, cf.key))
				if err != nil {
					return fmt.Errorf("(%s) round %d: %w", cf.key, r+1, err)
				}
				results[c][cf.key] = append(results[c][cf.key], res)
				fmt.Fprintf(os.Stderr, "concurrency %d round %d (%s): p50 %.2fms p99 %.2fms %.0f pods/s\n", c, r+1, cf.key, ms(res.p50), ms(res.p99), res.rate)
				if err := deletePods(ctx, cs); err != nil {
					return err
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "load average after: %s\n", loadavg())
	report(n, rounds, concs, results)
	return nil
}

func report(n, rounds int, concs []int, results map[int]map[string][]result) {
	fmt.Printf("webhook-load: %d Pod creates per run, %d alternating rounds, median over rounds; %d CPUs, GOMAXPROCS %d\n",
		n, rounds, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	for _, c := range concs {
		med := map[string]result{}
		for _, cf := range configs {
			med[cf.key] = median(results[c][cf.key])
		}
		fmt.Printf("\nconcurrency %d\n", c)
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "configuration\tp50 ms\tp99 ms\tpods/s\t")
		for _, cf := range configs {
			m := med[cf.key]
			fmt.Fprintf(w, "(%s) %s\t%.2f\t%.2f\t%.0f\t\n", cf.key, cf.name, ms(m.p50), ms(m.p99), m.rate)
		}
		d, cc, a := med["d"], med["c"], med["a"]
		fmt.Fprintf(w, "d/c\t%.2f\t%.2f\t%.2f\t\n", ratio(d.p50, cc.p50), ratio(d.p99, cc.p99), d.rate/cc.rate)
		fmt.Fprintf(w, "d/a\t%.2f\t%.2f\t%.2f\t\n", ratio(d.p50, a.p50), ratio(d.p99, a.p99), d.rate/a.rate)
		fmt.Fprintf(w, "d-a (ms per create)\t%+.2f\t%+.2f\t\t\n", ms(d.p50-a.p50), ms(d.p99-a.p99))
		w.Flush()
	}
}

// median takes each metric's median over rounds separately.
func median(rs []result) result {
	var p50, p99 []time.Duration
	var rate []float64
	for _, r := range rs {
		p50, p99, rate = append(p50, r.p50), append(p99, r.p99), append(rate, r.rate)
	}
	slices.Sort(p50)
	slices.Sort(p99)
	slices.Sort(rate)
	m := len(rs) / 2
	if len(rs)%2 == 1 {
		return result{p50[m], p99[m], rate[m]}
	}
	return result{(p50[m-1] + p50[m]) / 2, (p99[m-1] + p99[m]) / 2, (rate[m-1] + rate[m]) / 2}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// createPods creates n compliant Pods at concurrency c and measures each create.
func createPods(ctx context.Context, cs kubernetes.Interface, n, c int, prefix string) (result, error) {
	lat := make([]time.Duration, n)
	next := atomic.Int64{}
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				p := benchPod(fmt.Sprintf("%s-%d", prefix, i))
				t0 := time.Now()
				_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				lat[i] = time.Since(t0)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return result{}, firstErr
	}
	slices.Sort(lat)
	return result{p50: lat[n/2], p99: lat[min(n-1, n*99/100)], rate: float64(n) / elapsed.Seconds()}, nil
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
		}}},
	}
}

// deletePods empties the namespace between runs (unscheduled Pods go at once), outside
// the measurement, so that every run starts from the same store size.
func deletePods(ctx context.Context, cs kubernetes.Interface) error {
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("deleting pods: %w", err)
	}
	return poll(60*time.Second, func() error {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		return boolErr(len(l.Items) == 0, fmt.Sprintf("%d pods left", len(l.Items)))
	})
}

// switcher installs one configuration at a time and waits until the apiserver applies it.
type switcher struct {
	cs           kubernetes.Interface
	shipped      *admissionregistrationv1.ValidatingWebhookConfiguration
	ca           []byte
	ports        map[string]int
	minimalCalls *atomic.Int64
}

const (
	vwcName = "webhook-load"
	vapName = "webhook-load-resources"
)

func (s *switcher) use(ctx context.Context, key string) error {
	adm := s.cs.AdmissionregistrationV1()
	if err := ignoreNotFound(adm.ValidatingWebhookConfigurations().Delete(ctx, vwcName, metav1.DeleteOptions{})); err != nil {
		return err
	}
	if err := ignoreNotFound(adm.ValidatingAdmissionPolicyBindings().Delete(ctx, vapName, metav1.DeleteOptions{})); err != nil {
		return err
	}
	if err := ignoreNotFound(adm.ValidatingAdmissionPolicies().Delete(ctx, vapName, metav1.DeleteOptions{})); err != nil {
		return err
	}
	switch key {
	case "b":
		vap, binding := resourcesVAP()
		if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, vap, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return err
		}
	case "c", "d":
		vwc := s.shipped.DeepCopy()
		vwc.ObjectMeta = metav1.ObjectMeta{Name: vwcName}
		for i := range vwc.Webhooks {
			url := fmt.Sprintf("https://127.0.0.1:%d%s", s.ports[key], webhook.Path)
			vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: s.ca}
		}
		if _, err := adm.ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// A probe Pod without resources (dry run) shows which configuration the apiserver applies.
	probe := func() (denial string, calls int64, err error) {
		before := s.minimalCalls.Load()
		p := benchPod("probe")
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
		_, err = s.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		calls = s.minimalCalls.Load() - before
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return err.Error(), calls, nil
		}
		return "", calls, err
	}
	stable := 0
	return poll(30*time.Second, func() error {
		denial, calls, err := probe()
		if err != nil {
			return err
		}
		var ok bool
		switch key {
		case "a":
			ok = denial == "" && calls == 0
		case "b":
			ok = strings.Contains(denial, vapName)
		case "c":
			ok = denial == "" && calls == 1
		case "d":
			ok = strings.Contains(denial, "violates NERV policy") && calls == 0
		}
		if !ok {
			stable = 0
			return fmt.Errorf("configuration (%s) not in effect yet (denial %q, minimal webhook calls %d)", key, denial, calls)
		}
		// Three agreeing probes in a row: every apiserver watch has caught up.
		if stable++; stable < 3 {
			return errors.New("confirming")
		}
		return nil
	})
}

// resourcesVAP is the CEL equivalent of nerv's resources policy for Pods (its default
// required set), the way a Kubernetes-native user would write it.
func resourcesVAP() (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	const ok = `has(c.resources) && has(c.resources.requests) && has(c.resources.limits) && ` +
		`'cpu' in c.resources.requests && 'memory' in c.resources.requests && 'memory' in c.resources.limits`
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: vapName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `object.spec.containers.all(c, ` + ok + `) && (!has(object.spec.initContainers) || object.spec.initContainers.all(c, ` + ok + `))`,
				Message:    "every container must set requests.cpu, requests.memory and limits.memory",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: vapName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        vapName,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "nerv-system"}},
			}}},
		},
	}
	return vap, binding
}

func readWebhookConfiguration(path string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (run from the repository root or pass -manifests)", err)
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, vwc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vwc, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func boolErr(ok bool, msg string) error {
	if ok {
		return nil
	}
	return errors.New(msg)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
