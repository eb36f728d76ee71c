// Package drain takes a node out of service the way `kubectl drain` does, on client-go alone:
// cordon (spec.unschedulable), then evict its pods through the policy/v1 Eviction API so that
// PodDisruptionBudgets are honoured, then wait until the evicted pods are gone. Uncordon puts
// the node back. Every refusal is reported with the pod and, for a budget, the budget's name.
package drain

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Cordon marks the node unschedulable. It is idempotent.
func Cordon(ctx context.Context, cs kubernetes.Interface, node string) error {
	return setUnschedulable(ctx, cs, node, true)
}

// Uncordon makes the node schedulable again. It is idempotent.
func Uncordon(ctx context.Context, cs kubernetes.Interface, node string) error {
	return setUnschedulable(ctx, cs, node, false)
}

func setUnschedulable(ctx context.Context, cs kubernetes.Interface, node string, v bool) error {
	// A merge patch of one field: no read-modify-write race with the kubelet's status updates.
	// false is written explicitly (not omitted) so that uncordon clears a true.
	patch := fmt.Appendf(nil, `{"spec":{"unschedulable":%t}}`, v)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1PatchOptions); err != nil {
		verb := "cordoning"
		if !v {
			verb = "uncordoning"
		}
		return fmt.Errorf("%s node %s: %w", verb, node, err)
	}
	return nil
}
