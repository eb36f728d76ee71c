package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Manifest is one object read from a file, with where it came from ("deploy.yaml:12").
type Manifest struct {
	Object *unstructured.Unstructured
	Source string
}

// SourcedViolation is a violation found in a manifest, with the manifest's source.
type SourcedViolation struct {
	Violation `json:",inline"`
	Source    string `json:"source"`
}

// ManifestResult is the outcome of evaluating a set of manifests.
type ManifestResult struct {
	// Objects counts every manifest; Judged those some policy applies to; Exempt those
	// skipped by an exemption for at least one policy.
	Objects    int                `json:"objects"`
	Judged     int                `json:"judged"`
	Exempt     int                `json:"exempt"`
	Violations []SourcedViolation `json:"violations"`
}

// EvaluateManifests judges a set of manifests offline, as the webhook would admit them into
// an empty cluster: each namespace's labels come from a Namespace object in the set, its
// NetworkPolicies are those in the set, and no Pods are running. Objects without a
// namespace are placed in defaultNamespace. The error names the manifest that cannot be
// read as its kind.
func (e *Engine) EvaluateManifests(ms []Manifest, defaultNamespace string) (ManifestResult, error) {
	res := ManifestResult{Objects: len(ms), Violations: []SourcedViolation{}}
	views := map[string]*StaticNamespace{}
	view := func(ns string) *StaticNamespace {
		v, ok := views[ns]
		if !ok {
			v = &StaticNamespace{}
			views[ns] = v
		}
		return v
	}
	nsOf := func(u *unstructured.Unstructured) string {
		if ns := u.GetNamespace(); ns != "" {
			return ns
		}
		return defaultNamespace
	}
	typedObjs := make([]runtime.Object, len(ms))
	for i, m := range ms {
		switch m.Object.GroupVersionKind() {
		case corev1.SchemeGroupVersion.WithKind("Namespace"):
			v := view(m.Object.GetName())
			v.NamespaceLabels = m.Object.GetLabels()
		case networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):
			t, err := typed(m.Object)
			if err != nil {
				return res, fmt.Errorf("%s: %w", m.Source, err)
			}
			np := t.(*networkingv1.NetworkPolicy)
			v := view(nsOf(m.Object))
			v.Policies = append(v.Policies, np)
			typedObjs[i] = np
		}
	}
	for i, m := range ms {
		obj := typedObjs[i]
		if obj == nil {
			var err error
			if obj, err = typed(m.Object); err != nil {
				return res, fmt.Errorf("%s: %w", m.Source, err)
			}
			if obj == nil {
				continue
			}
		}
		ns := nsOf(m.Object)
		d, err := e.Evaluate(Request{Operation: OperationCreate, Object: obj, Namespace: ns}, view(ns))
		if err != nil {
			return res, fmt.Errorf("%s: %w", m.Source, err)
		}
		if len(d.Results) > 0 {
			res.Judged++
		}
		for _, r := range d.Results {
			if r.Verdict == VerdictExempt {
				res.Exempt++
				break
			}
		}
		for _, v := range d.Violations {
			res.Violations = append(res.Violations, SourcedViolation{Violation: v, Source: m.Source})
		}
	}
	return res, nil
}
