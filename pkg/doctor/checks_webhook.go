package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// How manifests/webhook installs nerv-webhook.
const (
	webhookNamespace = "nerv-system"
	webhookService   = "nerv-webhook"
	webhookConfig    = "nerv-webhook"
	// probeNamespace is where the live denial probe creates (dry run) its Pod: it exists in
	// every cluster and no default exempts it.
	probeNamespace = "default"
)

func webhookChecks() []Check {
	return []Check{
		{
			ID: "nerv-webhook-config", Category: CategoryWebhook, Severity: SeverityError,
			Name: "ValidatingWebhookConfiguration registered",
			Hint: "apply manifests/webhook (kubectl apply -k manifests/webhook); it registers ValidatingWebhookConfiguration nerv-webhook",
			Run:  checkWebhookConfig,
		},
		{
			ID: "nerv-webhook-ca", Category: CategoryWebhook, Severity: SeverityError,
			Name: "caBundle valid and not expiring",
			Hint: "the caBundle is injected by cert-manager's cainjector from the Certificate in nerv-system: check the cert-manager category and kubectl -n nerv-system describe certificate",
			Run:  checkWebhookCA,
		},
		{
			ID: "nerv-webhook-endpoints", Category: CategoryWebhook, Severity: SeverityError,
			Name: "webhook Service has ready endpoints",
			Hint: "kubectl -n nerv-system get pods,endpointslices; with failurePolicy Fail and no endpoint, every judged create is refused",
			Run:  checkWebhookEndpoints,
		},
		{
			ID: "nerv-webhook-denies", Category: CategoryWebhook, Severity: SeverityError, Timeout: 20 * time.Second,
			Name: "a Pod without limits is denied (live dry run)",
			Hint: "the webhook admitted a Pod that breaks the resources policy: check its mode in the policy ConfigMap (enforce), the namespaceSelector and the rules of the ValidatingWebhookConfiguration",
			Run:  checkWebhookDenies,
		},
	}
}

// nervWebhooks returns the webhooks of NERV's configuration: the one named nerv-webhook, or
// any whose webhooks call the nerv-webhook Service.
func nervWebhooks(ctx context.Context, s *Snapshot) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	cfgs, err := s.ValidatingWebhookConfigurations(ctx)
	if err != nil {
		return nil, err
	}
	for i := range cfgs {
		if cfgs[i].Name == webhookConfig {
			return &cfgs[i], nil
		}
	}
	for i := range cfgs {
		for _, w := range cfgs[i].Webhooks {
			if svc := w.ClientConfig.Service; svc != nil && svc.Name == webhookService && svc.Namespace == webhookNamespace {
				return &cfgs[i], nil
			}
		}
	}
	return nil, nil
}

// webhookOrSkip returns NERV's configuration, or the outcome to report without one.
func webhookOrSkip(ctx context.Context, s *Snapshot) (*admissionregistrationv1.ValidatingWebhookConfiguration, *Outcome) {
	cfg, err := nervWebhooks(ctx, s)
	if err != nil {
		o := fromError(err)
		return nil, &o
	}
	if cfg != nil {
		return cfg, nil
	}
	skip, err := namespaceInstalled(ctx, s, "nerv-webhook", webhookNamespace)
	if err != nil {
		o := fromError(err)
		return nil, &o
	}
	if skip != "" {
		o := Skipf("%s", skip)
		return nil, &o
	}
	o := Failf(nil, "namespace %s exists but no ValidatingWebhookConfiguration %s: policies are not enforced", webhookNamespace, webhookConfig)
	return nil, &o
}

func checkWebhookConfig(ctx context.Context, s *Snapshot) Outcome {
	cfg, o := webhookOrSkip(ctx, s)
	if o != nil {
		return *o
	}
	if len(cfg.Webhooks) == 0 {
		return Failf(nil, "ValidatingWebhookConfiguration %s has no webhooks", cfg.Name)
	}
	var names, notes []string
	for _, w := range cfg.Webhooks {
		names = append(names, w.Name)
		if w.FailurePolicy != nil && *w.FailurePolicy == admissionregistrationv1.Ignore {
			notes = append(notes, w.Name+": failurePolicy Ignore: a dead webhook silently admits everything")
		}
	}
	if len(notes) > 0 {
		return Failf(notes, "ValidatingWebhookConfiguration %s does not fail closed", cfg.Name)
	}
	return Passf("ValidatingWebhookConfiguration %s: %s", cfg.Name, strings.Join(names, ", "))
}

func checkWebhookCA(ctx context.Context, s *Snapshot) Outcome {
	cfg, o := webhookOrSkip(ctx, s)
	if o != nil {
		return *o
	}
	var bad []string
	var earliest time.Time
	for _, w := range cfg.Webhooks {
		certs, err := parseCABundle(w.ClientConfig.CABundle)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", w.Name, err))
			continue
		}
		for _, c := range certs {
			switch left := c.NotAfter.Sub(s.Now); {
			case s.Now.Before(c.NotBefore):
				bad = append(bad, fmt.Sprintf("%s: CA %q not valid before %s", w.Name, c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339)))
			case left < 0:
				bad = append(bad, fmt.Sprintf("%s: CA %q expired on %s", w.Name, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339)))
			case expiresSoon(c.NotBefore, c.NotAfter, s.Now):
				bad = append(bad, fmt.Sprintf("%s: CA %q expires in %s", w.Name, c.Subject.CommonName, left.Round(time.Hour)))
			}
			if earliest.IsZero() || c.NotAfter.Before(earliest) {
				earliest = c.NotAfter
			}
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "the caBundle of %s is not usable", cfg.Name)
	}
	return Passf("caBundle valid until %s", earliest.UTC().Format(time.DateOnly))
}

// parseCABundle reads the PEM certificates of a caBundle.
func parseCABundle(b []byte) ([]*x509.Certificate, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty caBundle: the apiserver cannot verify the webhook's certificate")
	}
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("caBundle: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("caBundle holds no PEM certificate")
	}
	return out, nil
}

func checkWebhookEndpoints(ctx context.Context, s *Snapshot) Outcome {
	cfg, o := webhookOrSkip(ctx, s)
	if o != nil {
		return *o
	}
	slices_, err := s.EndpointSlices(ctx)
	if err != nil {
		return fromError(err)
	}
	seen := map[string]bool{}
	var bad, good []string
	for _, w := range cfg.Webhooks {
		svc := w.ClientConfig.Service
		if svc == nil {
			continue // a URL webhook: nothing in the cluster to look at
		}
		key := svc.Namespace + "/" + svc.Name
		if seen[key] {
			continue
		}
		seen[key] = true
		if n := readyEndpoints(slices_, svc.Namespace, svc.Name); n == 0 {
			bad = append(bad, fmt.Sprintf("Service %s: no ready endpoint", key))
		} else {
			good = append(good, fmt.Sprintf("Service %s: %d ready", key, n))
		}
	}
	if len(bad) > 0 {
		return Failf(bad, "the webhook has no ready endpoint")
	}
	if len(good) == 0 {
		return Skipf("the webhooks of %s are called by URL, not through a Service", cfg.Name)
	}
	return Passf("%s", strings.Join(good, "; "))
}

// readyEndpoints counts the ready endpoints of a Service over its EndpointSlices.
func readyEndpoints(slices_ []discoveryv1.EndpointSlice, ns, svc string) int {
	n := 0
	for i := range slices_ {
		es := &slices_[i]
		if es.Namespace != ns || es.Labels[discoveryv1.LabelServiceName] != svc {
			continue
		}
		for _, ep := range es.Endpoints {
			// A nil Ready means unknown, which consumers treat as ready.
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n++
			}
		}
	}
	return n
}

// probePod breaks the resources policy and nothing else a webhook could object to first.
func probePod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "nerv-doctor-probe-",
			Namespace:    probeNamespace,
			Labels:       map[string]string{"app.kubernetes.io/managed-by": "nerv-doctor"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "probe", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

func checkWebhookDenies(ctx context.Context, s *Snapshot) Outcome {
	cfg, o := webhookOrSkip(ctx, s)
	if o != nil {
		return *o
	}
	nss, err := s.Namespaces(ctx)
	if err != nil {
		return fromError(err)
	}
	for i := range nss {
		if nss[i].Name == probeNamespace && nss[i].Labels[policy.LabelPolicy] == policy.LabelPolicyExempt {
			return Skipf("namespace %s is labelled %s=%s: no namespace to probe in", probeNamespace, policy.LabelPolicy, policy.LabelPolicyExempt)
		}
	}
	// A server-side dry run: admission runs in full, nothing is stored.
	_, err = s.Client.CoreV1().Pods(probeNamespace).Create(ctx, probePod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		return Failf(nil, "a Pod without resources in namespace %s was admitted (dry run): nerv-webhook does not enforce the resources policy", probeNamespace)
	}
	msg := err.Error()
	for _, w := range cfg.Webhooks {
		switch {
		case strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", w.Name)):
			return Passf("denied by %s: %s", w.Name, denialSummary(denialText(msg)))
		case strings.Contains(msg, fmt.Sprintf("failed calling webhook %q", w.Name)):
			return Failf([]string{msg}, "the apiserver could not call %s: requests are refused, but not by policy", w.Name)
		case strings.Contains(msg, w.Name) && strings.Contains(strings.ToLower(msg), "dry run"):
			return Failf([]string{msg}, "%s does not support dry run: set sideEffects: None", w.Name)
		}
	}
	if apierrors.IsForbidden(err) && strings.Contains(msg, "cannot create resource") {
		return Skipf("forbidden: %s", forbiddenMessage(err))
	}
	return Failf([]string{msg}, "the probe Pod was refused, but not by nerv-webhook")
}

// denialText strips the apiserver's prefix from a webhook denial.
func denialText(msg string) string {
	if _, after, ok := strings.Cut(msg, "denied the request: "); ok {
		return after
	}
	return msg
}

// denialSummary puts a multi-line denial on one line: the header ("Pod x violates NERV
// policy:") with the first violation, and how many more there are.
func denialSummary(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[0]
	if len(lines) > 1 {
		out += " " + strings.TrimSpace(lines[1])
	}
	if len(lines) > 2 {
		out += fmt.Sprintf(" (and %d more)", len(lines)-2)
	}
	return out
}
