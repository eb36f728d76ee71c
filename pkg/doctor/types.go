package doctor

import (
	"context"
	"time"
)

// Categories, in the order checks run and are reported.
const (
	CategoryKubernetes  = "kubernetes"
	CategoryMetalLB     = "metallb"
	CategoryArgoCD      = "argocd"
	CategoryTraefik     = "traefik"
	CategoryCertManager = "cert-manager"
	CategoryLonghorn    = "longhorn"
	CategoryWebhook     = "nerv-webhook"
	CategoryPolicy      = "policy"
)

// Categories lists every category in report order.
var Categories = []string{
	CategoryKubernetes, CategoryMetalLB, CategoryArgoCD, CategoryTraefik,
	CategoryCertManager, CategoryLonghorn, CategoryWebhook, CategoryPolicy,
}

// Severity says what a failing check means: an error fails the run (exit 1), a warning is
// reported but does not.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Status is the outcome of one check.
type Status string

const (
	StatusPass Status = "pass"
	// StatusWarn is a failed check of warning severity.
	StatusWarn Status = "warn"
	// StatusFail is a failed check of error severity.
	StatusFail Status = "fail"
	// StatusSkip means the check could not apply: the component is absent, the user may not
	// read what it needs, or it needs --spec.
	StatusSkip Status = "skip"
)

// DefaultCheckTimeout bounds a check that sets no Timeout.
const DefaultCheckTimeout = 15 * time.Second

// DocsURL is where the hints' anchors point (docs/doctor.md in the repository).
const DocsURL = "https://github.com/nerv-platform/nerv/blob/main/docs/doctor.md"

// Check is one health check, declared as data.
type Check struct {
	// ID is unique, stable, and the anchor of the check in docs/doctor.md.
	ID       string
	Category string
	// Name says, in a few words, what must hold ("nodes are Ready").
	Name     string
	Severity Severity
	// Hint tells the user what to do when the check fails.
	Hint string
	// Timeout bounds the check; DefaultCheckTimeout when zero.
	Timeout time.Duration
	// Run judges the cluster. It reads objects through the snapshot (shared lists) and
	// returns Passf, Failf or Skipf; a failure's status becomes warn or fail per Severity.
	Run func(ctx context.Context, s *Snapshot) Outcome
}

// Docs is the link to the check's section in docs/doctor.md.
func (c *Check) Docs() string { return DocsURL + "#" + c.ID }

// Outcome is what a check's Run returns.
type Outcome struct {
	// Status is StatusPass, StatusFail (turned into warn for warnings) or StatusSkip.
	Status  Status
	Message string
	// Details lists the offending objects, one line each.
	Details []string
}
