package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nerv-platform/nerv/pkg/policy"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// DefaultAgeKeySecret is where manifests/argocd-sops-plugin keeps the plugin's age identity,
// used when the sidecar's own Secret volume does not say otherwise.
var DefaultAgeKeySecret = SecretKeyRef{Namespace: "argocd", Name: "argocd-sops-age-key", Key: "keys.txt"}

// PolicyConfigMap is where manifests/webhook keeps nerv-webhook's policy config; the audit
// judges by it, as the webhook does.
var PolicyConfigMap = SecretKeyRef{Namespace: "nerv-system", Name: "nerv-webhook-policy", Key: "policy.yaml"}

// DefaultRetryInterval is the pause between --wait rounds.
const DefaultRetryInterval = 2 * time.Second

// Options configures a doctor run.
type Options struct {
	// Config reaches the cluster (required). Bound the whole run with ctx's deadline.
	Config *rest.Config
	// Spec, when set, enables the checks that compare the cluster with nerv.yaml.
	Spec *spec.Cluster
	// Categories limits the run to these categories (see Categories); empty means all.
	Categories []string
	// Wait retries failing checks until it has elapsed (bounded by ctx) and reaching the
	// apiserver too; zero runs every check once.
	Wait time.Duration
	// RetryInterval is the pause between --wait rounds; DefaultRetryInterval when zero.
	RetryInterval time.Duration
	// Progress, if set, receives a line of progress per second on slow runs and per --wait
	// round (the CLI passes stderr).
	Progress io.Writer
	// PolicyConfig is the policy the audit judges workloads by. When nil, the cluster's
	// (ConfigMap PolicyConfigMap, read by name) is used, or policy.DefaultConfig() without one.
	PolicyConfig *policy.Config
	// AgeKeySecret is the sops plugin's age key. When zero, the Secret the sidecar mounts is
	// used, or DefaultAgeKeySecret.
	AgeKeySecret SecretKeyRef
	// Checks replaces the built-in checks (AllChecks); for tests and embedders.
	Checks []Check
}

// UnreachableError means the apiserver could not be reached or would not talk to us: the
// run could not start (the CLI exits 2).
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Kubernetes API at %s: %v (check the kubeconfig, --context and --server, and that the cluster is up)", e.Server, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// ValidateCategories rejects unknown category names, listing the valid ones.
func ValidateCategories(names []string) error {
	for _, n := range names {
		if !slices.Contains(Categories, n) {
			return fmt.Errorf("unknown category %q: use one of %s", n, strings.Join(Categories, ", "))
		}
	}
	return nil
}

// Run runs the selected checks against the cluster and returns the report. The error is
// for a run that could not happen: invalid options, or an unreachable apiserver
// (*UnreachableError). Failing checks are in the report, not in the error.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Config == nil {
		return nil, errors.New("doctor: no rest.Config")
	}
	if err := ValidateCategories(o.Categories); err != nil {
		return nil, err
	}
	checks := o.Checks
	if checks == nil {
		checks = AllChecks()
	}
	checks = selectChecks(checks, o.Categories)
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	var engine *policy.Engine
	if o.PolicyConfig != nil {
		var err error
		if engine, err = policy.NewEngine(o.PolicyConfig); err != nil {
			return nil, fmt.Errorf("doctor: %w", err)
		}
	}
	client, dyn, err := clients(o.Config)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	waitUntil := start.Add(o.Wait)
	if d, ok := ctx.Deadline(); ok && d.Before(waitUntil) {
		waitUntil = d
	}
	newSnap := func() *Snapshot {
		s := newSnapshot(ctx, client, dyn)
		s.Spec, s.policyOverride, s.AgeKeySecret = o.Spec, engine, o.AgeKeySecret
		return s
	}

	rep := &Report{
		APIVersion: ReportAPIVersion, Kind: ReportKind,
		Cluster:   ClusterInfo{Server: o.Config.Host},
		StartedAt: start.UTC().Truncate(time.Millisecond),
	}
	snap, v, err := probe(ctx, newSnap, o, waitUntil)
	if err != nil {
		return nil, &UnreachableError{Server: o.Config.Host, Err: err}
	}
	rep.Cluster.Version = v.GitVersion
	for _, c := range checks {
		if !slices.Contains(rep.Categories, c.Category) {
			rep.Categories = append(rep.Categories, c.Category)
		}
	}

	results := runChecks(ctx, snap, checks, nil, o.Progress)
	for round := 2; ; round++ {
		failing := failingIndexes(results)
		if len(failing) == 0 || time.Now().Add(o.RetryInterval).After(waitUntil) {
			break
		}
		if o.Progress != nil {
			names := make([]string, len(failing))
			for i, idx := range failing {
				names[i] = checks[idx].ID
			}
			fmt.Fprintf(o.Progress, "doctor: %d failing (%s); retrying in %s, %s left to wait\n",
				len(failing), strings.Join(names, ", "), o.RetryInterval, time.Until(waitUntil).Round(time.Second))
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.RetryInterval):
		}
		if ctx.Err() != nil {
			break
		}
		again := runChecks(ctx, newSnap(), checks, failing, o.Progress)
		for _, idx := range failing {
			again[idx].Attempts += results[idx].Attempts
			results[idx] = again[idx]
		}
	}
	rep.Results = results
	rep.summarise()
	rep.DurationMillis = time.Since(start).Milliseconds()
	return rep, nil
}

// clients builds the clients a run uses: protobuf for built-in kinds (large lists decode
// several times faster than JSON), and a client-side rate limit that does not throttle
// the few dozen concurrent lists of a run.
func clients(cfg *rest.Config) (kubernetes.Interface, dynamic.Interface, error) {
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS, c.Burst = 100, 200
	}
	pb := rest.CopyConfig(c)
	pb.ContentType = "application/vnd.kubernetes.protobuf"
	pb.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client, err := kubernetes.NewForConfig(pb)
	if err != nil {
		return nil, nil, fmt.Errorf("doctor: kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, nil, fmt.Errorf("doctor: dynamic client: %w", err)
	}
	return client, dyn, nil
}

// probe reads the apiserver version, retrying until waitUntil: a run that cannot reach the
// apiserver has nothing to report.
// Each attempt takes a new snapshot, since a snapshot keeps its errors.
func probe(ctx context.Context, newSnap func() *Snapshot, o Options, waitUntil time.Time) (*Snapshot, *version.Info, error) {
	for {
		s := newSnap()
		v, err := s.Version(ctx)
		if err == nil || apierrors.IsForbidden(err) {
			// A user who may not read /version still reached the apiserver.
			if v == nil {
				v = &version.Info{}
			}
			return s, v, nil
		}
		if ctx.Err() != nil || time.Now().Add(o.RetryInterval).After(waitUntil) {
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
			}
			return nil, nil, err
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "doctor: waiting for the apiserver at %s: %v\n", o.Config.Host, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.RetryInterval):
		}
	}
}

// selectChecks keeps the checks of the given categories (all when empty), ordered by
// category, then as declared.
func selectChecks(all []Check, categories []string) []Check {
	var out []Check
	order := Categories
	for _, c := range all {
		if !slices.Contains(order, c.Category) {
			order = append(slices.Clone(order), c.Category)
		}
	}
	for _, cat := range order {
		if len(categories) > 0 && !slices.Contains(categories, cat) {
			continue
		}
		for _, c := range all {
			if c.Category == cat {
				out = append(out, c)
			}
		}
	}
	return out
}

// runChecks runs the checks at the given indexes (all when nil) concurrently on snap and
// returns a result slice indexed like checks (entries not run are zero).
func runChecks(ctx context.Context, snap *Snapshot, checks []Check, only []int, progress io.Writer) []Result {
	if only == nil {
		only = make([]int, len(checks))
		for i := range checks {
			only[i] = i
		}
	}
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	var mu sync.Mutex
	pending := map[string]bool{}
	for _, idx := range only {
		// Under mu: checks started earlier in this loop delete from pending as they finish.
		mu.Lock()
		pending[checks[idx].ID] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[idx] = runOne(ctx, snap, &checks[idx])
			mu.Lock()
			delete(pending, checks[idx].ID)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if progress == nil {
		<-done
		return results
	}
	// Progress only on runs slower than a second.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return results
		case <-tick.C:
			mu.Lock()
			names := sortedKeys(pending)
			mu.Unlock()
			fmt.Fprintf(progress, "doctor: %d/%d checks done, waiting for %s\n", len(only)-len(names), len(only), strings.Join(names, ", "))
		}
	}
}

// runOne runs one check under its timeout; a panic or a timeout is a failure, never a crash.
func runOne(ctx context.Context, snap *Snapshot, c *Check) Result {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	ch := make(chan Outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- Failf(nil, "check panicked: %v", r)
			}
		}()
		ch <- c.Run(cctx, snap)
	}()
	var out Outcome
	select {
	case out = <-ch:
	case <-cctx.Done():
		out = Failf(nil, "did not finish within %s: %v", timeout, cctx.Err())
	}
	res := Result{
		ID: c.ID, Category: c.Category, Name: c.Name, Severity: c.Severity,
		Status: out.Status, Message: out.Message, Details: out.Details,
		DurationMillis: time.Since(start).Milliseconds(), Attempts: 1,
	}
	if res.Status == StatusFail && c.Severity == SeverityWarning {
		res.Status = StatusWarn
	}
	if res.Status != StatusPass && res.Status != StatusSkip {
		res.Hint, res.Docs = c.Hint, c.Docs()
	}
	return res
}

// failingIndexes are the checks a --wait round retries: error-severity failures only, since
// a warning (an even number of servers, say) would rarely clear by waiting.
func failingIndexes(results []Result) []int {
	var out []int
	for i, r := range results {
		if r.Status == StatusFail {
			out = append(out, i)
		}
	}
	return out
}
