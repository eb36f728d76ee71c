package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/nerv-platform/nerv/pkg/policy"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// crdKind is a custom resource the checks read through the dynamic client.
type crdKind struct {
	gvr       schema.GroupVersionResource
	kind      string
	component string
}

func (k crdKind) String() string { return k.gvr.GroupVersion().String() + " " + k.kind }

// The custom resources doctor reads.
var (
	kindApplication     = crdKind{schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}, "Application", "argocd"}
	kindIPAddressPool   = crdKind{schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"}, "IPAddressPool", "metallb"}
	kindL2Advertisement = crdKind{schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "l2advertisements"}, "L2Advertisement", "metallb"}
	kindClusterIssuer   = crdKind{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "clusterissuers"}, "ClusterIssuer", "cert-manager"}
	kindCertificate     = crdKind{schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}, "Certificate", "cert-manager"}
	kindLonghornNode    = crdKind{schema.GroupVersionResource{Group: "longhorn.io", Version: "v1beta2", Resource: "nodes"}, "Node", "longhorn"}
	kindLonghornVolume  = crdKind{schema.GroupVersionResource{Group: "longhorn.io", Version: "v1beta2", Resource: "volumes"}, "Volume", "longhorn"}
)

// lazy is one list, fetched on first use by a single request that every waiting check
// shares. The fetch runs on the run's context, so a check that times out while waiting
// does not poison the result for the others.
type lazy[T any] struct {
	once sync.Once
	done chan struct{}
	v    T
	err  error
}

func (l *lazy[T]) get(ctx, base context.Context, fetch func(context.Context) (T, error)) (T, error) {
	l.once.Do(func() {
		l.done = make(chan struct{})
		go func() {
			defer close(l.done)
			l.v, l.err = fetch(base)
		}()
	})
	select {
	case <-l.done:
		return l.v, l.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Snapshot is the cluster as one doctor run sees it: each kind is listed at most once, when
// a check first asks for it, and shared by every check. A --wait retry takes a new Snapshot.
type Snapshot struct {
	// Client and Dynamic reach the cluster; checks use them only for requests that are not
	// lists (the webhook dry run, a Secret by name).
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Spec is the cluster spec (--spec), or nil.
	Spec *spec.Cluster
	// AgeKeySecret, when set, is where ArgoCD's sops plugin finds its age identity; otherwise
	// the Secret its sidecar mounts.
	AgeKeySecret SecretKeyRef

	policyOverride *policy.Engine
	// Now is the time expiry checks compare against.
	Now time.Time

	base context.Context

	version         lazy[*version.Info]
	nodes           lazy[[]corev1.Node]
	pods            lazy[[]corev1.Pod]
	services        lazy[[]corev1.Service]
	endpointSlices  lazy[[]discoveryv1.EndpointSlice]
	namespaces      lazy[[]corev1.Namespace]
	deployments     lazy[[]appsv1.Deployment]
	daemonSets      lazy[[]appsv1.DaemonSet]
	statefulSets    lazy[[]appsv1.StatefulSet]
	jobs            lazy[[]batchv1.Job]
	cronJobs        lazy[[]batchv1.CronJob]
	networkPolicies lazy[[]networkingv1.NetworkPolicy]
	storageClasses  lazy[[]storagev1.StorageClass]
	webhookConfigs  lazy[[]admissionregistrationv1.ValidatingWebhookConfiguration]
	policyEngine    lazy[policySource]
	custom          sync.Map // crdKind -> *lazy[[]unstructured.Unstructured]
}

// SecretKeyRef names one key of a Secret.
type SecretKeyRef struct {
	Namespace, Name, Key string
}

func (r SecretKeyRef) String() string { return r.Namespace + "/" + r.Name + " key " + r.Key }

// newSnapshot returns an empty snapshot whose lists run on base.
func newSnapshot(base context.Context, client kubernetes.Interface, dyn dynamic.Interface) *Snapshot {
	return &Snapshot{Client: client, Dynamic: dyn, base: base, Now: time.Now()}
}

// Version is the apiserver's version.
func (s *Snapshot) Version(ctx context.Context) (*version.Info, error) {
	return s.version.get(ctx, s.base, func(ctx context.Context) (*version.Info, error) {
		// Not discovery's ServerVersion: it ignores contexts, so it could outlive --timeout
		// on a black-holed address.
		raw, err := s.Client.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		if err != nil {
			return nil, err
		}
		var v version.Info
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("decoding /version: %w", err)
		}
		return &v, nil
	})
}

// list fetches one built-in kind cluster-wide.
func list[T any, L any](ctx context.Context, s *Snapshot, l *lazy[[]T], what string, call func(context.Context, metav1.ListOptions) (L, error), items func(L) []T) ([]T, error) {
	return l.get(ctx, s.base, func(ctx context.Context) ([]T, error) {
		got, err := call(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, classify(err, "kubernetes", what)
		}
		return items(got), nil
	})
}

// Nodes lists the cluster's nodes.
func (s *Snapshot) Nodes(ctx context.Context) ([]corev1.Node, error) {
	return list(ctx, s, &s.nodes, "v1 Node", s.Client.CoreV1().Nodes().List, func(l *corev1.NodeList) []corev1.Node { return l.Items })
}

// Pods lists every Pod.
func (s *Snapshot) Pods(ctx context.Context) ([]corev1.Pod, error) {
	return list(ctx, s, &s.pods, "v1 Pod", s.Client.CoreV1().Pods("").List, func(l *corev1.PodList) []corev1.Pod { return l.Items })
}

// Services lists every Service.
func (s *Snapshot) Services(ctx context.Context) ([]corev1.Service, error) {
	return list(ctx, s, &s.services, "v1 Service", s.Client.CoreV1().Services("").List, func(l *corev1.ServiceList) []corev1.Service { return l.Items })
}

// EndpointSlices lists every EndpointSlice.
func (s *Snapshot) EndpointSlices(ctx context.Context) ([]discoveryv1.EndpointSlice, error) {
	return list(ctx, s, &s.endpointSlices, "discovery.k8s.io/v1 EndpointSlice", s.Client.DiscoveryV1().EndpointSlices("").List, func(l *discoveryv1.EndpointSliceList) []discoveryv1.EndpointSlice { return l.Items })
}

// Namespaces lists every Namespace.
func (s *Snapshot) Namespaces(ctx context.Context) ([]corev1.Namespace, error) {
	return list(ctx, s, &s.namespaces, "v1 Namespace", s.Client.CoreV1().Namespaces().List, func(l *corev1.NamespaceList) []corev1.Namespace { return l.Items })
}

// Deployments lists every Deployment.
func (s *Snapshot) Deployments(ctx context.Context) ([]appsv1.Deployment, error) {
	return list(ctx, s, &s.deployments, "apps/v1 Deployment", s.Client.AppsV1().Deployments("").List, func(l *appsv1.DeploymentList) []appsv1.Deployment { return l.Items })
}

// DaemonSets lists every DaemonSet.
func (s *Snapshot) DaemonSets(ctx context.Context) ([]appsv1.DaemonSet, error) {
	return list(ctx, s, &s.daemonSets, "apps/v1 DaemonSet", s.Client.AppsV1().DaemonSets("").List, func(l *appsv1.DaemonSetList) []appsv1.DaemonSet { return l.Items })
}

// StatefulSets lists every StatefulSet.
func (s *Snapshot) StatefulSets(ctx context.Context) ([]appsv1.StatefulSet, error) {
	return list(ctx, s, &s.statefulSets, "apps/v1 StatefulSet", s.Client.AppsV1().StatefulSets("").List, func(l *appsv1.StatefulSetList) []appsv1.StatefulSet { return l.Items })
}

// Jobs lists every Job.
func (s *Snapshot) Jobs(ctx context.Context) ([]batchv1.Job, error) {
	return list(ctx, s, &s.jobs, "batch/v1 Job", s.Client.BatchV1().Jobs("").List, func(l *batchv1.JobList) []batchv1.Job { return l.Items })
}

// CronJobs lists every CronJob.
func (s *Snapshot) CronJobs(ctx context.Context) ([]batchv1.CronJob, error) {
	return list(ctx, s, &s.cronJobs, "batch/v1 CronJob", s.Client.BatchV1().CronJobs("").List, func(l *batchv1.CronJobList) []batchv1.CronJob { return l.Items })
}

// NetworkPolicies lists every NetworkPolicy.
func (s *Snapshot) NetworkPolicies(ctx context.Context) ([]networkingv1.NetworkPolicy, error) {
	return list(ctx, s, &s.networkPolicies, "networking.k8s.io/v1 NetworkPolicy", s.Client.NetworkingV1().NetworkPolicies("").List, func(l *networkingv1.NetworkPolicyList) []networkingv1.NetworkPolicy { return l.Items })
}

// StorageClasses lists every StorageClass.
func (s *Snapshot) StorageClasses(ctx context.Context) ([]storagev1.StorageClass, error) {
	return list(ctx, s, &s.storageClasses, "storage.k8s.io/v1 StorageClass", s.Client.StorageV1().StorageClasses().List, func(l *storagev1.StorageClassList) []storagev1.StorageClass { return l.Items })
}

// ValidatingWebhookConfigurations lists every ValidatingWebhookConfiguration.
func (s *Snapshot) ValidatingWebhookConfigurations(ctx context.Context) ([]admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	return list(ctx, s, &s.webhookConfigs, "admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration",
		s.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List,
		func(l *admissionregistrationv1.ValidatingWebhookConfigurationList) []admissionregistrationv1.ValidatingWebhookConfiguration {
			return l.Items
		})
}

// customObjects lists every object of a custom resource kind. A missing API means the component
// is not installed: the error is an UnavailableError.
func (s *Snapshot) customObjects(ctx context.Context, k crdKind) ([]unstructured.Unstructured, error) {
	v, _ := s.custom.LoadOrStore(k, &lazy[[]unstructured.Unstructured]{})
	l := v.(*lazy[[]unstructured.Unstructured])
	return l.get(ctx, s.base, func(ctx context.Context) ([]unstructured.Unstructured, error) {
		got, err := s.Dynamic.Resource(k.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, classify(err, k.component, k.String())
		}
		return got.Items, nil
	})
}
