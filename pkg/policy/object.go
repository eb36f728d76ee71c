package policy

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
)

// kinds maps every kind a policy judges to a constructor of its typed object.
var kinds = map[schema.GroupVersionKind]func() runtime.Object{
	corev1.SchemeGroupVersion.WithKind("Pod"):                   func() runtime.Object { return &corev1.Pod{} },
	corev1.SchemeGroupVersion.WithKind("ReplicationController"): func() runtime.Object { return &corev1.ReplicationController{} },
	appsv1.SchemeGroupVersion.WithKind("Deployment"):            func() runtime.Object { return &appsv1.Deployment{} },
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"):           func() runtime.Object { return &appsv1.StatefulSet{} },
	appsv1.SchemeGroupVersion.WithKind("DaemonSet"):             func() runtime.Object { return &appsv1.DaemonSet{} },
	appsv1.SchemeGroupVersion.WithKind("ReplicaSet"):            func() runtime.Object { return &appsv1.ReplicaSet{} },
	batchv1.SchemeGroupVersion.WithKind("Job"):                  func() runtime.Object { return &batchv1.Job{} },
	batchv1.SchemeGroupVersion.WithKind("CronJob"):              func() runtime.Object { return &batchv1.CronJob{} },
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):   func() runtime.Object { return &networkingv1.NetworkPolicy{} },
}

// Judged reports whether some policy applies to objects of this kind.
func Judged(gvk schema.GroupVersionKind) bool {
	_, ok := kinds[gvk]
	return ok
}

// JudgedKinds returns the kinds the policies apply to (for webhook rules and docs).
func JudgedKinds() []schema.GroupVersionKind {
	out := make([]schema.GroupVersionKind, 0, len(kinds))
	for gvk := range kinds {
		out = append(out, gvk)
	}
	return out
}

// Decode turns the JSON of an object of a judged kind into its typed form.
func Decode(gvk schema.GroupVersionKind, raw []byte) (runtime.Object, error) {
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("kind %s is not judged by any NERV policy", gvk)
	}
	obj := newObj()
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", gvk.Kind, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj, nil
}

// typed returns obj in its typed form: unstructured objects of judged kinds are converted,
// objects of other kinds are returned as nil without error.
func typed(obj runtime.Object) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	gvk := u.GroupVersionKind()
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, nil
	}
	t := newObj()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), t); err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	t.GetObjectKind().SetGroupVersionKind(gvk)
	return t, nil
}

// subject is an object reduced to what the policies look at.
type subject struct {
	ref  ObjectRef
	meta *metav1.ObjectMeta
	// For Pods and pod templates: the pod spec and metadata and their field paths.
	podSpec  *corev1.PodSpec
	podMeta  *metav1.ObjectMeta
	specPath string
	metaPath string
	netpol   *networkingv1.NetworkPolicy
}

const (
	pathPodSpec      = "spec"
	pathTemplateSpec = "spec.template.spec"
	pathTemplateMeta = "spec.template.metadata"
	pathCronSpec     = "spec.jobTemplate.spec.template.spec"
	pathCronMeta     = "spec.jobTemplate.spec.template.metadata"
)

// subjectOf extracts the subject of a typed object; ok is false for kinds no policy judges.
func subjectOf(obj runtime.Object) (s subject, ok bool) {
	switch o := obj.(type) {
	case *corev1.Pod:
		s = subject{meta: &o.ObjectMeta, podSpec: &o.Spec, podMeta: &o.ObjectMeta, specPath: pathPodSpec, metaPath: "metadata"}
		s.ref.Kind, s.ref.APIVersion = "Pod", "v1"
	case *corev1.ReplicationController:
		s = subject{meta: &o.ObjectMeta}
		if o.Spec.Template != nil {
			s.podSpec, s.podMeta = &o.Spec.Template.Spec, &o.Spec.Template.ObjectMeta
			s.specPath, s.metaPath = pathTemplateSpec, pathTemplateMeta
		}
		s.ref.Kind, s.ref.APIVersion = "ReplicationController", "v1"
	case *appsv1.Deployment:
		s = templated(&o.ObjectMeta, &o.Spec.Template, "Deployment", "apps/v1")
	case *appsv1.StatefulSet:
		s = templated(&o.ObjectMeta, &o.Spec.Template, "StatefulSet", "apps/v1")
	case *appsv1.DaemonSet:
		s = templated(&o.ObjectMeta, &o.Spec.Template, "DaemonSet", "apps/v1")
	case *appsv1.ReplicaSet:
		s = templated(&o.ObjectMeta, &o.Spec.Template, "ReplicaSet", "apps/v1")
	case *batchv1.Job:
		s = templated(&o.ObjectMeta, &o.Spec.Template, "Job", "batch/v1")
	case *batchv1.CronJob:
		s = subject{meta: &o.ObjectMeta, podSpec: &o.Spec.JobTemplate.Spec.Template.Spec,
			podMeta: &o.Spec.JobTemplate.Spec.Template.ObjectMeta, specPath: pathCronSpec, metaPath: pathCronMeta}
		s.ref.Kind, s.ref.APIVersion = "CronJob", "batch/v1"
	case *networkingv1.NetworkPolicy:
		s = subject{meta: &o.ObjectMeta, netpol: o}
		s.ref.Kind, s.ref.APIVersion = "NetworkPolicy", "networking.k8s.io/v1"
	default:
		return subject{}, false
	}
	s.ref.Namespace = s.meta.Namespace
	s.ref.Name = s.meta.Name
	if s.ref.Name == "" && s.meta.GenerateName != "" {
		// The apiserver names it after admission; show the prefix the user wrote.
		s.ref.Name = s.meta.GenerateName + "*"
	}
	return s, true
}

func templated(meta *metav1.ObjectMeta, t *corev1.PodTemplateSpec, kind, apiVersion string) subject {
	s := subject{meta: meta, podSpec: &t.Spec, podMeta: &t.ObjectMeta, specPath: pathTemplateSpec, metaPath: pathTemplateMeta}
	s.ref.Kind, s.ref.APIVersion = kind, apiVersion
	return s
}
