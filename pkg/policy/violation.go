package policy

import (
	"fmt"
	"strings"
)

// Policy names, as used in the config file, the nerv.dev/exempt annotation and metrics.
const (
	PolicyResources = "resources"
	PolicyNetwork   = "network"
)

// Policies lists every policy name in evaluation order.
var Policies = []string{PolicyResources, PolicyNetwork}

// Mode says what a violation of a policy does.
type Mode string

const (
	// ModeEnforce denies the request.
	ModeEnforce Mode = "enforce"
	// ModeWarn admits the request and returns admission warnings to the client.
	ModeWarn Mode = "warn"
	// ModeAudit admits the request silently; the violation is logged and counted.
	ModeAudit Mode = "audit"
)

// Valid reports whether m is one of the three modes.
func (m Mode) Valid() bool {
	return m == ModeEnforce || m == ModeWarn || m == ModeAudit
}

// ObjectRef names the object a violation is about.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String is "Kind namespace/name", the way kubectl users read an object.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Violation is one broken rule: which policy, in which mode, on which object and field,
// and what to do about it.
type Violation struct {
	Policy  string    `json:"policy"`
	Mode    Mode      `json:"mode"`
	Object  ObjectRef `json:"object"`
	Field   string    `json:"field"`
	Message string    `json:"message"`
}

// String renders the violation on one line, as shown in denials and warnings.
func (v Violation) String() string {
	return fmt.Sprintf("[%s] %s: %s", v.Policy, v.Field, v.Message)
}

// Verdict is the outcome of one policy for one object; it is the "verdict" metric label.
type Verdict string

const (
	VerdictPass   Verdict = "pass"   // the object complies
	VerdictExempt Verdict = "exempt" // the policy was skipped by an exemption
	VerdictDeny   Verdict = "deny"   // violations in enforce mode
	VerdictWarn   Verdict = "warn"   // violations in warn mode
	VerdictAudit  Verdict = "audit"  // violations in audit mode
)

// PolicyResult is the outcome of one policy that applies to the object.
type PolicyResult struct {
	Policy  string  `json:"policy"`
	Mode    Mode    `json:"mode"`
	Verdict Verdict `json:"verdict"`
	// ExemptBy says which exemption applied, for logs ("namespace kube-system is exempt").
	ExemptBy string `json:"exemptBy,omitempty"`
}

// Decision is the engine's answer for one object.
type Decision struct {
	Object ObjectRef `json:"object"`
	// Results has one entry per policy that applies to the object's kind; empty when no
	// policy applies (a ConfigMap, say).
	Results    []PolicyResult `json:"results,omitempty"`
	Violations []Violation    `json:"violations,omitempty"`
}

// Denied reports whether any violation is in enforce mode.
func (d *Decision) Denied() bool {
	for i := range d.Violations {
		if d.Violations[i].Mode == ModeEnforce {
			return true
		}
	}
	return false
}

// ViolationsIn returns the violations in mode m.
func (d *Decision) ViolationsIn(m Mode) []Violation {
	var out []Violation
	for _, v := range d.Violations {
		if v.Mode == m {
			out = append(out, v)
		}
	}
	return out
}

// DenyMessage is the single message returned to the client for a denied request: the
// object, then every enforce-mode violation on its own line.
func (d *Decision) DenyMessage() string {
	var b strings.Builder
	b.WriteString(d.Object.String())
	b.WriteString(" violates NERV policy:")
	for _, v := range d.Violations {
		if v.Mode != ModeEnforce {
			continue
		}
		b.WriteString("\n  ")
		b.WriteString(v.String())
	}
	return b.String()
}
