package policy

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// Operation is the admission operation being judged.
type Operation string

const (
	OperationCreate Operation = "CREATE"
	OperationUpdate Operation = "UPDATE"
	OperationDelete Operation = "DELETE"
)

// Request is one object to judge.
type Request struct {
	// Operation defaults to CREATE.
	Operation Operation
	// Object is the object as it will be after a CREATE or UPDATE, or the object being
	// deleted for a DELETE; typed or *unstructured.Unstructured.
	Object runtime.Object
	// OldObject is the object before an UPDATE (optional). When the update leaves what the
	// policies judge unchanged (the pod template; a NetworkPolicy's spec and annotations)
	// the object is not judged again: a controller scaling down an old ReplicaSet must not be
	// blocked because the config was tightened after the ReplicaSet was created.
	OldObject runtime.Object
	// Namespace is used when the object's metadata has none (the apiserver fills it from
	// the request path, and manifests often leave it to kubectl -n).
	Namespace string
}

// Engine evaluates objects against a validated config. It is immutable and safe for
// concurrent use; a config reload builds a new Engine.
type Engine struct {
	cfg       *Config
	exemptNS  map[string]struct{}
	resources resourcesRule
	network   networkRule
}

// NewEngine compiles cfg (defaulted and validated, as LoadConfig returns it).
func NewEngine(cfg *Config) (*Engine, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("policy config: %w", errs.ToAggregate())
	}
	e := &Engine{cfg: cfg, exemptNS: make(map[string]struct{}, len(cfg.ExemptNamespaces))}
	for _, ns := range cfg.ExemptNamespaces {
		e.exemptNS[ns] = struct{}{}
	}
	var err error
	if e.resources, err = newResourcesRule(&cfg.Policies.Resources); err != nil {
		return nil, err
	}
	e.network = networkRule{mode: cfg.Policies.Network.Mode}
	return e, nil
}

// Config returns the config the engine was built from; callers must not modify it.
func (e *Engine) Config() *Config { return e.cfg }

// emptyNamespace stands in for a nil view: no labels, no NetworkPolicies, no Pods.
var emptyNamespace = &StaticNamespace{}

// Evaluate judges one object. Objects of kinds no policy applies to get an empty Decision.
// The error is only for objects that cannot be read as their kind.
func (e *Engine) Evaluate(req Request, ns NamespaceView) (Decision, error) {
	obj, err := typed(req.Object)
	if err != nil || obj == nil {
		return Decision{}, err
	}
	s, ok := subjectOf(obj)
	if !ok {
		return Decision{}, nil
	}
	if s.ref.Namespace == "" {
		s.ref.Namespace = req.Namespace
	}
	if ns == nil {
		ns = emptyNamespace
	}
	op := req.Operation
	if op == "" {
		op = OperationCreate
	}
	d := Decision{Object: s.ref}
	ev := evaluation{engine: e, s: &s, ns: ns, d: &d}
	if op == OperationUpdate && req.OldObject != nil {
		old, err := typed(req.OldObject)
		if err != nil {
			return Decision{}, fmt.Errorf("old object: %w", err)
		}
		if prev, ok := subjectOf(old); ok && unchanged(&s, &prev) {
			ev.unchanged = true
		}
	}
	switch {
	case s.podSpec != nil && op != OperationDelete:
		ev.run(PolicyResources, e.resources.mode, func(add addFunc) { e.resources.check(&s, add) })
		ev.run(PolicyNetwork, e.network.mode, func(add addFunc) { e.network.checkPods(&s, ns, add) })
	case s.netpol != nil && op == OperationDelete:
		ev.run(PolicyNetwork, e.network.mode, func(add addFunc) { e.network.checkDelete(&s, ns, add) })
	case s.netpol != nil:
		ev.run(PolicyNetwork, e.network.mode, func(add addFunc) { e.network.checkWorldOpen(&s, add) })
	}
	return d, nil
}

// addFunc records a violation at field with message.
type addFunc func(field, message string)

type evaluation struct {
	unchanged bool
	engine    *Engine
	s         *subject
	ns        NamespaceView
	d         *Decision
}

// run applies one policy: exemptions first, then the check, then the verdict.
func (ev *evaluation) run(policy string, mode Mode, check func(addFunc)) {
	res := PolicyResult{Policy: policy, Mode: mode}
	exemptBy, ignoredNote := ev.exemption(policy)
	if exemptBy == "" && ev.unchanged {
		exemptBy = "the update leaves what the policies judge unchanged"
	}
	if exemptBy != "" {
		res.Verdict, res.ExemptBy = VerdictExempt, exemptBy
		ev.d.Results = append(ev.d.Results, res)
		return
	}
	before := len(ev.d.Violations)
	check(func(field, message string) {
		if ignoredNote != "" {
			message += " (" + ignoredNote + ")"
		}
		ev.d.Violations = append(ev.d.Violations, Violation{
			Policy: policy, Mode: mode, Object: ev.s.ref, Field: field, Message: message,
		})
	})
	switch {
	case len(ev.d.Violations) == before:
		res.Verdict = VerdictPass
	case mode == ModeEnforce:
		res.Verdict = VerdictDeny
	case mode == ModeWarn:
		res.Verdict = VerdictWarn
	default:
		res.Verdict = VerdictAudit
	}
	ev.d.Results = append(ev.d.Results, res)
}

// exemption returns why policy does not apply to the subject, or "" if it applies. When the
// object asks for an exemption without giving a reason, ignoredNote says so, to be added to
// the violations so that the author learns why the annotation had no effect.
func (ev *evaluation) exemption(policy string) (exemptBy, ignoredNote string) {
	s := ev.s
	if s.meta.DeletionTimestamp != nil {
		// Updates to an object being deleted (finalizer removal) must never be blocked.
		return "object is being deleted", ""
	}
	if _, ok := ev.engine.exemptNS[s.ref.Namespace]; ok {
		return fmt.Sprintf("namespace %s is in exemptNamespaces", s.ref.Namespace), ""
	}
	if ev.ns.Labels()[LabelPolicy] == LabelPolicyExempt {
		return fmt.Sprintf("namespace %s is labelled %s=%s", s.ref.Namespace, LabelPolicy, LabelPolicyExempt), ""
	}
	// A workload's Pods carry the template's annotations, so either place counts.
	for _, ann := range [2]map[string]string{s.meta.Annotations, podAnnotations(s)} {
		list, ok := ann[AnnotationExempt]
		if !ok || !listsPolicy(list, policy) {
			continue
		}
		if reason := strings.TrimSpace(ann[AnnotationExemptReason]); reason != "" {
			return fmt.Sprintf("annotation %s: %s (reason: %s)", AnnotationExempt, list, reason), ""
		}
		ignoredNote = fmt.Sprintf("%s: %s is ignored without a non-empty %s annotation", AnnotationExempt, list, AnnotationExemptReason)
	}
	return "", ignoredNote
}

func podAnnotations(s *subject) map[string]string {
	if s.podMeta == nil || s.podMeta == s.meta {
		return nil
	}
	return s.podMeta.Annotations
}

// listsPolicy reports whether the comma-separated list names policy.
func listsPolicy(list, policy string) bool {
	for list != "" {
		var item string
		item, list, _ = strings.Cut(list, ",")
		if strings.TrimSpace(item) == policy {
			return true
		}
	}
	return false
}
