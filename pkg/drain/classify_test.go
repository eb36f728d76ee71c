package drain

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestClassify(t *testing.T) {
	owned := func(kind string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{Kind: kind, Name: "x", Controller: ptr.To(true)}}
	}
	for _, tc := range []struct {
		name      string
		pod       corev1.Pod
		skip      string // "" = evicted
		unmanaged bool
	}{
		{"replicaset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("ReplicaSet")}}, "", false},
		{"statefulset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("StatefulSet")}}, "", false},
		{"daemonset", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("DaemonSet")}}, SkipDaemonSet, false},
		{"mirror", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mirrorAnnotation: "h"}}}, SkipMirror, false},
		{"succeeded", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: owned("Job")}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, SkipTerminal, false},
		{"failed bare", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, SkipTerminal, false},
		{"bare", corev1.Pod{}, "", true},
		{"non-controller owner", corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "x"}}}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Name, tc.pod.Namespace = "p", "ns"
			c := Classify([]corev1.Pod{tc.pod})
			if tc.skip == "" {
				if len(c.Evict) != 1 || len(c.Skip) != 0 {
					t.Fatalf("want evicted, got %+v", c)
				}
			} else if len(c.Skip) != 1 || c.Skip[0].Reason != tc.skip || len(c.Evict) != 0 {
				t.Fatalf("want skipped as %q, got %+v", tc.skip, c)
			}
			if got := len(c.Unmanaged) == 1; got != tc.unmanaged {
				t.Errorf("unmanaged = %v, want %v", got, tc.unmanaged)
			}
		})
	}
}
