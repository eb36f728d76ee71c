package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Namespaces of the platform services (pkg/nixos templates/modules/services).
const (
	traefikNamespace     = "traefik"
	certManagerNamespace = "cert-manager"
	longhornNamespace    = "longhorn-system"
)

// certRenewBefore is how soon before expiry a certificate counts as failing: cert-manager
// renews at two thirds of the lifetime, so a 90-day certificate this close to the end has
// stopped renewing. Short-lived certificates get a third of their lifetime instead (see
// expiresSoon).
const certRenewBefore = 14 * 24 * time.Hour

// expiresSoon reports whether a certificate valid from notBefore (zero if unknown) to
// notAfter is, at now, within min(14 days, a third of its lifetime) of its end: the point
// by which cert-manager should have renewed it.
func expiresSoon(notBefore, notAfter, now time.Time) bool {
	window := certRenewBefore
	if !notBefore.IsZero() && notAfter.After(notBefore) {
		if third := notAfter.Sub(notBefore) / 3; third < window {
			window = third
		}
	}
	return notAfter.Sub(now) < window
}

// installedWith returns the outcome to report when the component is absent (its namespace
// or its API is missing), or nil when the checks apply.
func installedWith(ctx context.Context, s *Snapshot, component, ns string, kinds ...crdKind) *Outcome {
	skip, err := namespaceInstalled(ctx, s, component, ns)
	if err == nil && skip != "" {
		o := Skipf("%s", skip)
		return &o
	}
	for _, k := range kinds {
		if err != nil {
			break
		}
		_, err = s.customObjects(ctx, k)
	}
	if err != nil {
		o := fromError(err)
		return &o
	}
	return nil
}

// Annotation that marks the default StorageClass.
const annotationDefaultClass = "storageclass.kubernetes.io/is-default-class"

func traefikChecks() []Check {
	return []Check{
		{
			ID: "traefik-ready", Category: CategoryTraefik, Severity: SeverityError,
			Name: "Traefik ready",
			Hint: "kubectl -n traefik describe deployment traefik; its ArgoCD Application (argocd app get traefik) shows sync errors",
			Run: func(ctx context.Context, s *Snapshot) Outcome {
				return componentReady(ctx, s, "traefik", traefikNamespace, workload{kindDeployment, []string{"traefik"}})
			},
		},
		{
			ID: "traefik-service", Category: CategoryTraefik, Severity: SeverityError,
			Name: "Traefik's LoadBalancer Service has an address",
			Hint: "kubectl -n traefik describe service traefik; check the metallb category",
			Run:  checkTraefikService,
		},
	}
}

func checkTraefikService(ctx context.Context, s *Snapshot) Outcome {
	skip, err := namespaceInstalled(ctx, s, "traefik", traefikNamespace)
	if err != nil {
		return fromError(err)
	}
	if skip != "" {
		return Skipf("%s", skip)
	}
	svcs, err := s.Services(ctx)
	if err != nil {
		return fromError(err)
	}
	svc := findService(svcs, traefikNamespace, "traefik")
	if svc == nil {
		return Failf(nil, "Service traefik/traefik not found")
	}
	ips := loadBalancerIPs(svc)
	if len(ips) == 0 {
		return Failf(nil, "Service traefik/traefik (type %s) has no LoadBalancer address", svc.Spec.Type)
	}
	return Passf("Service traefik/traefik at %s", strings.Join(ips, ", "))
}

func certManagerChecks() []Check {
	return []Check{
		{
			ID: "cert-manager-ready", Category: CategoryCertManager, Severity: SeverityError,
			Name: "controller, webhook and cainjector ready",
			Hint: "kubectl -n cert-manager get pods; without the webhook no Certificate can be created, without cainjector webhooks lose their caBundle",
			Run: func(ctx context.Context, s *Snapshot) Outcome {
				return componentReady(ctx, s, "cert-manager", certManagerNamespace,
					workload{kindDeployment, []string{"cert-manager"}},
					workload{kindDeployment, []string{"cert-manager-webhook"}},
					workload{kindDeployment, []string{"cert-manager-cainjector"}})
			},
		},
		{
			ID: "cert-manager-issuers", Category: CategoryCertManager, Severity: SeverityError,
			Name: "ClusterIssuers Ready",
			Hint: "kubectl describe clusterissuer NAME: the Ready condition's message says what is wrong (a missing Secret, an unreachable ACME server)",
			Run:  checkClusterIssuers,
		},
		{
			ID: "cert-manager-certificates", Category: CategoryCertManager, Severity: SeverityError,
			Name: "Certificates Ready, not expiring within 14 days",
			Hint: "kubectl describe certificate NAME and cmctl status certificate NAME; cmctl renew NAME forces a renewal",
			Run:  checkCertificates,
		},
	}
}

// readyCondition judges a custom resource by its Ready condition.
func readyCondition(u *unstructured.Unstructured) (bool, string) {
	st, reason, msg, found := crCondition(u, "Ready")
	switch {
	case !found:
		return false, "no Ready condition yet"
	case st != "True":
		return false, strings.TrimSpace(fmt.Sprintf("Ready=%s %s: %s", st, reason, msg))
	}
	return true, ""
}

func checkClusterIssuers(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "cert-manager", certManagerNamespace, kindClusterIssuer); o != nil {
		return *o
	}
	issuers, err := s.customObjects(ctx, kindClusterIssuer)
	if err != nil {
		return fromError(err)
	}
	if len(issuers) == 0 {
		return Failf(nil, "no ClusterIssuer: Certificates cannot be issued cluster-wide")
	}
	var bad []string
	for i := range issuers {
		if ok, why := readyCondition(&issuers[i]); !ok {
			bad = append(bad, ref(&issuers[i])+": "+why)
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d ClusterIssuers not Ready", len(bad), len(issuers))
	}
	return Passf("%d ClusterIssuers Ready", len(issuers))
}

func checkCertificates(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "cert-manager", certManagerNamespace, kindCertificate); o != nil {
		return *o
	}
	certs, err := s.customObjects(ctx, kindCertificate)
	if err != nil {
		return fromError(err)
	}
	var bad []string
	soonest := ""
	var soonestAt time.Time
	for i := range certs {
		c := &certs[i]
		if ok, why := readyCondition(c); !ok {
			bad = append(bad, ref(c)+": "+why)
			continue
		}
		na := str(c, "status", "notAfter")
		t, err := time.Parse(time.RFC3339, na)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: unreadable status.notAfter %q", ref(c), na))
			continue
		}
		nb, _ := time.Parse(time.RFC3339, str(c, "status", "notBefore"))
		if left := t.Sub(s.Now); expiresSoon(nb, t, s.Now) {
			if left < 0 {
				bad = append(bad, fmt.Sprintf("%s: expired %s ago (%s)", ref(c), (-left).Round(time.Hour), na))
			} else {
				bad = append(bad, fmt.Sprintf("%s: expires in %s (%s)", ref(c), left.Round(time.Hour), na))
			}
			continue
		}
		if soonest == "" || t.Before(soonestAt) {
			soonest, soonestAt = ref(c), t
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d Certificates not Ready or expiring within 14 days", len(bad), len(certs))
	}
	if len(certs) == 0 {
		return Passf("no Certificates")
	}
	return Passf("%d Certificates Ready; the next to expire is %s on %s", len(certs), soonest, soonestAt.UTC().Format(time.DateOnly))
}

func longhornChecks() []Check {
	return []Check{
		{
			ID: "longhorn-ready", Category: CategoryLonghorn, Severity: SeverityError,
			Name: "longhorn-manager ready on every node",
			Hint: "kubectl -n longhorn-system get pods -o wide; on NixOS check open-iscsi and the iscsiadm path (nixos/modules/node-roles.nix)",
			Run: func(ctx context.Context, s *Snapshot) Outcome {
				return componentReady(ctx, s, "longhorn", longhornNamespace, workload{kindDaemonSet, []string{"longhorn-manager"}})
			},
		},
		{
			ID: "longhorn-nodes", Category: CategoryLonghorn, Severity: SeverityError,
			Name: "Longhorn nodes schedulable",
			Hint: "kubectl -n longhorn-system describe nodes.longhorn.io NAME: a disk out of space or scheduling disabled in the UI",
			Run:  checkLonghornNodes,
		},
		{
			ID: "longhorn-volumes", Category: CategoryLonghorn, Severity: SeverityError,
			Name: "volumes healthy",
			Hint: "kubectl -n longhorn-system get volumes.longhorn.io; a degraded volume rebuilds once enough nodes are schedulable",
			Run:  checkLonghornVolumes,
		},
		{
			ID: "longhorn-default-storageclass", Category: CategoryLonghorn, Severity: SeverityError,
			Name: "exactly one default StorageClass",
			Hint: "kubectl annotate storageclass longhorn storageclass.kubernetes.io/is-default-class=true (and remove the annotation from the others, e.g. k3s' local-path)",
			Run:  checkDefaultStorageClass,
		},
	}
}

func checkLonghornNodes(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "longhorn", longhornNamespace, kindLonghornNode); o != nil {
		return *o
	}
	nodes, err := s.customObjects(ctx, kindLonghornNode)
	if err != nil {
		return fromError(err)
	}
	if len(nodes) == 0 {
		return Failf(nil, "no Longhorn nodes: longhorn-manager has not registered any node")
	}
	var bad []string
	for i := range nodes {
		n := &nodes[i]
		if allow, found, _ := unstructured.NestedBool(n.Object, "spec", "allowScheduling"); found && !allow {
			bad = append(bad, ref(n)+": scheduling disabled (spec.allowScheduling=false)")
			continue
		}
		for _, t := range []string{"Ready", "Schedulable"} {
			st, reason, msg, found := crCondition(n, t)
			if !found || st != "True" {
				bad = append(bad, strings.TrimSpace(fmt.Sprintf("%s: %s=%s %s %s", ref(n), t, orUnknown(st), reason, msg)))
				break
			}
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d Longhorn nodes not schedulable", len(bad), len(nodes))
	}
	return Passf("%d Longhorn nodes schedulable", len(nodes))
}

func checkLonghornVolumes(ctx context.Context, s *Snapshot) Outcome {
	if o := installedWith(ctx, s, "longhorn", longhornNamespace, kindLonghornVolume); o != nil {
		return *o
	}
	vols, err := s.customObjects(ctx, kindLonghornVolume)
	if err != nil {
		return fromError(err)
	}
	var bad []string
	attached := 0
	for i := range vols {
		v := &vols[i]
		state := str(v, "status", "state")
		robustness := str(v, "status", "robustness")
		// A detached volume's robustness is "unknown" by design; only attached ones are judged.
		if state != "attached" {
			if robustness == "faulted" {
				bad = append(bad, fmt.Sprintf("%s: %s and faulted", ref(v), orUnknown(state)))
			}
			continue
		}
		attached++
		if robustness != "healthy" {
			bad = append(bad, fmt.Sprintf("%s: robustness %s", ref(v), orUnknown(robustness)))
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "%d of %d volumes not healthy", len(bad), len(vols))
	}
	return Passf("%d volumes, %d attached and healthy", len(vols), attached)
}

func checkDefaultStorageClass(ctx context.Context, s *Snapshot) Outcome {
	// k3s ships local-path as the default; the question matters once Longhorn is there.
	if o := installedWith(ctx, s, "longhorn", longhornNamespace, kindLonghornNode); o != nil {
		return *o
	}
	scs, err := s.StorageClasses(ctx)
	if err != nil {
		return fromError(err)
	}
	var defaults []string
	for i := range scs {
		if scs[i].Annotations[annotationDefaultClass] == "true" {
			defaults = append(defaults, fmt.Sprintf("%s (%s)", scs[i].Name, scs[i].Provisioner))
		}
	}
	switch len(defaults) {
	case 0:
		return Failf(nil, "no default StorageClass: PersistentVolumeClaims without a class stay Pending")
	case 1:
		return Passf("default StorageClass %s", defaults[0])
	}
	return Failf(defaults, "%d default StorageClasses: which one a claim gets is undefined", len(defaults))
}
