package doctor

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nerv-platform/nerv/pkg/policy"
)

func policyChecks() []Check {
	return []Check{
		{
			ID: "policy-default-deny", Category: CategoryPolicy, Severity: SeverityWarning,
			Name: "every namespace has a default-deny NetworkPolicy",
			Hint: "apply a NetworkPolicy with podSelector: {} and policyTypes: [Ingress] (no rules) to each listed namespace, then open what is needed",
			Run:  checkDefaultDeny,
		},
		{
			ID: "policy-workloads", Category: CategoryPolicy, Severity: SeverityWarning,
			Name: "workloads comply with the NERV policies",
			Hint: "kubectl nerv validate on the workloads' manifests shows each violation with its field; they predate the webhook or are exempt by mode",
			Run:  checkWorkloadPolicy,
		},
	}
}

// isDefaultDeny reports whether np selects every pod for ingress and admits nothing.
func isDefaultDeny(np *networkingv1.NetworkPolicy) bool {
	sel := np.Spec.PodSelector
	if len(sel.MatchLabels) > 0 || len(sel.MatchExpressions) > 0 {
		return false
	}
	return selectsForIngress(np, nil) && len(np.Spec.Ingress) == 0
}

// auditedNamespaces returns the namespaces the policies apply to (not exempt, not being
// deleted), with their labels.
func auditedNamespaces(ctx context.Context, s *Snapshot) (map[string]*corev1.Namespace, error) {
	engine, _, err := s.PolicyEngine(ctx)
	if err != nil {
		return nil, err
	}
	nss, err := s.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	exempt := map[string]bool{}
	for _, n := range engine.Config().ExemptNamespaces {
		exempt[n] = true
	}
	out := map[string]*corev1.Namespace{}
	for i := range nss {
		ns := &nss[i]
		if exempt[ns.Name] || ns.Labels[policy.LabelPolicy] == policy.LabelPolicyExempt || ns.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		out[ns.Name] = ns
	}
	return out, nil
}

func checkDefaultDeny(ctx context.Context, s *Snapshot) Outcome {
	nss, err := auditedNamespaces(ctx, s)
	if err != nil {
		return fromError(err)
	}
	nps, err := s.NetworkPolicies(ctx)
	if err != nil {
		return fromError(err)
	}
	covered := map[string]bool{}
	for i := range nps {
		if isDefaultDeny(&nps[i]) {
			covered[nps[i].Namespace] = true
		}
	}
	var bad []string
	for _, name := range sortedKeys(nss) {
		if !covered[name] {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d namespaces have no default-deny NetworkPolicy", len(bad), len(nss))
	}
	return Passf("all %d audited namespaces have a default-deny NetworkPolicy", len(nss))
}

// controlled reports whether a controller owns the object (its owner is judged instead).
func controlled(m *metav1.ObjectMeta) bool {
	return metav1.GetControllerOfNoCopy(m) != nil
}

func checkWorkloadPolicy(ctx context.Context, s *Snapshot) Outcome {
	nss, err := auditedNamespaces(ctx, s)
	if err != nil {
		return fromError(err)
	}
	nps, err := s.NetworkPolicies(ctx)
	if err != nil {
		return fromError(err)
	}
	views := map[string]*policy.StaticNamespace{}
	for name, ns := range nss {
		views[name] = &policy.StaticNamespace{NamespaceLabels: ns.Labels}
	}
	for i := range nps {
		if v := views[nps[i].Namespace]; v != nil {
			v.Policies = append(v.Policies, &nps[i])
		}
	}
	// Top-level workloads only: a Pod or ReplicaSet a controller owns carries the same
	// template as its owner, and would repeat the owner's violations.
	var objs []runtime.Object
	add := func(ns string, m *metav1.ObjectMeta, o runtime.Object) {
		if views[ns] != nil && !controlled(m) {
			objs = append(objs, o)
		}
	}
	deps, err := s.Deployments(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range deps {
		add(deps[i].Namespace, &deps[i].ObjectMeta, &deps[i])
	}
	sts, err := s.StatefulSets(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range sts {
		add(sts[i].Namespace, &sts[i].ObjectMeta, &sts[i])
	}
	dss, err := s.DaemonSets(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range dss {
		add(dss[i].Namespace, &dss[i].ObjectMeta, &dss[i])
	}
	cjs, err := s.CronJobs(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range cjs {
		add(cjs[i].Namespace, &cjs[i].ObjectMeta, &cjs[i])
	}
	jobs, err := s.Jobs(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range jobs {
		add(jobs[i].Namespace, &jobs[i].ObjectMeta, &jobs[i])
	}
	pods, err := s.Pods(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range pods {
		if p := &pods[i]; p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			add(p.Namespace, &p.ObjectMeta, p)
		}
	}

	engine, from, err := s.PolicyEngine(ctx)
	if err != nil {
		return fromError(err)
	}
	var bad []string
	violating := 0
	for _, o := range objs {
		m, _ := metaOf(o)
		d, err := engine.Evaluate(policy.Request{Object: o}, views[m.Namespace])
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s/%s: %v", m.Namespace, m.Name, err))
			continue
		}
		if len(d.Violations) > 0 {
			violating++
		}
		for _, v := range d.Violations {
			bad = append(bad, fmt.Sprintf("%s: %s (%s mode)", v.Object, v, v.Mode))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return Failf(bad, "%d of %d workloads violate NERV policies (judged by %s)", violating, len(objs), from)
	}
	return Passf("%d workloads in %d audited namespaces comply with %s", len(objs), len(nss), from)
}

// metaOf returns the object metadata of a typed object.
func metaOf(o runtime.Object) (*metav1.ObjectMeta, bool) {
	type metaHolder interface{ GetObjectMeta() metav1.Object }
	if h, ok := o.(metaHolder); ok {
		if m, ok := h.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return m, true
		}
	}
	return &metav1.ObjectMeta{}, false
}
