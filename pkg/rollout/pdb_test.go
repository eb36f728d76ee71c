package rollout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nerv-platform/nerv/pkg/drain"
)

var (
	controllersOnce sync.Once
	controllersErr  error
)

// controllers starts kube-controller-manager (Deployments, and the disruption controller
// that fills PodDisruptionBudget status) and kube-scheduler.
func controllers(t *testing.T) {
	t.Helper()
	controllersOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if controllersErr = env.StartControllerManager(ctx); controllersErr == nil {
			controllersErr = env.StartScheduler(ctx)
		}
	})
	if controllersErr != nil {
		t.Fatal(controllersErr)
	}
}

// pinned creates a Deployment whose replicas can only run on node, and a budget for it.
func pinned(t *testing.T, ctx context.Context, ns, node string, replicas int32, budget policyv1.PodDisruptionBudgetSpec) {
	t.Helper()
	if _, err := env.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "db"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
				TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers:                    []corev1.Container{{Name: "db", Image: "registry.example/db:1"}},
			}},
		},
	}
	if _, err := env.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	budget.Selector = &metav1.LabelSelector{MatchLabels: labels}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: budget}
	if _, err := env.Clientset.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		p, err := env.Clientset.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == replicas {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("budget %s/db never counted %d healthy pods: %+v", ns, replicas, p.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestPreflightRefusesWhenABudgetAllowsNoEviction(t *testing.T) {
	controllers(t)
	h := newHarness(t, "zeruel:server", "sahaquiel:agent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pinned(t, ctx, "rollout-pdb-full", "sahaquiel", 2, policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2))})
	plan, err := NewPlan(h.spec, []string{"sahaquiel"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(ctx, plan, Options{Clientset: env.Clientset, Machine: h.machine, Servers: []string{"zeruel"}})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepPreflight || se.Cordoned {
		t.Fatalf("err = %v, want a preflight refusal with the node left schedulable", err)
	}
	if !strings.Contains(err.Error(), "PodDisruptionBudget rollout-pdb-full/db") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("error does not name the budget or say nothing changed:\n%v", err)
	}
	if calls := h.calls(); len(calls) != 0 {
		t.Errorf("nixos-rebuild ran: %q", calls)
	}
}

// A budget allowing one disruption passes the preflight (each eviction alone is allowed), but
// the second pod's eviction waits for the first one's replacement, which cannot run anywhere
// but on the cordoned node: the drain times out, the roll-out stops at drain, the node stays
// cordoned and nothing was installed.
func TestDrainTimeoutStopsTheRollOutBeforeInstalling(t *testing.T) {
	controllers(t)
	h := newHarness(t, "arael:server", "armisael:agent")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pinned(t, ctx, "rollout-pdb-one", "armisael", 2, policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1))})
	plan, err := NewPlan(h.spec, []string{"armisael"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = Run(ctx, plan, Options{Clientset: env.Clientset, Machine: h.machine, Servers: []string{"arael"},
		Drain: drain.Options{Timeout: 4 * time.Second, RetryInterval: 200 * time.Millisecond, PollInterval: 100 * time.Millisecond}})
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepDrain || !se.Cordoned {
		t.Fatalf("err = %v, want a drain failure with the node cordoned", err)
	}
	for _, s := range []string{"PodDisruptionBudget rollout-pdb-one/db", "nothing was installed", "kubectl uncordon armisael"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%v", s, err)
		}
	}
	if calls := h.calls(); len(calls) != 0 {
		t.Errorf("nixos-rebuild ran after a failed drain: %q", calls)
	}
	n, err := env.Clientset.CoreV1().Nodes().Get(ctx, "armisael", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Spec.Unschedulable {
		t.Error("armisael is not cordoned after the failed drain")
	}
}
