// Command doctor measures `kubectl nerv doctor` on a simulated large cluster: a real
// kube-apiserver (internal/testenv) holding 300 nodes, 10,000 pods in 150 namespaces and
// 300 ArgoCD Applications. It prints the wall time of whole doctor runs and every API
// request they made, by verb, and fails if a run is slower than the target or makes a
// request per object (only list calls may scale; a fixed few named requests are allowed).
//
//	go run ./hack/bench/doctor [-nodes 300 -pods 10000 -namespaces 150 -apps 300 -runs 5]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/doctor"
)

func main() {
	nodes := flag.Int("nodes", 300, "nodes")
	pods := flag.Int("pods", 10000, "pods")
	namespaces := flag.Int("namespaces", 150, "namespaces")
	apps := flag.Int("apps", 300, "ArgoCD Applications")
	runs := flag.Int("runs", 5, "doctor runs to time (the median is reported)")
	target := flag.Duration("target", 3*time.Second, "wall time target of one run")
	flag.Parse()
	if err := run(*nodes, *pods, *namespaces, *apps, *runs, *target); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// counter counts requests by verb and resource, as the apiserver would classify them.
type counter struct {
	mu     sync.Mutex
	byVerb map[string]int
	byKey  map[string]int
}

var infoFactory = &apirequest.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byVerb, c.byKey = map[string]int{}, map[string]int{}
}

func (c *counter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		verb, key := "nonresource", req.URL.Path
		if info, err := infoFactory.NewRequestInfo(req); err == nil && info.IsResourceRequest {
			verb = info.Verb
			key = info.Verb + " " + info.Resource
			if info.Name != "" {
				key += "/" + info.Name
			}
			if req.URL.Query().Has("dryRun") {
				key += " (dry run)"
			}
		}
		c.mu.Lock()
		c.byVerb[verb]++
		c.byKey[key]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func run(nNodes, nPods, nNS, nApps, runs int, target time.Duration) error {
	ctx := context.Background()
	start := time.Now()
	env, err := testenv.Start(ctx, testenv.WithCRDs(testenv.PlatformCRDs()...))
	if err != nil {
		return err
	}
	defer env.Stop()
	fmt.Printf("control plane up in %s\n", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := populate(ctx, env, nNodes, nPods, nNS, nApps); err != nil {
		return err
	}
	fmt.Printf("created %d nodes, %d namespaces, %d pods, %d Applications in %s\n", nNodes, nNS, nPods, nApps, time.Since(start).Round(time.Millisecond))

	c := &counter{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(c.wrap)

	var times []time.Duration
	var rep *doctor.Report
	for i := range runs + 1 {
		c.reset()
		t0 := time.Now()
		rep, err = doctor.Run(ctx, doctor.Options{Config: cfg})
		if err != nil {
			return err
		}
		d := time.Since(t0)
		if i == 0 {
			fmt.Printf("warm-up run: %s\n", d.Round(time.Millisecond))
			continue // connection set-up and the apiserver's first decode of each kind
		}
		times = append(times, d)
	}
	slices.Sort(times)
	median := times[len(times)/2]
	fmt.Printf("\ndoctor runs (%d): median %s, min %s, max %s (target < %s)\n", runs, ms(median), ms(times[0]), ms(times[len(times)-1]), target)
	fmt.Printf("results: %d passed, %d warnings, %d failed, %d skipped\n", rep.Summary.Passed, rep.Summary.Warnings, rep.Summary.Failed, rep.Summary.Skipped)

	// Baseline, same run: the same kinds listed one after another in JSON, as a script of
	// `kubectl get -A -o json` calls would, without doctor's concurrency and protobuf.
	base, err := sequentialJSONLists(ctx, env.Config)
	if err != nil {
		return err
	}
	fmt.Printf("baseline (sequential JSON lists of pods, nodes, namespaces, Applications): %s; doctor/baseline = %.2f\n", ms(base), float64(median)/float64(base))

	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.byVerb {
		total += n
	}
	fmt.Printf("\nAPI requests in the last run: %d\n", total)
	for _, k := range sortedKeys(c.byKey) {
		fmt.Printf("  %3d  %s\n", c.byKey[k], k)
	}
	var problems []string
	for k, n := range c.byKey {
		verb, _, _ := strings.Cut(k, " ")
		switch {
		case n > 1 && verb == "list":
			problems = append(problems, fmt.Sprintf("%s listed %d times (want once per run)", k, n))
		case verb == "list", k == "/version", strings.HasPrefix(k, "get secrets/"), strings.HasPrefix(k, "get configmaps/"), strings.HasSuffix(k, "(dry run)"):
		default:
			problems = append(problems, fmt.Sprintf("%d× %s: not a list call", n, k))
		}
	}
	if total > 40 {
		problems = append(problems, fmt.Sprintf("%d requests: more than the kinds doctor reads", total))
	}
	if median > target {
		problems = append(problems, fmt.Sprintf("median run %s over the target %s", ms(median), target))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("targets missed:\n  %s", strings.Join(problems, "\n  "))
	}
	fmt.Println("\ntargets met: < 3 s, list calls only")
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parallel runs f(0..n-1) on 32 workers and returns the first error.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

func populate(ctx context.Context, env *testenv.Env, nNodes, nPods, nNS, nApps int) error {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 5000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	version, err := cs.Discovery().ServerVersion()
	if err != nil {
		return err
	}
	// Nodes: the object kwok would manage, Ready, written directly (kwok is optional here:
	// doctor reads node objects, not kubelets).
	err = parallel(nNodes, func(i int) error {
		role := "agent"
		if i < 3 {
			role = "server"
		}
		n := testenv.NodeObject(testenv.Node{Name: fmt.Sprintf("node-%03d", i), IP: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), Role: role, KubeletVersion: version.GitVersion})
		status := n.Status
		created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		created.Status = status
		created.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	nsName := func(i int) string { return fmt.Sprintf("team-%03d", i) }
	err = parallel(nNS, func(i int) error {
		ns := nsName(i)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		// No controller manager: the ServiceAccount admission plugin needs "default" to exist.
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		if i%3 == 0 {
			return nil // a third without a default-deny policy: findings for the audit
		}
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: ns}, Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
		_, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, np, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	err = parallel(nPods, func(i int) error {
		c := corev1.Container{Name: "app", Image: "example.invalid/app:1"}
		if i%10 != 0 { // one in ten without resources: violations for the audit
			c.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
			}
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%05d", i), Namespace: nsName(i % nNS), Labels: map[string]string{"app": "bench"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, NodeName: fmt.Sprintf("node-%03d", i%nNodes)},
		}
		_, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return parallel(nApps, func(i int) error {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": fmt.Sprintf("app-%03d", i), "namespace": "argocd"},
			"spec":     map[string]any{"project": "default"},
		}}
		created, err := dyn.Resource(applicationsGVR).Namespace("argocd").Create(ctx, u, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		health := "Healthy"
		if i%50 == 0 {
			health = "Degraded"
		}
		created.Object["status"] = map[string]any{"sync": map[string]any{"status": "Synced"}, "health": map[string]any{"status": health}}
		_, err = dyn.Resource(applicationsGVR).Namespace("argocd").UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	})
}

var applicationsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// sequentialJSONLists lists the big kinds one after another in JSON: the baseline.
func sequentialJSONLists(ctx context.Context, cfg *rest.Config) (time.Duration, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	// Warm once, as the doctor runs were; then the median of five.
	var times []time.Duration
	for i := range 6 {
		t0 := time.Now()
		if _, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
			return 0, err
		}
		if _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			return 0, err
		}
		if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
			return 0, err
		}
		if _, err := dyn.Resource(applicationsGVR).List(ctx, metav1.ListOptions{}); err != nil {
			return 0, err
		}
		if i > 0 {
			times = append(times, time.Since(t0))
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
