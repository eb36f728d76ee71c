package rollout

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// nodeLeaseNamespace holds the kubelets' heartbeat leases.
const nodeLeaseNamespace = "kube-node-lease"

// Ready reports whether the node's Ready condition is True.
func Ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// leaseRenewal returns the node's lease renew time as an opaque token ("" without a lease).
func leaseRenewal(ctx context.Context, cs kubernetes.Interface, node string) (string, error) {
	l, err := cs.CoordinationV1().Leases(nodeLeaseNamespace).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the heartbeat lease of node %s: %w", node, err)
	}
	if l.Spec.RenewTime == nil {
		return "", nil
	}
	return l.Spec.RenewTime.UTC().String(), nil
}

// waitLeaseRenewed watches the node's lease until its renew time differs from before: the
// kubelet heartbeated after the switch. A Ready condition alone proves nothing here: after a
// k3s restart it stays True until the node controller's grace period runs out. Comparing
// tokens rather than clocks keeps the node's clock skew out of it.
func waitLeaseRenewed(ctx context.Context, cs kubernetes.Interface, node, before string) error {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
			return cs.CoordinationV1().Leases(nodeLeaseNamespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
			return cs.CoordinationV1().Leases(nodeLeaseNamespace).Watch(ctx, o)
		},
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &coordinationv1.Lease{}, nil, func(ev watch.Event) (bool, error) {
		l, ok := ev.Object.(*coordinationv1.Lease)
		return ok && l.Spec.RenewTime != nil && l.Spec.RenewTime.UTC().String() != before, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for node %s's kubelet to heartbeat after the change: %w", node, err)
	}
	return nil
}

// waitNode watches the node until done says so.
func waitNode(ctx context.Context, cs kubernetes.Interface, node string, done func(*corev1.Node) bool) (*corev1.Node, error) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
			return cs.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
			return cs.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		return ok && done(n), nil
	})
	if err != nil {
		return nil, err
	}
	return ev.Object.(*corev1.Node), nil
}
