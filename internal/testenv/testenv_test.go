package testenv

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

var env *Env

func TestMain(m *testing.M) { Main(m, &env) }

func TestAPIServerStoresObjects(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "testenv-objects"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "answer", Namespace: ns.Name},
		Data:       map[string]string{"value": "42"},
	}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	got, err := env.Clientset.CoreV1().ConfigMaps(ns.Name).Get(ctx, "answer", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get through clientset: %v", err)
	}
	if got.Data["value"] != "42" || got.UID == "" {
		t.Fatalf("stored object = %+v, want data value=42 and a UID assigned by the apiserver", got)
	}
	v, err := env.Clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("apiserver reports %s, want v1.37.2 (hack/test-assets.sh stamps the version)", v.GitVersion)
	}
}

func TestKwokNodeTurnsReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.StartKwok(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreateNode(ctx, Node{Name: "misato", IP: "192.168.1.100", Role: "server"}); err != nil {
		t.Fatal(err)
	}
	n, err := env.WaitNodeReady(ctx, "misato")
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels["node-role.kubernetes.io/control-plane"] != "true" {
		t.Errorf("server node lacks the control-plane role label: %v", n.Labels)
	}
	var ip string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	if ip != "192.168.1.100" {
		t.Errorf("InternalIP = %q, want 192.168.1.100", ip)
	}
}

func TestUnboundUserIsForbidden(t *testing.T) {
	cfg, err := env.AddUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	_, err = cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("listing nodes as a user without RBAC: err = %v, want Forbidden", err)
	}
}

func TestControllerManagerAndSchedulerRunPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, start := range []func(context.Context) error{env.StartKwok, env.StartControllerManager, env.StartScheduler} {
		if err := start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.CreateNode(ctx, Node{Name: "kaji", IP: "192.168.1.102"}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.WaitNodeReady(ctx, "kaji"); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "hello"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: "registry.example/hello:1"}}},
			},
		},
	}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := env.Clientset.AppsV1().Deployments("default").Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.AvailableReplicas == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment never became available: status %+v", got.Status)
		case <-time.After(200 * time.Millisecond):
		}
	}
	pods, err := env.Clientset.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hello"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s: node %q phase %s, want scheduled and Running", p.Name, p.Spec.NodeName, p.Status.Phase)
		}
	}
}
