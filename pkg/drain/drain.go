package drain

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Defaults for Options left zero.
const (
	DefaultTimeout       = 5 * time.Minute
	DefaultRetryInterval = 5 * time.Second // how often a refused eviction is tried again (kubectl's figure)
	DefaultPollInterval  = time.Second     // how often an evicted pod is checked for being gone
)

// Options tune a drain.
type Options struct {
	// Timeout bounds the whole drain, evictions and waiting included; 0 means DefaultTimeout.
	Timeout time.Duration
	// GracePeriod overrides each pod's terminationGracePeriodSeconds when >= 0; a negative
	// value keeps the pod's own. Zero is "now", as with kubectl.
	GracePeriod time.Duration
	// RetryInterval is the pause between evictions a PodDisruptionBudget refused.
	RetryInterval time.Duration
	// PollInterval is the pause between checks that an evicted pod is gone.
	PollInterval time.Duration
	// Force evicts pods that no controller would recreate (they are gone for good).
	Force bool
	// Log, when set, receives one line per notable thing (a refusal, a pod gone).
	Log func(format string, args ...any)
}

// KeepGracePeriod is the GracePeriod that keeps every pod's own.
const KeepGracePeriod = time.Duration(-1)

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

// Blocker is a pod the drain could not move, and why.
type Blocker struct {
	Pod PodRef `json:"pod"`
	// PDB is the namespace/name of the PodDisruptionBudget refusing the eviction, if any.
	PDB    string `json:"pdb,omitempty"`
	Reason string `json:"reason"`
}

func (b Blocker) String() string {
	if b.PDB != "" {
		return fmt.Sprintf("pod %s: PodDisruptionBudget %s: %s", b.Pod, b.PDB, b.Reason)
	}
	return fmt.Sprintf("pod %s: %s", b.Pod, b.Reason)
}

// Report is what a drain did.
type Report struct {
	Node    string       `json:"node"`
	Evicted []PodRef     `json:"evicted"`
	Skipped []SkippedPod `json:"skipped"`
	Blocked []Blocker    `json:"blocked,omitempty"`
}

// BlockedError is returned when pods were still on the node when the drain gave up.
type BlockedError struct {
	Node     string
	Timeout  time.Duration
	Blockers []Blocker
}

func (e *BlockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "draining node %s: %d pod(s) still there after %s:", e.Node, len(e.Blockers), e.Timeout)
	for _, bl := range e.Blockers {
		b.WriteString("\n  ")
		b.WriteString(bl.String())
	}
	return b.String()
}

// UnmanagedError is returned before anything is evicted when pods without a controller are
// on the node and Options.Force is not set.
type UnmanagedError struct {
	Node string
	Pods []PodRef
}

func (e *UnmanagedError) Error() string {
	names := make([]string, len(e.Pods))
	for i, p := range e.Pods {
		names[i] = p.String()
	}
	return fmt.Sprintf("draining node %s: pod(s) %s have no controller and would be deleted for good: move them off the node or drain with force", e.Node, strings.Join(names, ", "))
}

// Drain cordons node (so nothing new lands on it), evicts every pod Classify selects through
// the Eviction API, retrying evictions a PodDisruptionBudget refuses, and waits until those
// pods are gone. DaemonSet pods, mirror pods and finished pods stay. On timeout it returns the
// report and a *BlockedError naming each pod left and what holds it.
func Drain(ctx context.Context, cs kubernetes.Interface, node string, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	rep := &Report{Node: node, Evicted: []PodRef{}, Skipped: []SkippedPod{}}
	if err := Cordon(ctx, cs, node); err != nil {
		return rep, err
	}
	pods, err := PodsOnNode(ctx, cs, node)
	if err != nil {
		return rep, err
	}
	c := Classify(pods)
	rep.Skipped = append(rep.Skipped, c.Skip...)
	if len(c.Unmanaged) > 0 && !opts.Force {
		return rep, &UnmanagedError{Node: node, Pods: c.Unmanaged}
	}

	dctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var (
		mu       sync.Mutex
		blockers []Blocker
		errs     []error
		wg       sync.WaitGroup
	)
	for i := range c.Evict {
		pod := &c.Evict[i]
		wg.Go(func() {
			bl, err := evictAndWait(dctx, cs, pod, opts)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case bl != nil:
				blockers = append(blockers, *bl)
			default:
				rep.Evicted = append(rep.Evicted, refOf(pod))
			}
		})
	}
	wg.Wait()
	sortRefs(rep.Evicted)
	sort.Slice(blockers, func(i, j int) bool { return blockers[i].Pod.String() < blockers[j].Pod.String() })
	rep.Blocked = blockers
	if len(errs) > 0 {
		return rep, fmt.Errorf("draining node %s: %w", node, errors.Join(errs...))
	}
	if ctx.Err() != nil {
		return rep, fmt.Errorf("draining node %s: %w", node, ctx.Err())
	}
	if len(blockers) > 0 {
		return rep, &BlockedError{Node: node, Timeout: opts.Timeout, Blockers: blockers}
	}
	return rep, nil
}

// evictAndWait evicts one pod, retrying while a budget refuses, then waits until it is gone.
// It returns a Blocker when the drain's deadline passes first, an error for anything the
// API refuses outright.
func evictAndWait(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, opts Options) (*Blocker, error) {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
	// The UID precondition stops us evicting a same-named successor (a StatefulSet pod
	// recreated elsewhere) when a retry comes late.
	ev.DeleteOptions = &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	if opts.GracePeriod >= 0 {
		s := int64(opts.GracePeriod / time.Second)
		ev.DeleteOptions.GracePeriodSeconds = &s
	}
	var last *Blocker
	for {
		err := cs.PolicyV1().Evictions(pod.Namespace).Evict(ctx, ev)
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Conflict: the UID precondition failed, so our pod is already gone.
			break
		}
		if ctx.Err() != nil {
			return blockerOr(last, pod, "eviction not accepted before the drain timed out"), nil
		}
		if !apierrors.IsTooManyRequests(err) {
			return nil, fmt.Errorf("evicting pod %s: %w", refOf(pod), err)
		}
		bl := refusal(ctx, cs, pod, err)
		if bl.PDB == "" && last != nil && last.PDB != "" {
			// The budget lookup failed this time (near the drain's deadline the client's
			// rate limiter refuses to wait): keep what the previous refusal found rather
			// than report the bare apiserver message.
			bl = *last
		}
		if last == nil || last.Reason != bl.Reason {
			opts.Log("pod %s: eviction refused, retrying every %s: %s", refOf(pod), opts.RetryInterval, bl)
		}
		last = &bl
		select {
		case <-ctx.Done():
			return last, nil
		case <-time.After(opts.RetryInterval):
		}
	}
	gone, err := waitGone(ctx, cs, pod, opts.PollInterval)
	if err != nil {
		return nil, err
	}
	if !gone {
		return &Blocker{Pod: refOf(pod), Reason: "evicted but still terminating when the drain timed out"}, nil
	}
	opts.Log("pod %s evicted", refOf(pod))
	return nil, nil
}

func blockerOr(b *Blocker, pod *corev1.Pod, reason string) *Blocker {
	if b != nil {
		return b
	}
	return &Blocker{Pod: refOf(pod), Reason: reason}
}

// waitGone polls until the pod (this UID) no longer exists; false when ctx ends first.
func waitGone(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, every time.Duration) (bool, error) {
	for {
		cur, err := cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err == nil && cur.UID != pod.UID:
			return true, nil
		case err != nil && ctx.Err() == nil:
			return false, fmt.Errorf("waiting for pod %s to go: %w", refOf(pod), err)
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(every):
		}
	}
}

func sortRefs(r []PodRef) {
	sort.Slice(r, func(i, j int) bool { return r[i].String() < r[j].String() })
}
