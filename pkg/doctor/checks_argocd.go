package doctor

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Where NERV installs ArgoCD and what the sops plugin is called
// (manifests/argocd-sops-plugin).
const (
	argocdNamespace  = "argocd"
	sopsPluginName   = "argocd-sops-plugin"
	cmpServerCommand = "argocd-cmp-server"
)

func argocdChecks() []Check {
	return []Check{
		{
			ID: "argocd-components", Category: CategoryArgoCD, Severity: SeverityError,
			Name: "server, repo-server and application-controller ready",
			Hint: "kubectl -n argocd get pods; kubectl -n argocd logs deploy/argocd-repo-server (and the sops-plugin container) for crash loops",
			Run: func(ctx context.Context, s *Snapshot) Outcome {
				return componentReady(ctx, s, "argocd", argocdNamespace,
					workload{kindDeployment, []string{"argocd-server"}},
					workload{kindDeployment, []string{"argocd-repo-server"}},
					workload{kindStatefulSet, []string{"argocd-application-controller"}})
			},
		},
		{
			ID: "argocd-applications", Category: CategoryArgoCD, Severity: SeverityError,
			Name: "every Application Synced and Healthy",
			Hint: "argocd app get NAME (or kubectl -n argocd describe application NAME) shows the failing resources; sync errors usually name the manifest",
			Run:  checkApplications,
		},
		{
			ID: "argocd-sops-plugin", Category: CategoryArgoCD, Severity: SeverityError,
			Name: "repo-server runs the sops plugin sidecar",
			Hint: "apply manifests/argocd-sops-plugin (kubectl apply -k): it adds the argocd-sops-plugin sidecar running argocd-cmp-server to argocd-repo-server",
			Run:  checkSopsSidecar,
		},
		{
			ID: "argocd-age-key", Category: CategoryArgoCD, Severity: SeverityError,
			Name: "age key Secret matches a spec recipient",
			Hint: "create the Secret from the private key whose public key is in spec.sops.ageRecipients: kubectl -n argocd create secret generic argocd-sops-age-key --from-file=keys.txt=KEYFILE",
			Run:  checkAgeKey,
		},
		{
			ID: "argocd-redis-netpol", Category: CategoryArgoCD, Severity: SeverityError,
			Name: "argocd-redis admits only ArgoCD's pods",
			Hint: "ArgoCD caches rendered manifests (decrypted Secrets included) in Redis: apply a NetworkPolicy selecting argocd-redis that admits only ArgoCD pods (docs/argocd-sops-plugin.md)",
			Run:  checkRedisNetworkPolicy,
		},
	}
}

func checkApplications(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "argocd", argocdNamespace, kindApplication); o != nil {
		return *o
	}
	apps, err := s.customObjects(ctx, kindApplication)
	if err != nil {
		return fromError(err)
	}
	if len(apps) == 0 {
		return Failf(nil, "no Applications: the root app-of-apps is missing")
	}
	var bad []string
	for i := range apps {
		a := &apps[i]
		sync := str(a, "status", "sync", "status")
		health := str(a, "status", "health", "status")
		if sync == "Synced" && health == "Healthy" {
			continue
		}
		line := fmt.Sprintf("%s: sync=%s health=%s", ref(a), orUnknown(sync), orUnknown(health))
		if msg := applicationMessage(a); msg != "" {
			line += ": " + msg
		}
		bad = append(bad, line)
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d Applications not Synced and Healthy", len(bad), len(apps))
	}
	return Passf("%d Applications Synced and Healthy", len(apps))
}

// applicationMessage is the most telling message of an unhealthy Application: its
// conditions (errors), the last operation's message, then the health message.
func applicationMessage(a interface {
	UnstructuredContent() map[string]any
}) string {
	obj := a.UnstructuredContent()
	var msgs []string
	if st, ok := obj["status"].(map[string]any); ok {
		if conds, ok := st["conditions"].([]any); ok {
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok {
					if msg, _ := m["message"].(string); msg != "" {
						msgs = append(msgs, msg)
					}
				}
			}
		}
		if op, ok := st["operationState"].(map[string]any); ok {
			if msg, _ := op["message"].(string); msg != "" {
				msgs = append(msgs, msg)
			}
		}
		if h, ok := st["health"].(map[string]any); ok {
			if msg, _ := h["message"].(string); msg != "" {
				msgs = append(msgs, msg)
			}
		}
	}
	return strings.Join(msgs, "; ")
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

func checkSopsSidecar(ctx context.Context, s *Snapshot) Outcome {
	skip, err := namespaceInstalled(ctx, s, "argocd", argocdNamespace)
	if err != nil {
		return fromError(err)
	}
	if skip != "" {
		return Skipf("%s", skip)
	}
	ds, err := s.Deployments(ctx)
	if err != nil {
		return fromError(err)
	}
	d := findDeployment(ds, argocdNamespace, "argocd-repo-server")
	if d == nil {
		return Failf(nil, "Deployment argocd/argocd-repo-server not found")
	}
	tmpl := &d.Spec.Template.Spec
	var cmps []string
	for i := range tmpl.Containers {
		c := &tmpl.Containers[i]
		if !runsCMPServer(c) {
			continue
		}
		cmps = append(cmps, c.Name)
		if servesSopsPlugin(tmpl, c) {
			return Passf("container %s runs %s with the %s plugin", c.Name, cmpServerCommand, sopsPluginName)
		}
	}
	if len(cmps) > 0 {
		return Failf([]string{"plugin sidecars: " + strings.Join(cmps, ", ")}, "argocd-repo-server has plugin sidecars, but none serves %s", sopsPluginName)
	}
	return Failf(nil, "argocd-repo-server has no sidecar running %s", cmpServerCommand)
}

// runsCMPServer reports whether the container's entrypoint is ArgoCD's plugin server.
func runsCMPServer(c *corev1.Container) bool {
	for _, a := range slices.Concat(c.Command, c.Args) {
		if path.Base(a) == cmpServerCommand {
			return true
		}
	}
	return false
}

// servesSopsPlugin reports whether a cmp-server container serves the sops plugin: it is
// named for it, runs its image, or mounts its plugin.yaml from a ConfigMap named for it.
func servesSopsPlugin(pod *corev1.PodSpec, c *corev1.Container) bool {
	if strings.Contains(c.Name, sopsPluginName) || strings.Contains(c.Image, sopsPluginName) {
		return true
	}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && strings.Contains(v.ConfigMap.Name, sopsPluginName) {
				return true
			}
		}
	}
	return false
}

// ageKeySecret is the Secret the sops sidecar mounts (the first Secret volume it mounts; the
// key is the volume's single item, else keys.txt), or DefaultAgeKeySecret.
func ageKeySecret(d *appsv1.Deployment) SecretKeyRef {
	if d == nil {
		return DefaultAgeKeySecret
	}
	pod := &d.Spec.Template.Spec
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if !runsCMPServer(c) || !servesSopsPlugin(pod, c) {
			continue
		}
		for _, m := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name != m.Name || v.Secret == nil {
					continue
				}
				ref := SecretKeyRef{Namespace: d.Namespace, Name: v.Secret.SecretName, Key: DefaultAgeKeySecret.Key}
				if len(v.Secret.Items) == 1 {
					ref.Key = v.Secret.Items[0].Key
				}
				return ref
			}
		}
	}
	return DefaultAgeKeySecret
}

func checkAgeKey(ctx context.Context, s *Snapshot) Outcome {
	skip, err := namespaceInstalled(ctx, s, "argocd", argocdNamespace)
	if err != nil {
		return fromError(err)
	}
	if skip != "" {
		return Skipf("%s", skip)
	}
	ref := s.AgeKeySecret
	if ref == (SecretKeyRef{}) {
		ds, err := s.Deployments(ctx)
		if err != nil {
			return fromError(err)
		}
		ref = ageKeySecret(findDeployment(ds, argocdNamespace, "argocd-repo-server"))
	}
	// One GET by name: the only Secret doctor reads. Its content never leaves this function;
	// only the public key derived from it is reported.
	sec, err := s.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Failf(nil, "Secret %s/%s not found: the sops plugin cannot decrypt anything", ref.Namespace, ref.Name)
	case apierrors.IsForbidden(err):
		return Skipf("forbidden: %s", forbiddenMessage(err))
	case err != nil:
		return fromError(fmt.Errorf("reading Secret %s/%s: %w", ref.Namespace, ref.Name, err))
	}
	data, ok := sec.Data[ref.Key]
	if !ok {
		return Failf([]string{"keys present: " + strings.Join(sortedKeys(sec.Data), ", ")}, "Secret %s/%s has no key %s", ref.Namespace, ref.Name, ref.Key)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(data)))
	if err != nil {
		// age's parse errors quote no key material, but say nothing about the content anyway.
		return Failf(nil, "Secret %s/%s key %s is not an age identity file (age-keygen output expected)", ref.Namespace, ref.Name, ref.Key)
	}
	var pubs []string
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			pubs = append(pubs, x.Recipient().String())
		}
	}
	if len(pubs) == 0 {
		return Failf(nil, "Secret %s/%s key %s holds no X25519 age identity", ref.Namespace, ref.Name, ref.Key)
	}
	if s.Spec == nil {
		return Passf("Secret %s/%s holds %s (give --spec to compare with the spec's recipients)", ref.Namespace, ref.Name, strings.Join(pubs, ", "))
	}
	for _, p := range pubs {
		if slices.Contains(s.Spec.Spec.SOPS.AgeRecipients, p) {
			return Passf("Secret %s/%s holds %s, a spec recipient", ref.Namespace, ref.Name, p)
		}
	}
	return Failf([]string{"key in the Secret: " + strings.Join(pubs, ", "), "spec.sops.ageRecipients: " + strings.Join(s.Spec.Spec.SOPS.AgeRecipients, ", ")},
		"the key in Secret %s/%s is not one of spec.sops.ageRecipients: secrets encrypted for the spec cannot be decrypted", ref.Namespace, ref.Name)
}

// redisWorkloads are where ArgoCD's Redis runs: plain, or the HA chart's StatefulSet.
var redisWorkloads = []string{"argocd-redis", "argocd-redis-ha-server"}

func checkRedisNetworkPolicy(ctx context.Context, s *Snapshot) Outcome {
	skip, err := namespaceInstalled(ctx, s, "argocd", argocdNamespace)
	if err != nil {
		return fromError(err)
	}
	if skip != "" {
		return Skipf("%s", skip)
	}
	ds, err := s.Deployments(ctx)
	if err != nil {
		return fromError(err)
	}
	var podLabels map[string]string
	var name string
	if d := findDeployment(ds, argocdNamespace, redisWorkloads...); d != nil {
		podLabels, name = d.Spec.Template.Labels, "Deployment argocd/"+d.Name
	} else {
		sts, err := s.StatefulSets(ctx)
		if err != nil {
			return fromError(err)
		}
		for i := range sts {
			if sts[i].Namespace == argocdNamespace && slices.Contains(redisWorkloads, sts[i].Name) {
				podLabels, name = sts[i].Spec.Template.Labels, "StatefulSet argocd/"+sts[i].Name
			}
		}
	}
	if name == "" {
		return Failf(nil, "argocd-redis not found in namespace argocd")
	}
	nps, err := s.NetworkPolicies(ctx)
	if err != nil {
		return fromError(err)
	}
	var selecting []string
	var open []string
	for i := range nps {
		np := &nps[i]
		if np.Namespace != argocdNamespace || !selectsForIngress(np, podLabels) {
			continue
		}
		selecting = append(selecting, np.Name)
		open = append(open, openIngress(np)...)
	}
	switch {
	case len(selecting) == 0:
		return Failf(nil, "no NetworkPolicy selects %s: any pod in the cluster can read the manifest cache", name)
	case len(open) > 0:
		return Failf(open, "NetworkPolicies selecting %s admit more than ArgoCD's pods", name)
	}
	return Passf("%s is selected by %s, which admit only pods of namespace argocd", name, strings.Join(selecting, ", "))
}

// selectsForIngress reports whether np applies to ingress of pods with these labels.
func selectsForIngress(np *networkingv1.NetworkPolicy, podLabels map[string]string) bool {
	ingress := len(np.Spec.PolicyTypes) == 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
	if !ingress {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	return err == nil && sel.Matches(labels.Set(podLabels))
}

// openIngress lists the ingress rules of np that admit peers outside its own namespace's
// pods: a rule without from (everyone), a namespaceSelector, or an ipBlock.
func openIngress(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for i, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			out = append(out, fmt.Sprintf("%s: ingress[%d] has no from: admits every source", np.Name, i))
			continue
		}
		for j, p := range r.From {
			switch {
			case p.IPBlock != nil:
				out = append(out, fmt.Sprintf("%s: ingress[%d].from[%d] admits ipBlock %s", np.Name, i, j, p.IPBlock.CIDR))
			case p.NamespaceSelector != nil && !onlyNamespace(p.NamespaceSelector, np.Namespace):
				out = append(out, fmt.Sprintf("%s: ingress[%d].from[%d] admits pods of other namespaces (namespaceSelector %s)", np.Name, i, j, metav1.FormatLabelSelector(p.NamespaceSelector)))
			}
		}
	}
	return out
}

// onlyNamespace reports whether sel selects exactly the namespace ns by its name label.
func onlyNamespace(sel *metav1.LabelSelector, ns string) bool {
	return len(sel.MatchExpressions) == 0 && len(sel.MatchLabels) == 1 && sel.MatchLabels[corev1.LabelMetadataName] == ns
}
