package drain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/nerv-platform/nerv/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

var (
	startOnce sync.Once
	startErr  error
)

// cluster starts what drains need besides the apiserver: kube-controller-manager (Deployments,
// DaemonSets, Jobs, and the disruption controller that fills PodDisruptionBudget status),
// kube-scheduler, and kwok to run the pods on simulated nodes.
func cluster(t *testing.T) {
	t.Helper()
	startOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, start := range []func(context.Context) error{env.StartKwok, env.StartControllerManager, env.StartScheduler} {
			if startErr = start(ctx); startErr != nil {
				return
			}
		}
	})
	if startErr != nil {
		t.Fatal(startErr)
	}
}

// pool creates a namespace and Ready kwok nodes carrying the label pool=<name>, so that each
// test's workloads land only on its own nodes.
func pool(t *testing.T, ctx context.Context, name string, nodes ...string) {
	t.Helper()
	if _, err := env.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		addNode(t, ctx, name, n)
	}
}

func addNode(t *testing.T, ctx context.Context, pool, name string) {
	t.Helper()
	// testenv.CreateNode retries its status write once; with kube-controller-manager's node
	// controllers and kwok all writing the new Node's status, that is not always enough here.
	want := testenv.NodeObject(testenv.Node{Name: name, IP: "10.0.0.1", Labels: map[string]string{"pool": pool}})
	if _, err := env.Clientset.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := env.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Addresses, cur.Status.Capacity, cur.Status.Allocatable = want.Status.Addresses, want.Status.Capacity, want.Status.Allocatable
		_, err = env.Clientset.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.WaitNodeReady(ctx, name); err != nil {
		t.Fatal(err)
	}
}

func podSpec(pool string) corev1.PodSpec {
	return corev1.PodSpec{
		NodeSelector:                  map[string]string{"pool": pool},
		TerminationGracePeriodSeconds: ptr.To[int64](0),
		Containers:                    []corev1.Container{{Name: "c", Image: "registry.example/app:1"}},
	}
}

func deployment(t *testing.T, ctx context.Context, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(ns)},
		},
	}
	if _, err := env.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitPods waits until the pods matching selector in ns number n, all Running and Ready.
func waitPods(t *testing.T, ctx context.Context, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	for {
		list, err := env.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && isReady(&p) {
				ready++
			}
		}
		if ready == n && len(list.Items) == n {
			return list.Items
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d ready pods %q in %s: have %d of %d", n, selector, ns, ready, len(list.Items))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podNames(t *testing.T, ctx context.Context, node string) map[string]bool {
	t.Helper()
	pods, err := PodsOnNode(ctx, env.Clientset, node)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pods {
		out[p.Namespace+"/"+p.Name] = true
	}
	return out
}

func TestDrainEvictsWorkloadsAndSkipsDaemonSetMirrorAndFinishedPods(t *testing.T) {
	cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "drain-evict"
	pool(t, ctx, ns, "evict-a")

	deployment(t, ctx, ns, "web", 2)
	dsLabels := map[string]string{"app": "agent"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: dsLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: dsLabels}, Spec: podSpec(ns)},
		},
	}
	if _, err := env.Clientset.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: ns},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "once"}},
			Spec:       func() corev1.PodSpec { s := podSpec(ns); s.RestartPolicy = corev1.RestartPolicyNever; return s }(),
		}},
	}
	if _, err := env.Clientset.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A static pod's API copy, as the kubelet would post it.
	mirror := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "static-evict-a", Namespace: ns, Annotations: map[string]string{mirrorAnnotation: "hash"}},
		Spec:       func() corev1.PodSpec { s := podSpec(ns); s.NodeName = "evict-a"; return s }(),
	}
	if _, err := env.Clientset.CoreV1().Pods(ns).Create(ctx, mirror, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web := waitPods(t, ctx, ns, "app=web", 2)
	waitPods(t, ctx, ns, "app=agent", 1)
	waitPhase(t, ctx, ns, "app=once", corev1.PodSucceeded)

	// A second node for the evicted replicas to move to.
	addNode(t, ctx, ns, "evict-b")
	var (
		logMu sync.Mutex
		logs  []string
	)
	// Log is called from each pod's eviction goroutine.
	rep, err := Drain(ctx, env.Clientset, "evict-a", Options{Timeout: time.Minute, GracePeriod: KeepGracePeriod, PollInterval: 100 * time.Millisecond,
		Log: func(f string, a ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			logs = append(logs, fmt.Sprintf(f, a...))
		}})
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	want := map[string]bool{}
	for _, p := range web {
		want[ns+"/"+p.Name] = true
	}
	if len(rep.Evicted) != 2 || !want[rep.Evicted[0].String()] || !want[rep.Evicted[1].String()] {
		t.Errorf("evicted %v, want exactly the two web pods %v", rep.Evicted, want)
	}
	skipped := map[string]int{}
	for _, s := range rep.Skipped {
		skipped[s.Reason]++
	}
	if skipped[SkipDaemonSet] != 1 || skipped[SkipMirror] != 1 || skipped[SkipTerminal] != 1 || len(rep.Skipped) != 3 {
		t.Errorf("skipped %+v, want one DaemonSet, one mirror, one terminal pod", rep.Skipped)
	}
	left := podNames(t, ctx, "evict-a")
	for name := range want {
		if left[name] {
			t.Errorf("pod %s still on the drained node", name)
		}
	}
	if !left[ns+"/static-evict-a"] || len(left) != 3 {
		t.Errorf("pods left on the node = %v, want the DaemonSet, mirror and finished pods", left)
	}
	n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "evict-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Spec.Unschedulable {
		t.Error("drained node is not cordoned")
	}
	// The Deployment replaced the evicted replicas on the other node.
	for _, p := range waitPods(t, ctx, ns, "app=web", 2) {
		if p.Spec.NodeName != "evict-b" {
			t.Errorf("replacement pod %s on %q, want evict-b", p.Name, p.Spec.NodeName)
		}
	}
	if len(logs) < 2 {
		t.Errorf("log lines %q, want one per evicted pod", logs)
	}

	if err := Uncordon(ctx, env.Clientset, "evict-a"); err != nil {
		t.Fatal(err)
	}
	n, err = env.Clientset.CoreV1().Nodes().Get(ctx, "evict-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable {
		t.Error("node still unschedulable after Uncordon")
	}
}

func waitPhase(t *testing.T, ctx context.Context, ns, selector string, phase corev1.PodPhase) {
	t.Helper()
	for {
		list, err := env.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 && list.Items[0].Status.Phase == phase {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pod %q in %s never reached %s", selector, ns, phase)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestPDBWithNoAllowedDisruptionsBlocksDrainAndNamesTheBudget(t *testing.T) {
	cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "drain-pdb"
	pool(t, ctx, ns, "pdb-a", "pdb-b")
	deployment(t, ctx, ns, "db", 2)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "db-budget", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		},
	}
	if _, err := env.Clientset.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, ctx, ns, "app=db", 2)
	waitPDB(t, ctx, ns, "db-budget", 2)
	node := pods[0].Spec.NodeName

	blockers, err := Check(ctx, env.Clientset, node, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(blockers) == 0 || blockers[0].PDB != ns+"/db-budget" {
		t.Fatalf("Check = %+v, want the budget %s/db-budget named as the blocker", blockers, ns)
	}

	before := podNames(t, ctx, node)
	rep, err := Drain(ctx, env.Clientset, node, Options{Timeout: 3 * time.Second, RetryInterval: 200 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("Drain err = %v, want *BlockedError", err)
	}
	if !strings.Contains(err.Error(), "PodDisruptionBudget "+ns+"/db-budget") || !strings.Contains(err.Error(), node) {
		t.Errorf("error %q does not name the node and the budget", err)
	}
	if len(rep.Evicted) != 0 {
		t.Errorf("evicted %v despite the budget", rep.Evicted)
	}
	after := podNames(t, ctx, node)
	for p := range before {
		if !after[p] {
			t.Errorf("pod %s left the node although its budget allows no disruption", p)
		}
	}
	if err := Uncordon(ctx, env.Clientset, node); err != nil {
		t.Fatal(err)
	}
}

// waitPDB waits until the disruption controller has counted the budget's healthy pods.
func waitPDB(t *testing.T, ctx context.Context, ns, name string, healthy int32) {
	t.Helper()
	for {
		p, err := env.Clientset.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == healthy {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("budget %s/%s status never counted %d healthy pods: %+v", ns, name, healthy, p.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestUnmanagedPodRefusedUnlessForced(t *testing.T) {
	cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "drain-bare"
	pool(t, ctx, ns, "bare-a")
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: ns, Labels: map[string]string{"app": "bare"}}, Spec: podSpec(ns)}
	if _, err := env.Clientset.CoreV1().Pods(ns).Create(ctx, bare, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ctx, ns, "app=bare", 1)

	blockers, err := Check(ctx, env.Clientset, "bare-a", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(blockers) != 1 || blockers[0].Pod.String() != ns+"/bare" || !strings.Contains(blockers[0].Reason, "no controller") {
		t.Errorf("Check = %+v, want one blocker for the pod without a controller", blockers)
	}
	if blockers, err = Check(ctx, env.Clientset, "bare-a", true); err != nil || len(blockers) != 0 {
		t.Errorf("forced Check = %+v, %v; want no blocker", blockers, err)
	}

	_, err = Drain(ctx, env.Clientset, "bare-a", Options{Timeout: 5 * time.Second})
	var ue *UnmanagedError
	if !errors.As(err, &ue) || len(ue.Pods) != 1 || ue.Pods[0].String() != ns+"/bare" {
		t.Fatalf("Drain err = %v, want *UnmanagedError naming %s/bare", err, ns)
	}
	if !podNames(t, ctx, "bare-a")[ns+"/bare"] {
		t.Fatal("the unmanaged pod was evicted although the drain refused")
	}
	rep, err := Drain(ctx, env.Clientset, "bare-a", Options{Timeout: 30 * time.Second, Force: true, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("forced Drain: %v", err)
	}
	if len(rep.Evicted) != 1 || podNames(t, ctx, "bare-a")[ns+"/bare"] {
		t.Errorf("forced drain evicted %v; the bare pod must be gone", rep.Evicted)
	}
}

func TestCordonUncordonIdempotent(t *testing.T) {
	cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool(t, ctx, "drain-cordon", "cordon-a")
	for _, step := range []struct {
		fn   func(context.Context, string) error
		want bool
	}{
		{func(c context.Context, n string) error { return Cordon(c, env.Clientset, n) }, true},
		{func(c context.Context, n string) error { return Cordon(c, env.Clientset, n) }, true},
		{func(c context.Context, n string) error { return Uncordon(c, env.Clientset, n) }, false},
		{func(c context.Context, n string) error { return Uncordon(c, env.Clientset, n) }, false},
	} {
		if err := step.fn(ctx, "cordon-a"); err != nil {
			t.Fatal(err)
		}
		n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "cordon-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable != step.want {
			t.Errorf("unschedulable = %v, want %v", n.Spec.Unschedulable, step.want)
		}
	}
	if err := Cordon(ctx, env.Clientset, "no-such-node"); err == nil || !strings.Contains(err.Error(), "no-such-node") {
		t.Errorf("Cordon of a missing node: err = %v, want one naming the node", err)
	}
}
