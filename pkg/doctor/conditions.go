package doctor

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// crCondition reads status.conditions[type=t] of a custom resource. found is false when the
// condition is absent (the controller has not judged the object yet).
func crCondition(u *unstructured.Unstructured, t string) (status, reason, message string, found bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != t {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		return str("status"), str("reason"), str("message"), true
	}
	return "", "", "", false
}

// ref is "namespace/name" or "name" for cluster-scoped objects.
func ref(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// str reads a string field of an unstructured object ("" if absent).
func str(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

// strs reads a string list field of an unstructured object.
func strs(u *unstructured.Unstructured, fields ...string) []string {
	s, _, _ := unstructured.NestedStringSlice(u.Object, fields...)
	return s
}

// nestedSliceLen is the length of a list field of an unstructured object.
func nestedSliceLen(u *unstructured.Unstructured, fields ...string) (int, bool, error) {
	s, found, err := unstructured.NestedSlice(u.Object, fields...)
	return len(s), found, err
}
