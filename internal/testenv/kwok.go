package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
)

// Kwok marks the nodes kwok manages; nothing else in a test cluster carries it.
const (
	KwokAnnotation = "kwok.x-k8s.io/node"
	KwokValue      = "fake"
)

// Node describes a simulated node.
type Node struct {
	Name string
	// IP is reported as the node's InternalIP.
	IP string
	// Role "server" adds the control-plane role labels k3s puts on servers.
	Role   string
	Labels map[string]string
	// KubeletVersion defaults to the apiserver's version.
	KubeletVersion string
}

// StartKwok runs kwok against the apiserver, managing every node annotated
// kwok.x-k8s.io/node=fake: it initialises them, keeps their leases and heartbeats, and
// moves their pods to Running. Idempotent.
func (e *Env) StartKwok(ctx context.Context) error {
	e.mu.Lock()
	running := e.kwok != nil
	e.mu.Unlock()
	if running {
		return nil
	}
	bin, err := Asset("kwok")
	if err != nil {
		return err
	}
	log, err := openLog(e.Dir, "kwok")
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	p, err := startProcess("kwok", log, bin,
		"--kubeconfig="+e.Kubeconfig,
		"--config="+filepath.Join(AssetDir("kwok"), "stages.yaml"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+KwokAnnotation+"="+KwokValue,
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
	)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	e.track(p)
	e.mu.Lock()
	e.kwok = p
	e.mu.Unlock()
	// kwok has no readiness endpoint worth depending on; give it a moment to fail fast on bad
	// flags so the error surfaces here rather than as a node that never turns Ready.
	select {
	case <-p.done:
		return fmt.Errorf("testenv: kwok exited at start (see %s/kwok.log): %v", e.Dir, p.err)
	case <-time.After(300 * time.Millisecond):
	}
	return nil
}

// NodeObject returns the Node object CreateNode would create, for callers that create many
// nodes themselves (benchmarks) or want to adjust it first.
func NodeObject(n Node) *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	if n.Role == "server" {
		labels["node-role.kubernetes.io/control-plane"] = "true"
		labels["node-role.kubernetes.io/master"] = "true"
		labels["node-role.kubernetes.io/etcd"] = "true"
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.Name,
			Labels:      labels,
			Annotations: map[string]string{KwokAnnotation: KwokValue},
		},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: n.KubeletVersion, Architecture: "amd64", OperatingSystem: "linux", OSImage: "NixOS (kwok)"},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("4"),
				corev1.ResourceMemory: resource.MustParse("16Gi"),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
		},
	}
	node.Status.Allocatable = node.Status.Capacity
	if n.IP != "" {
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IP}, {Type: corev1.NodeHostName, Address: n.Name}}
	}
	return node
}

// CreateNode creates a kwok-managed node. Its status (addresses, versions) is written too,
// since a create ignores status. StartKwok must have been called for it to turn Ready.
func (e *Env) CreateNode(ctx context.Context, n Node) (*corev1.Node, error) {
	if n.KubeletVersion == "" {
		v, err := e.Clientset.Discovery().ServerVersion()
		if err != nil {
			return nil, fmt.Errorf("testenv: server version: %w", err)
		}
		n.KubeletVersion = v.GitVersion
	}
	want := NodeObject(n)
	_, err := e.Clientset.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("testenv: creating node %s: %w", n.Name, err)
	}
	// kwok and kube-controller-manager write node status too; re-read and retry on conflict.
	var updated *corev1.Node
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := e.Clientset.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.NodeInfo.KubeletVersion = want.Status.NodeInfo.KubeletVersion
		cur.Status.NodeInfo.Architecture = want.Status.NodeInfo.Architecture
		cur.Status.NodeInfo.OperatingSystem = want.Status.NodeInfo.OperatingSystem
		cur.Status.NodeInfo.OSImage = want.Status.NodeInfo.OSImage
		cur.Status.Addresses = want.Status.Addresses
		cur.Status.Capacity = want.Status.Capacity
		cur.Status.Allocatable = want.Status.Allocatable
		updated, err = e.Clientset.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: setting status of node %s: %w", n.Name, err)
	}
	return updated, nil
}

// WaitNodeReady watches the node until its Ready condition is True or ctx ends.
func (e *Env) WaitNodeReady(ctx context.Context, name string) (*corev1.Node, error) {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return e.Clientset.CoreV1().Nodes().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return e.Clientset.CoreV1().Nodes().Watch(ctx, o)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		return ok && NodeReady(n), nil
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: waiting for node %s to be Ready: %w", name, err)
	}
	return ev.Object.(*corev1.Node), nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
