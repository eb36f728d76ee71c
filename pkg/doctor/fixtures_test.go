package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// The healthy site the tests build: three servers, the platform services on their fixed IPs.
var specNodes = []spec.Node{
	{Name: "misato", IP: "192.168.1.100", Role: spec.RoleServer, Disk: "/dev/nvme0n1", ClusterInit: true},
	{Name: "asuka", IP: "192.168.1.101", Role: spec.RoleServer, Disk: "/dev/nvme0n1"},
	{Name: "rei", IP: "192.168.1.102", Role: spec.RoleServer, Disk: "/dev/nvme0n1"},
}

// platformNamespaces are the namespaces of the healthy site; each gets a default-deny policy.
var platformNamespaces = []string{"default", "argocd", metallbNamespace, traefikNamespace, certManagerNamespace, longhornNamespace}

// site is the healthy cluster's spec and the age identity behind its recipient.
type site struct {
	spec *spec.Cluster
	key  *age.X25519Identity
}

func testSpec(t *testing.T, key *age.X25519Identity) *spec.Cluster {
	t.Helper()
	c, err := spec.Parse(spec.Example(), "example nerv.yaml")
	must(t, err)
	c.Spec.Nodes = specNodes
	c.Spec.SOPS.AgeRecipients = []string{key.Recipient().String()}
	c.Default()
	if _, err := c.Validate(); err != nil {
		t.Fatalf("test spec: %v", err)
	}
	return c
}

// resources are requests and limits that satisfy the resources policy.
func resources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
}

func container(name string, command ...string) corev1.Container {
	return corev1.Container{Name: name, Image: "example.invalid/" + name + ":1", Command: command, Resources: resources()}
}

func podTemplate(app string, cs ...corev1.Container) corev1.PodTemplateSpec {
	if len(cs) == 0 {
		cs = []corev1.Container{container(app)}
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": app}},
		Spec:       corev1.PodSpec{Containers: cs},
	}
}

func selector(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": app}}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// createNamespace creates ns (tolerating one that exists) with labels.
func createNamespace(t *testing.T, ctx context.Context, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := env.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		cur, gerr := env.Clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		must(t, gerr)
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range labels {
			cur.Labels[k] = v
		}
		_, err = env.Clientset.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
		must(t, err)
	}
}

// createDeployment creates a Deployment and writes the status a controller would: ready
// replicas of replicas.
func createDeployment(t *testing.T, ctx context.Context, ns, name string, ready int32, tmpl corev1.PodTemplateSpec) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}
	d, err := env.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	must(t, err)
	setDeploymentReady(t, ctx, ns, name, ready)
}

func setDeploymentReady(t *testing.T, ctx context.Context, ns, name string, ready int32) {
	t.Helper()
	d, err := env.Clientset.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: ready, AvailableReplicas: ready}
	_, err = env.Clientset.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	must(t, err)
}

func createDaemonSet(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	tmpl := podTemplate(name)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       appsv1.DaemonSetSpec{Selector: selector(name), Template: tmpl},
	}
	_, err := env.Clientset.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})
	must(t, err)
	setDaemonSetReady(t, ctx, ns, name, 3, 3)
}

func setDaemonSetReady(t *testing.T, ctx context.Context, ns, name string, ready, desired int32) {
	t.Helper()
	ds, err := env.Clientset.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: desired, CurrentNumberScheduled: desired, UpdatedNumberScheduled: desired, NumberReady: ready, NumberAvailable: ready, NumberUnavailable: desired - ready}
	_, err = env.Clientset.AppsV1().DaemonSets(ns).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
	must(t, err)
}

func createStatefulSet(t *testing.T, ctx context.Context, ns, name string) {
	t.Helper()
	st := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: selector(name), Template: podTemplate(name)},
	}
	_, err := env.Clientset.AppsV1().StatefulSets(ns).Create(ctx, st, metav1.CreateOptions{})
	must(t, err)
	setStatefulSetReady(t, ctx, ns, name, 1)
}

func setStatefulSetReady(t *testing.T, ctx context.Context, ns, name string, ready int32) {
	t.Helper()
	st, err := env.Clientset.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	st.Status = appsv1.StatefulSetStatus{ObservedGeneration: st.Generation, Replicas: 1, CurrentReplicas: 1, UpdatedReplicas: 1, ReadyReplicas: ready, AvailableReplicas: ready}
	_, err = env.Clientset.AppsV1().StatefulSets(ns).UpdateStatus(ctx, st, metav1.UpdateOptions{})
	must(t, err)
}

// createLBService creates a LoadBalancer Service and, if ip is set, the status MetalLB writes.
func createLBService(t *testing.T, ctx context.Context, ns, name, ip string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{"metallb.io/loadBalancerIPs": ip}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app.kubernetes.io/name": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
	_, err := env.Clientset.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	must(t, err)
	if ip != "" {
		setServiceIP(t, ctx, ns, name, ip)
	}
}

func setServiceIP(t *testing.T, ctx context.Context, ns, name string, ips ...string) {
	t.Helper()
	svc, err := env.Clientset.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	_, err = env.Clientset.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	must(t, err)
}

func defaultDeny(ns string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

// redisPolicy admits only ArgoCD's pods to Redis, as manifests/policies/argocd.yaml does.
func redisPolicy() *networkingv1.NetworkPolicy {
	from := func(app string) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{PodSelector: selector(app)}
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-redis-from-argocd-only", Namespace: "argocd"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *selector("argocd-redis"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{from("argocd-server"), from("argocd-repo-server"), from("argocd-application-controller")},
			}},
		},
	}
}

// repoServerTemplate is argocd-repo-server with the sops plugin sidecar, shaped like the
// patch in manifests/argocd-sops-plugin.
func repoServerTemplate(withSidecar bool) corev1.PodTemplateSpec {
	cs := []corev1.Container{container("argocd-repo-server", "entrypoint.sh", "argocd-repo-server")}
	tmpl := podTemplate("argocd-repo-server", cs...)
	if withSidecar {
		sidecar := container(sopsPluginName, "/var/run/argocd/argocd-cmp-server")
		sidecar.VolumeMounts = []corev1.VolumeMount{{Name: "argocd-sops-age-key", MountPath: "/home/argocd/sops-age", ReadOnly: true}}
		tmpl.Spec.Containers = append(tmpl.Spec.Containers, sidecar)
		tmpl.Spec.Volumes = []corev1.Volume{{Name: "argocd-sops-age-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "argocd-sops-age-key", Items: []corev1.KeyToPath{{Key: "keys.txt", Path: "keys.txt"}},
		}}}}
	}
	return tmpl
}

// custom creates a custom resource (the test CRDs have no status subresource, so the
// status is stored with it).
func custom(t *testing.T, ctx context.Context, dyn dynamic.Interface, k crdKind, ns string, obj map[string]any) {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(k.gvr.GroupVersion().String())
	u.SetKind(k.kind)
	var err error
	if ns == "" {
		_, err = dyn.Resource(k.gvr).Create(ctx, u, metav1.CreateOptions{})
	} else {
		u.SetNamespace(ns)
		_, err = dyn.Resource(k.gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
	}
	must(t, err)
}

func meta(name string) map[string]any { return map[string]any{"name": name} }

func readyConditions(types ...string) []any {
	var out []any
	for _, t := range types {
		out = append(out, map[string]any{"type": t, "status": "True", "reason": "Ready", "message": ""})
	}
	return out
}

func application(name string) map[string]any {
	return map[string]any{
		"metadata": meta(name),
		"spec":     map[string]any{"project": "default"},
		"status": map[string]any{
			"sync":   map[string]any{"status": "Synced"},
			"health": map[string]any{"status": "Healthy"},
		},
	}
}

func certificate(name string, notAfter time.Time) map[string]any {
	return map[string]any{
		"metadata": meta(name),
		"spec":     map[string]any{"secretName": name + "-tls"},
		"status":   map[string]any{"conditions": readyConditions("Ready"), "notAfter": notAfter.UTC().Format(time.RFC3339)},
	}
}

func longhornNode(name string) map[string]any {
	return map[string]any{
		"metadata": meta(name),
		"spec":     map[string]any{"allowScheduling": true},
		"status":   map[string]any{"conditions": readyConditions("Ready", "Schedulable")},
	}
}

func ageKeySecretObject(key *age.X25519Identity) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultAgeKeySecret.Name, Namespace: DefaultAgeKeySecret.Namespace},
		Data: map[string][]byte{DefaultAgeKeySecret.Key: []byte("# created: test\n# public key: " +
			key.Recipient().String() + "\n" + key.String() + "\n")},
	}
}

// selfSignedCA returns a PEM CA certificate valid in [notBefore, notAfter].
func selfSignedCA(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// buildHealthySite creates nodes (kwok) and every platform object in a healthy state.
func buildHealthySite(t *testing.T, ctx context.Context) *site {
	t.Helper()
	key, err := age.GenerateX25519Identity()
	must(t, err)
	st := &site{spec: testSpec(t, key), key: key}
	dyn, err := dynamic.NewForConfig(env.Config)
	must(t, err)
	cs := env.Clientset

	must(t, env.StartKwok(ctx))
	for _, n := range specNodes {
		_, err := env.CreateNode(ctx, testenv.Node{Name: n.Name, IP: n.IP, Role: n.Role})
		must(t, err)
	}
	for _, n := range specNodes {
		_, err := env.WaitNodeReady(ctx, n.Name)
		must(t, err)
	}

	for _, ns := range append(platformNamespaces, webhookNamespace) {
		createNamespace(t, ctx, ns, nil)
	}
	for _, ns := range platformNamespaces {
		_, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, defaultDeny(ns), metav1.CreateOptions{})
		must(t, err)
	}

	// MetalLB.
	createDeployment(t, ctx, metallbNamespace, "metallb-controller", 1, podTemplate("metallb-controller"))
	createDaemonSet(t, ctx, metallbNamespace, "metallb-speaker")
	custom(t, ctx, dyn, kindIPAddressPool, metallbNamespace, map[string]any{
		"metadata": meta("nerv-pool"), "spec": map[string]any{"addresses": []any{"192.168.1.110-192.168.1.115"}},
	})
	custom(t, ctx, dyn, kindL2Advertisement, metallbNamespace, map[string]any{
		"metadata": meta("nerv-pool"), "spec": map[string]any{"ipAddressPools": []any{"nerv-pool"}},
	})
	ips := st.spec.Spec.Network.ServiceIPs
	createLBService(t, ctx, "argocd", "argocd-server", ips.ArgoCD)
	createLBService(t, ctx, longhornNamespace, "longhorn-ui-lb", ips.Longhorn)
	createLBService(t, ctx, traefikNamespace, "traefik", ips.Traefik)

	// ArgoCD.
	createDeployment(t, ctx, "argocd", "argocd-server", 1, podTemplate("argocd-server"))
	createDeployment(t, ctx, "argocd", "argocd-repo-server", 1, repoServerTemplate(true))
	createDeployment(t, ctx, "argocd", "argocd-redis", 1, podTemplate("argocd-redis"))
	createStatefulSet(t, ctx, "argocd", "argocd-application-controller")
	for _, app := range []string{"root", "traefik", "longhorn"} {
		custom(t, ctx, dyn, kindApplication, "argocd", application(app))
	}
	_, err = cs.CoreV1().Secrets("argocd").Create(ctx, ageKeySecretObject(key), metav1.CreateOptions{})
	must(t, err)
	_, err = cs.NetworkingV1().NetworkPolicies("argocd").Create(ctx, redisPolicy(), metav1.CreateOptions{})
	must(t, err)

	// Traefik, cert-manager, Longhorn.
	createDeployment(t, ctx, traefikNamespace, "traefik", 1, podTemplate("traefik"))
	for _, d := range []string{"cert-manager", "cert-manager-webhook", "cert-manager-cainjector"} {
		createDeployment(t, ctx, certManagerNamespace, d, 1, podTemplate(d))
	}
	custom(t, ctx, dyn, kindClusterIssuer, "", map[string]any{
		"metadata": meta("selfsigned"), "spec": map[string]any{"selfSigned": map[string]any{}},
		"status": map[string]any{"conditions": readyConditions("Ready")},
	})
	custom(t, ctx, dyn, kindCertificate, webhookNamespace, certificate("nerv-webhook", time.Now().Add(60*24*time.Hour)))
	createDaemonSet(t, ctx, longhornNamespace, "longhorn-manager")
	for _, n := range specNodes {
		custom(t, ctx, dyn, kindLonghornNode, longhornNamespace, longhornNode(n.Name))
	}
	custom(t, ctx, dyn, kindLonghornVolume, longhornNamespace, map[string]any{
		"metadata": meta("pvc-1"), "spec": map[string]any{"numberOfReplicas": int64(3)},
		"status": map[string]any{"state": "attached", "robustness": "healthy"},
	})
	custom(t, ctx, dyn, kindLonghornVolume, longhornNamespace, map[string]any{
		"metadata": meta("pvc-2"), "spec": map[string]any{"numberOfReplicas": int64(3)},
		"status": map[string]any{"state": "detached", "robustness": "unknown"},
	})
	_, err = cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: "longhorn", Annotations: map[string]string{annotationDefaultClass: "true"}},
		Provisioner: "driver.longhorn.io",
	}, metav1.CreateOptions{})
	must(t, err)

	// nerv-webhook: envtest registered the configuration; serve it, and let it judge the
	// probe's namespace.
	startWebhookServer(t)
	createNamespace(t, ctx, probeNamespace, map[string]string{enforceLabel: "true"})
	return st
}
