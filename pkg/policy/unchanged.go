package policy

import (
	"k8s.io/apimachinery/pkg/api/equality"
)

// unchanged reports whether an update keeps everything the policies look at: the pod spec,
// labels and annotations, or a NetworkPolicy's spec, plus the object's own nerv.dev
// annotations. Other metadata (a controller's revision annotations, say) does not count.
func unchanged(cur, old *subject) bool {
	for _, k := range [...]string{AnnotationExempt, AnnotationExemptReason, AnnotationAllowWorld} {
		if cur.meta.Annotations[k] != old.meta.Annotations[k] {
			return false
		}
	}
	switch {
	case cur.podSpec != nil && old.podSpec != nil:
		return equality.Semantic.DeepEqual(cur.podSpec, old.podSpec) &&
			equality.Semantic.DeepEqual(cur.podMeta.Labels, old.podMeta.Labels) &&
			equality.Semantic.DeepEqual(cur.podMeta.Annotations, old.podMeta.Annotations)
	case cur.netpol != nil && old.netpol != nil:
		return equality.Semantic.DeepEqual(&cur.netpol.Spec, &old.netpol.Spec)
	}
	return false
}
