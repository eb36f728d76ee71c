package drain

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

var metav1PatchOptions = metav1.PatchOptions{FieldManager: "kubectl-nerv"}

// mirrorAnnotation marks the API copy of a static pod; the kubelet owns it and evicting it
// does nothing.
const mirrorAnnotation = "kubernetes.io/config.mirror"

// Why a pod is left alone.
const (
	SkipDaemonSet = "DaemonSet"  // the DaemonSet controller would recreate it on the node at once
	SkipMirror    = "mirror pod" // a static pod: the kubelet owns it
	SkipTerminal  = "terminal"   // Succeeded or Failed: it holds no workload
)

// PodRef names a pod.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

func refOf(p *corev1.Pod) PodRef { return PodRef{Namespace: p.Namespace, Name: p.Name} }

// SkippedPod is a pod the drain leaves on the node, and why.
type SkippedPod struct {
	Pod    PodRef `json:"pod"`
	Reason string `json:"reason"`
}

// Classification splits the pods on a node into those a drain evicts and those it skips.
type Classification struct {
	Evict []corev1.Pod
	Skip  []SkippedPod
	// Unmanaged pods have no controller to recreate them elsewhere: evicting one deletes the
	// workload for good, so Drain refuses unless Options.Force.
	Unmanaged []PodRef
}

// PodsOnNode lists the pods bound to node.
func PodsOnNode(ctx context.Context, cs kubernetes.Interface, node string) ([]corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing pods on node %s: %w", node, err)
	}
	return list.Items, nil
}

// Classify decides, pod by pod, what a drain does with it.
func Classify(pods []corev1.Pod) Classification {
	var c Classification
	for i := range pods {
		p := &pods[i]
		switch {
		case p.Annotations[mirrorAnnotation] != "":
			c.Skip = append(c.Skip, SkippedPod{Pod: refOf(p), Reason: SkipMirror})
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			c.Skip = append(c.Skip, SkippedPod{Pod: refOf(p), Reason: SkipTerminal})
		case controllerKind(p) == "DaemonSet":
			c.Skip = append(c.Skip, SkippedPod{Pod: refOf(p), Reason: SkipDaemonSet})
		default:
			if controllerKind(p) == "" {
				c.Unmanaged = append(c.Unmanaged, refOf(p))
			}
			c.Evict = append(c.Evict, *p)
		}
	}
	return c
}

func controllerKind(p *corev1.Pod) string {
	if ref := metav1.GetControllerOf(p); ref != nil {
		return ref.Kind
	}
	return ""
}
