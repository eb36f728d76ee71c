package doctor

import "time"

// Identity of the report in its JSON and YAML forms (docs/doctor.md documents the schema).
const (
	ReportAPIVersion = "nerv.dev/v1alpha1"
	ReportKind       = "DoctorReport"
)

// Result is one check's outcome in a report.
type Result struct {
	ID       string   `json:"id"`
	Category string   `json:"category"`
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	Status   Status   `json:"status"`
	Message  string   `json:"message"`
	Details  []string `json:"details,omitempty"`
	// Hint and Docs are set when the check did not pass.
	Hint string `json:"hint,omitempty"`
	Docs string `json:"docs,omitempty"`
	// DurationMillis is how long the check took in its last attempt.
	DurationMillis int64 `json:"durationMillis"`
	// Attempts is how often the check ran (more than 1 only with --wait).
	Attempts int `json:"attempts"`
}

// ClusterInfo says which cluster was checked.
type ClusterInfo struct {
	Server  string `json:"server"`
	Version string `json:"version,omitempty"`
}

// Summary counts results by status.
type Summary struct {
	Passed   int `json:"passed"`
	Warnings int `json:"warnings"`
	Failed   int `json:"failed"`
	Skipped  int `json:"skipped"`
}

// Report is the outcome of a doctor run. Its JSON form is the stable, versioned schema
// scripts consume.
type Report struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Cluster    ClusterInfo `json:"cluster"`
	// Categories are the categories that were run, in report order.
	Categories []string  `json:"categories"`
	StartedAt  time.Time `json:"startedAt"`
	// DurationMillis is the wall time of the whole run.
	DurationMillis int64    `json:"durationMillis"`
	Summary        Summary  `json:"summary"`
	Results        []Result `json:"results"`
}

// Failed reports whether any error-severity check failed (the run's exit code is 1).
func (r *Report) Failed() bool { return r.Summary.Failed > 0 }

// Failures returns the results with status fail.
func (r *Report) Failures() []Result { return r.withStatus(StatusFail) }

// Warnings returns the results with status warn.
func (r *Report) Warnings() []Result { return r.withStatus(StatusWarn) }

// Result returns the result of the check with this ID.
func (r *Report) Result(id string) (Result, bool) {
	for _, res := range r.Results {
		if res.ID == id {
			return res, true
		}
	}
	return Result{}, false
}

func (r *Report) withStatus(s Status) []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == s {
			out = append(out, res)
		}
	}
	return out
}

func (r *Report) summarise() {
	r.Summary = Summary{}
	for _, res := range r.Results {
		switch res.Status {
		case StatusPass:
			r.Summary.Passed++
		case StatusWarn:
			r.Summary.Warnings++
		case StatusFail:
			r.Summary.Failed++
		case StatusSkip:
			r.Summary.Skipped++
		}
	}
}
