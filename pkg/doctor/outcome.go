package doctor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// maxDetails caps the lines a check reports; the rest is summarised as "... and N more".
const maxDetails = 50

// Passf is a passing outcome.
func Passf(format string, args ...any) Outcome {
	return Outcome{Status: StatusPass, Message: fmt.Sprintf(format, args...)}
}

// Failf is a failing outcome with details (at most maxDetails are kept).
func Failf(details []string, format string, args ...any) Outcome {
	return Outcome{Status: StatusFail, Message: fmt.Sprintf(format, args...), Details: capDetails(details)}
}

// Skipf is a skipped outcome; the message is the reason.
func Skipf(format string, args ...any) Outcome {
	return Outcome{Status: StatusSkip, Message: fmt.Sprintf(format, args...)}
}

func capDetails(d []string) []string {
	if len(d) <= maxDetails {
		return d
	}
	out := append([]string(nil), d[:maxDetails]...)
	return append(out, fmt.Sprintf("... and %d more", len(d)-maxDetails))
}

// UnavailableError says a list could not be read for a reason that makes the checks that need
// it inapplicable rather than failed: the API does not exist (the component is not
// installed) or the user may not read it.
type UnavailableError struct {
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string { return e.Reason }
func (e *UnavailableError) Unwrap() error { return e.Err }

// classify turns a list error into an UnavailableError where it should skip checks.
// component and what name the missing API ("metallb", "metallb.io/v1beta1 IPAddressPool").
func classify(err error, component, what string) error {
	if err == nil {
		return nil
	}
	switch {
	case apierrors.IsNotFound(err):
		return &UnavailableError{Reason: fmt.Sprintf("%s is not installed: no %s API", component, what), Err: err}
	case apierrors.IsForbidden(err):
		return &UnavailableError{Reason: "forbidden: " + forbiddenMessage(err), Err: err}
	}
	return fmt.Errorf("listing %s: %w", what, err)
}

// forbiddenMessage is the apiserver's own sentence, which names the user, verb and resource
// (`User "alice" cannot list resource "pods" in API group "" at the cluster scope`).
func forbiddenMessage(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, " is forbidden: "); ok {
		return after
	}
	return msg
}

// fromError is the outcome of a check whose input could not be read: skipped when the input
// is unavailable, failed otherwise (the apiserver erred or the check ran out of time).
func fromError(err error) Outcome {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return Skipf("%s", ue.Reason)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Failf(nil, "timed out: %v", err)
	}
	return Failf(nil, "%v", err)
}
