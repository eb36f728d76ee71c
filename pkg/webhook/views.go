package webhook

import (
	"context"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// CacheViews answers namespace views from an informer-backed reader. The reader must be a
// cache configured without deep copies for these types: the policies only read.
type CacheViews struct {
	Reader client.Reader
	// APIReader, if set, reads from the API server directly; FreshView uses it.
	APIReader client.Reader
	synced    atomic.Bool
}

var (
	_ Views      = (*CacheViews)(nil)
	_ FreshViews = (*CacheViews)(nil)
)

// MarkSynced records that the caches have synced.
func (c *CacheViews) MarkSynced() { c.synced.Store(true) }

// Synced implements Views.
func (c *CacheViews) Synced() bool { return c.synced.Load() }

// View implements Views. Each lookup happens at most once per review, only if a policy asks.
func (c *CacheViews) View(ctx context.Context, namespace string) policy.NamespaceView {
	return &cacheView{ctx: ctx, r: c.Reader, ns: namespace}
}

// FreshView implements FreshViews: the NetworkPolicies come from the API server (one list
// call), the rest from the cache. Without an APIReader there is nothing fresher than the
// cache, and it returns nil.
func (c *CacheViews) FreshView(ctx context.Context, namespace string) policy.NamespaceView {
	if c.APIReader == nil {
		return nil
	}
	return &cacheView{ctx: ctx, r: c.Reader, ns: namespace, policies: c.APIReader}
}

type cacheView struct {
	ctx context.Context
	r   client.Reader
	ns  string
	// policies, if set, is read for NetworkPolicies instead of r.
	policies client.Reader

	nsLoaded bool
	nsObj    corev1.Namespace
}

func (v *cacheView) namespace() *corev1.Namespace {
	if !v.nsLoaded {
		v.nsLoaded = true
		// Not found leaves it empty: an unknown namespace has no labels.
		_ = v.r.Get(v.ctx, client.ObjectKey{Name: v.ns}, &v.nsObj)
	}
	return &v.nsObj
}

func (v *cacheView) Labels() map[string]string { return v.namespace().Labels }

func (v *cacheView) Terminating() bool {
	n := v.namespace()
	return n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating
}

func (v *cacheView) NetworkPolicies() []*networkingv1.NetworkPolicy {
	r := v.r
	if v.policies != nil {
		r = v.policies
	}
	var list networkingv1.NetworkPolicyList
	if err := r.List(v.ctx, &list, client.InNamespace(v.ns)); err != nil {
		return nil
	}
	out := make([]*networkingv1.NetworkPolicy, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}

func (v *cacheView) RunningPods() []policy.PodInfo {
	var list corev1.PodList
	if err := v.r.List(v.ctx, &list, client.InNamespace(v.ns)); err != nil {
		return nil
	}
	out := make([]policy.PodInfo, 0, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		out = append(out, policy.PodInfo{Name: p.Name, Labels: p.Labels})
	}
	return out
}

// stripPod keeps only what the network policy reads of a Pod (name, namespace, labels,
// deletion timestamp, phase), so that caching every Pod costs little memory.
func stripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, DeletionTimestamp: p.DeletionTimestamp,
		},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}, nil
}
