package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Workload kinds a component is made of.
const (
	kindDeployment  = "Deployment"
	kindDaemonSet   = "DaemonSet"
	kindStatefulSet = "StatefulSet"
)

// workload is one expected part of a component. Names are alternatives: the first is the
// name NERV's install uses, the others those of upstream's plain manifests.
type workload struct {
	Kind  string
	Names []string
}

// namespaceInstalled returns "" if ns exists, or the reason to skip the checks of a
// component that lives there.
func namespaceInstalled(ctx context.Context, s *Snapshot, component, ns string) (skip string, err error) {
	nss, err := s.Namespaces(ctx)
	if err != nil {
		return "", err
	}
	for i := range nss {
		if nss[i].Name == ns {
			return "", nil
		}
	}
	return fmt.Sprintf("%s is not installed: no namespace %s", component, ns), nil
}

// componentReady is the outcome of "every workload of the component in ns is ready".
func componentReady(ctx context.Context, s *Snapshot, component, ns string, parts ...workload) Outcome {
	skip, err := namespaceInstalled(ctx, s, component, ns)
	if err != nil {
		return fromError(err)
	}
	if skip != "" {
		return Skipf("%s", skip)
	}
	var bad, good []string
	for _, p := range parts {
		name, ready, why, err := workloadStatus(ctx, s, ns, p)
		if err != nil {
			return fromError(err)
		}
		if ready {
			good = append(good, name)
		} else {
			bad = append(bad, why)
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d %s workloads not ready", len(bad), len(parts), component)
	}
	return Passf("%s ready", strings.Join(good, ", "))
}

// workloadStatus finds the workload by any of its names and judges its readiness.
func workloadStatus(ctx context.Context, s *Snapshot, ns string, w workload) (name string, ready bool, why string, err error) {
	ref := func(n string) string { return fmt.Sprintf("%s %s/%s", w.Kind, ns, n) }
	switch w.Kind {
	case kindDeployment:
		ds, err := s.Deployments(ctx)
		if err != nil {
			return "", false, "", err
		}
		if d := findDeployment(ds, ns, w.Names...); d != nil {
			ok, why := deploymentReady(d)
			return ref(d.Name), ok, ref(d.Name) + ": " + why, nil
		}
	case kindDaemonSet:
		ds, err := s.DaemonSets(ctx)
		if err != nil {
			return "", false, "", err
		}
		for i := range ds {
			d := &ds[i]
			if d.Namespace == ns && contains(w.Names, d.Name) {
				ok, why := daemonSetReady(d)
				return ref(d.Name), ok, ref(d.Name) + ": " + why, nil
			}
		}
	case kindStatefulSet:
		ss, err := s.StatefulSets(ctx)
		if err != nil {
			return "", false, "", err
		}
		for i := range ss {
			st := &ss[i]
			if st.Namespace == ns && contains(w.Names, st.Name) {
				ok, why := statefulSetReady(st)
				return ref(st.Name), ok, ref(st.Name) + ": " + why, nil
			}
		}
	default:
		return "", false, "", fmt.Errorf("doctor: unknown workload kind %q", w.Kind)
	}
	return ref(w.Names[0]), false, ref(w.Names[0]) + ": not found", nil
}

func findDeployment(ds []appsv1.Deployment, ns string, names ...string) *appsv1.Deployment {
	for _, n := range names {
		for i := range ds {
			if ds[i].Namespace == ns && ds[i].Name == n {
				return &ds[i]
			}
		}
	}
	return nil
}

func deploymentReady(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case want == 0:
		return false, "scaled to 0 replicas"
	case d.Status.ReadyReplicas < want:
		return false, fmt.Sprintf("%d/%d replicas ready", d.Status.ReadyReplicas, want)
	}
	return true, fmt.Sprintf("%d/%d replicas ready", d.Status.ReadyReplicas, want)
}

func daemonSetReady(d *appsv1.DaemonSet) (bool, string) {
	st := d.Status
	switch {
	case st.DesiredNumberScheduled == 0:
		return false, "scheduled on no node"
	case st.NumberReady < st.DesiredNumberScheduled:
		return false, fmt.Sprintf("%d/%d pods ready", st.NumberReady, st.DesiredNumberScheduled)
	}
	return true, fmt.Sprintf("%d/%d pods ready", st.NumberReady, st.DesiredNumberScheduled)
}

func statefulSetReady(st *appsv1.StatefulSet) (bool, string) {
	want := int32(1)
	if st.Spec.Replicas != nil {
		want = *st.Spec.Replicas
	}
	switch {
	case want == 0:
		return false, "scaled to 0 replicas"
	case st.Status.ReadyReplicas < want:
		return false, fmt.Sprintf("%d/%d replicas ready", st.Status.ReadyReplicas, want)
	}
	return true, fmt.Sprintf("%d/%d replicas ready", st.Status.ReadyReplicas, want)
}

// findService returns the Service ns/name, or nil.
func findService(svcs []corev1.Service, ns, name string) *corev1.Service {
	for i := range svcs {
		if svcs[i].Namespace == ns && svcs[i].Name == name {
			return &svcs[i]
		}
	}
	return nil
}

// loadBalancerIPs are the addresses MetalLB assigned to a Service.
func loadBalancerIPs(svc *corev1.Service) []string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, in.IP)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sortedKeys returns the keys of m in order, for deterministic messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
