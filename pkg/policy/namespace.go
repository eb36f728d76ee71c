package policy

import (
	networkingv1 "k8s.io/api/networking/v1"
)

// Annotations and labels the policies read.
const (
	// LabelPolicy on a Namespace: the value "exempt" exempts the namespace from every policy.
	LabelPolicy       = "nerv.dev/policy"
	LabelPolicyExempt = "exempt"
	// AnnotationExempt lists policies ("resources,network") an object is exempt from; it
	// is honoured only together with a non-empty AnnotationExemptReason.
	AnnotationExempt       = "nerv.dev/exempt"
	AnnotationExemptReason = "nerv.dev/exempt-reason"
	// AnnotationAllowWorld on a NetworkPolicy permits ingress from anywhere; its value
	// is the reason.
	AnnotationAllowWorld = "nerv.dev/allow-world"
)

// NamespaceView is what the policies need to know about the namespace of the object under
// review. The webhook answers from its informer caches, `kubectl nerv validate` from the
// objects in its input. Implementations must be safe for concurrent use and must not
// modify what they return after handing it out; the engine never modifies it.
type NamespaceView interface {
	// Labels returns the namespace's labels (nil if unknown).
	Labels() map[string]string
	// Terminating reports whether the namespace is being deleted.
	Terminating() bool
	// NetworkPolicies returns the NetworkPolicies in the namespace.
	NetworkPolicies() []*networkingv1.NetworkPolicy
	// RunningPods returns the Pods in the namespace that are not finished (phase neither
	// Succeeded nor Failed) and not being deleted.
	RunningPods() []PodInfo
}

// PodInfo is the part of a Pod the network policy needs.
type PodInfo struct {
	Name   string
	Labels map[string]string
}

// StaticNamespace is a NamespaceView over fixed data: offline validation, tests, and
// callers that already hold the objects.
type StaticNamespace struct {
	NamespaceLabels map[string]string
	IsTerminating   bool
	Policies        []*networkingv1.NetworkPolicy
	Pods            []PodInfo
}

var _ NamespaceView = (*StaticNamespace)(nil)

func (s *StaticNamespace) Labels() map[string]string                      { return s.NamespaceLabels }
func (s *StaticNamespace) Terminating() bool                              { return s.IsTerminating }
func (s *StaticNamespace) NetworkPolicies() []*networkingv1.NetworkPolicy { return s.Policies }
func (s *StaticNamespace) RunningPods() []PodInfo                         { return s.Pods }
