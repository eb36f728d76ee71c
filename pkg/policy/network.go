package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// networkRule is the compiled network policy.
type networkRule struct {
	mode Mode
}

// checkPods requires some NetworkPolicy in the namespace to select the Pod (or the Pods of
// a template) for ingress.
func (r *networkRule) checkPods(s *subject, ns NamespaceView, add addFunc) {
	podLabels := s.podMeta.Labels
	for _, np := range ns.NetworkPolicies() {
		if selectsForIngress(np, podLabels) {
			return
		}
	}
	what := "these Pods"
	if s.ref.Kind == "Pod" {
		what = "this Pod"
	}
	add(s.metaPath+".labels", fmt.Sprintf(
		"no NetworkPolicy in namespace %q selects %s (labels %s) for ingress: create one whose podSelector matches, e.g. a default-deny (podSelector: {}, policyTypes: [Ingress]) plus policies allowing the traffic they need",
		s.ref.Namespace, what, formatLabels(podLabels)))
}

// checkWorldOpen requires nerv.dev/allow-world on a NetworkPolicy admitting ingress from
// anywhere: a rule without from, or an ipBlock covering every address.
func (r *networkRule) checkWorldOpen(s *subject, add addFunc) {
	np := s.netpol
	if !ingressTyped(np) || strings.TrimSpace(np.Annotations[AnnotationAllowWorld]) != "" {
		return
	}
	const todo = "restrict it to the pods, namespaces or CIDRs that need access, or annotate the NetworkPolicy with " + AnnotationAllowWorld + `: "<reason>"`
	for i := range np.Spec.Ingress {
		rule := &np.Spec.Ingress[i]
		path := "spec.ingress[" + strconv.Itoa(i) + "]"
		if len(rule.From) == 0 {
			add(path+".from", "ingress rule has no from, so it admits traffic from anywhere: "+todo)
			continue
		}
		for j := range rule.From {
			if b := rule.From[j].IPBlock; b != nil && worldCIDR(b.CIDR) {
				add(path+".from["+strconv.Itoa(j)+"].ipBlock.cidr", fmt.Sprintf("ipBlock %s admits traffic from anywhere: %s", b.CIDR, todo))
			}
		}
	}
}

// checkDelete refuses to delete the last NetworkPolicy selecting some running Pod for
// ingress: those Pods would silently become reachable from everywhere.
func (r *networkRule) checkDelete(s *subject, ns NamespaceView, add addFunc) {
	if ns.Terminating() {
		return // the namespace and its Pods are going away together
	}
	deleted := s.netpol
	if !ingressTyped(deleted) {
		return
	}
	var orphans []string
	for _, pod := range ns.RunningPods() {
		if !selectsForIngress(deleted, pod.Labels) {
			continue
		}
		covered := false
		for _, np := range ns.NetworkPolicies() {
			if np.Name != deleted.Name && selectsForIngress(np, pod.Labels) {
				covered = true
				break
			}
		}
		if !covered {
			orphans = append(orphans, pod.Name)
		}
	}
	if len(orphans) == 0 {
		return
	}
	slices.Sort(orphans)
	shown := orphans
	more := ""
	if len(shown) > 5 {
		shown, more = shown[:5], fmt.Sprintf(" and %d more", len(orphans)-5)
	}
	add("spec.podSelector", fmt.Sprintf(
		"it is the last NetworkPolicy selecting %d running Pod(s) for ingress (%s%s): create a replacement first (e.g. a default-deny), or remove those Pods first",
		len(orphans), strings.Join(shown, ", "), more))
}

// ingressTyped reports whether np applies to ingress: listed in policyTypes, or implied
// when policyTypes is empty (the API's own defaulting rule).
func ingressTyped(np *networkingv1.NetworkPolicy) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return true
	}
	return slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// selectsForIngress reports whether np isolates Pods with these labels for ingress.
func selectsForIngress(np *networkingv1.NetworkPolicy, podLabels map[string]string) bool {
	return ingressTyped(np) && selectorMatches(&np.Spec.PodSelector, podLabels)
}

// selectorMatches avoids building a labels.Selector for the common matchLabels-only case,
// which is every default-deny and most app policies.
func selectorMatches(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	if len(sel.MatchExpressions) == 0 {
		for k, v := range sel.MatchLabels {
			if got, ok := podLabels[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	ls, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false // an invalid selector selects nothing; the apiserver rejects it anyway
	}
	return ls.Matches(labels.Set(podLabels))
}

// worldCIDR reports whether cidr is 0.0.0.0/0 or ::/0 in any spelling.
func worldCIDR(cidr string) bool {
	p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	return err == nil && p.Bits() == 0
}

func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	return labels.Set(m).String()
}
