package join

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Step names, in the order they run. --from-step takes one of them.
const (
	StepPreflight  = "preflight"
	StepPlan       = "plan"
	StepInstall    = "install"
	StepKubeconfig = "kubeconfig"
	StepWait       = "wait"
	StepLabel      = "label"
	StepSummary    = "summary"
)

// StepNames lists the steps in order.
var StepNames = []string{StepPreflight, StepPlan, StepInstall, StepKubeconfig, StepWait, StepLabel, StepSummary}

// Outcome is how a step ended.
type Outcome string

const (
	// OK: the step ran and succeeded.
	OK Outcome = "ok"
	// AlreadyDone: the step's result was already in place (a re-run resuming), so it did nothing.
	AlreadyDone Outcome = "done"
	// Skipped: the step does not apply (e.g. kubeconfig for an agent) or --from-step passed it.
	Skipped Outcome = "skipped"
	// Failed: the step returned an error; later steps did not run.
	Failed Outcome = "failed"
)

// StepResult is one step's report.
type StepResult struct {
	Name    string        `json:"name"`
	Outcome Outcome       `json:"outcome"`
	Detail  string        `json:"detail,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
}

// step is one named stage of the join. done detects a result already in place (for resume);
// run does the work. Both return a one-line detail for the report.
type step struct {
	name string
	done func(ctx context.Context) (bool, string, error)
	run  func(ctx context.Context) (string, error)
}

// skip is returned by a step's run (wrapped or not) when the step does not apply.
type skipError struct{ reason string }

func (s *skipError) Error() string { return s.reason }

func skip(format string, args ...any) error { return &skipError{reason: fmt.Sprintf(format, args...)} }

// StepError is a failed step. Usage marks errors of input or environment (bad flags, invalid
// spec, unreachable host, unknown host key): the join could not start, as opposed to a step
// that started and failed.
type StepError struct {
	Step  string
	Usage bool
	Err   error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// usageError marks err as a problem with the input or environment.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usage(err error) error { return usageError{err} }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// runSteps runs steps in order from the one named from ("" = the first), reporting each as
// it ends. A step whose done check says its result is in place is not run.
func runSteps(ctx context.Context, w io.Writer, steps []step, from string) ([]StepResult, error) {
	started := from == ""
	var results []StepResult
	for _, s := range steps {
		if !started && s.name == from {
			started = true
		}
		start := time.Now()
		res := StepResult{Name: s.name}
		var err error
		switch {
		case !started:
			res.Outcome, res.Detail = Skipped, "--from-step "+from
		default:
			var done bool
			if s.done != nil {
				done, res.Detail, err = s.done(ctx)
			}
			if err == nil && done {
				res.Outcome = AlreadyDone
				break
			}
			if err == nil {
				res.Detail, err = s.run(ctx)
			}
			var sk *skipError
			switch {
			case errors.As(err, &sk):
				res.Outcome, res.Detail, err = Skipped, sk.reason, nil
			case err != nil:
				res.Outcome, res.Detail = Failed, err.Error()
			default:
				res.Outcome = OK
			}
		}
		res.Elapsed = time.Since(start)
		results = append(results, res)
		report(w, res)
		if err != nil {
			var u usageError
			return results, &StepError{Step: s.name, Usage: errors.As(err, &u), Err: err}
		}
	}
	return results, nil
}

func report(w io.Writer, r StepResult) {
	detail := r.Detail
	if r.Outcome == Failed {
		detail = "see the error below"
	}
	if detail != "" {
		detail = ": " + detail
	}
	fmt.Fprintf(w, "[%s] %-7s %s%s\n", r.Outcome, r.Name, r.Elapsed.Round(10*time.Millisecond), detail)
}
