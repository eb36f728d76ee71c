package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// Views gives the policy engine its view of a namespace. The server's implementation reads
// informer caches; it never calls the API server during a review.
type Views interface {
	View(ctx context.Context, namespace string) policy.NamespaceView
	// Synced reports whether the caches behind the views have synced; until then a
	// missing NetworkPolicy may only be not-yet-seen, so reviews are refused.
	Synced() bool
}

// FreshViews is implemented by Views that can read a namespace's NetworkPolicies from the API
// server. The handler uses it only to confirm a network-policy denial: an informer cache lags
// the API server by milliseconds, so a Pod or Deployment sent right after the NetworkPolicy
// that selects it (one `kubectl apply -f dir/` with both) could otherwise be refused.
type FreshViews interface {
	// FreshView returns nil when it cannot read fresher than View.
	FreshView(ctx context.Context, namespace string) policy.NamespaceView
}

// EventRecorder is the part of an events.k8s.io recorder the handler uses.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Event reasons for admitted objects that violate a warn- or audit-mode policy.
const (
	ReasonWarn  = "NervPolicyWarn"
	ReasonAudit = "NervPolicyAudit"
	// maxEventNote is events.k8s.io/v1's limit on Event.note.
	maxEventNote = 1024
)

// Handler judges admission reviews with the current policy engine.
type Handler struct {
	engine   atomic.Pointer[policy.Engine]
	views    Views
	metrics  *Metrics
	recorder EventRecorder
	log      logr.Logger
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler returns a handler; recorder may be nil (no Events).
func NewHandler(engine *policy.Engine, views Views, metrics *Metrics, recorder EventRecorder, log logr.Logger) *Handler {
	h := &Handler{views: views, metrics: metrics, recorder: recorder, log: log}
	h.engine.Store(engine)
	return h
}

// SetEngine swaps in a new engine (a reloaded config); reviews in flight finish on the old one.
func (h *Handler) SetEngine(e *policy.Engine) { h.engine.Store(e) }

// Engine returns the engine in use.
func (h *Handler) Engine() *policy.Engine { return h.engine.Load() }

// Handle judges one review.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.UID == "" && req.Kind.Kind == "" {
		return admission.Errored(http.StatusBadRequest, errors.New("the body is not an admission.k8s.io/v1 AdmissionReview with a request: nerv-webhook only answers admission reviews from the API server"))
	}
	gvk := schema.GroupVersionKind(req.Kind)
	if !policy.Judged(gvk) {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf(
			"nerv-webhook does not judge %s: the ValidatingWebhookConfiguration sends it kinds no NERV policy covers; use the rules shipped in manifests/webhook", kindString(gvk)))
	}
	raw := req.Object.Raw
	if req.Operation == admissionv1.Delete {
		raw = req.OldObject.Raw
	}
	if len(raw) == 0 || string(raw) == "null" {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("the review of %s %s/%s (%s) carries no object", gvk.Kind, req.Namespace, req.Name, req.Operation))
	}
	obj, err := policy.Decode(gvk, raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("%s/%s: %w", req.Namespace, req.Name, err))
	}
	var old runtime.Object
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = policy.Decode(gvk, req.OldObject.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("%s/%s: old object: %w", req.Namespace, req.Name, err))
		}
	}
	if !h.views.Synced() {
		return admission.Errored(http.StatusServiceUnavailable, errors.New("nerv-webhook is starting: its NetworkPolicy, Namespace and Pod caches have not synced yet; retry"))
	}
	engine := h.engine.Load()
	preq := policy.Request{
		Operation: policy.Operation(req.Operation),
		Object:    obj,
		OldObject: old,
		Namespace: req.Namespace,
	}
	d, err := engine.Evaluate(preq, h.views.View(ctx, req.Namespace))
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if fv, ok := h.views.(FreshViews); ok && req.Operation != admissionv1.Delete && deniedBy(&d, policy.PolicyNetwork) {
		// Confirm against the API server before refusing: one list call, on denials only. With
		// nothing fresher than the cache (a nil view) the cache's denial stands.
		if view := fv.FreshView(ctx, req.Namespace); view != nil {
			if fresh, err := engine.Evaluate(preq, view); err == nil {
				result := "confirmed"
				if !deniedBy(&fresh, policy.PolicyNetwork) {
					result = "overturned"
				}
				h.metrics.Rechecks.WithLabelValues(result).Inc()
				d = fresh
			}
		}
	}
	h.record(&req, obj, &d)

	var warnings []string
	for _, v := range d.Violations {
		if v.Mode == policy.ModeWarn {
			warnings = append(warnings, v.String())
		}
	}
	if d.Denied() {
		return admission.Denied(d.DenyMessage()).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// record counts every policy result, and logs and records Events for violations.
func (h *Handler) record(req *admission.Request, obj runtime.Object, d *policy.Decision) {
	ns := d.Object.Namespace
	for _, r := range d.Results {
		h.metrics.Decisions.WithLabelValues(r.Policy, string(r.Mode), string(r.Verdict), ns).Inc()
	}
	if len(d.Violations) == 0 {
		return
	}
	dryRun := req.DryRun != nil && *req.DryRun
	for _, r := range d.Results {
		if r.Verdict != policy.VerdictDeny && r.Verdict != policy.VerdictWarn && r.Verdict != policy.VerdictAudit {
			continue
		}
		var lines []string
		for _, v := range d.Violations {
			if v.Policy == r.Policy {
				lines = append(lines, v.Field+": "+v.Message)
			}
		}
		h.log.Info("policy violation",
			"policy", r.Policy, "mode", r.Mode, "verdict", r.Verdict,
			"object", d.Object, "operation", req.Operation, "uid", req.UID,
			"user", req.UserInfo.Username, "dryRun", dryRun, "violations", lines)
		if r.Verdict == policy.VerdictDeny || dryRun || h.recorder == nil {
			continue // denied objects do not exist; dry runs must leave no trace
		}
		reason := ReasonAudit
		if r.Verdict == policy.VerdictWarn {
			reason = ReasonWarn
		}
		note := fmt.Sprintf("admitted despite %s policy (%s mode): %s", r.Policy, r.Mode, strings.Join(lines, "; "))
		if len(note) > maxEventNote {
			note = note[:maxEventNote-3] + "..."
		}
		h.recorder.Eventf(regarding(obj, req), nil, corev1.EventTypeWarning, reason, "Admit", "%s", note)
	}
}

// deniedBy reports whether policy p denies in d.
func deniedBy(d *policy.Decision, p string) bool {
	for _, r := range d.Results {
		if r.Policy == p && r.Verdict == policy.VerdictDeny {
			return true
		}
	}
	return false
}

// regarding returns obj with the namespace and name the request gives, which a just-created
// object's metadata may lack.
func regarding(obj runtime.Object, req *admission.Request) runtime.Object {
	if m, err := meta.Accessor(obj); err == nil {
		if m.GetNamespace() == "" {
			m.SetNamespace(req.Namespace)
		}
		if m.GetName() == "" {
			m.SetName(req.Name)
		}
	}
	return obj
}

func kindString(gvk schema.GroupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Version + " " + gvk.Kind
	}
	return gvk.Group + "/" + gvk.Version + " " + gvk.Kind
}
