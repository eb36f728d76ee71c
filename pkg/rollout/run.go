package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nerv-platform/nerv/pkg/drain"
)

// DefaultReadyTimeout bounds the wait for a node to come back after a switch or reboot.
const DefaultReadyTimeout = 10 * time.Minute

// Options wire a roll-out to the cluster and the machines.
type Options struct {
	Clientset kubernetes.Interface
	Machine   Machine
	Sink      Sink
	Drain     drain.Options
	// ReadyTimeout bounds the ready step; DefaultReadyTimeout when zero.
	ReadyTimeout time.Duration
	// Servers names every server of the cluster (not only those rolled), for the quorum check.
	Servers []string
	// ClusterCheck runs the doctor's kubernetes checks; it runs before each batch and in each
	// node's check step, and an error stops the roll-out. nil skips it.
	ClusterCheck func(ctx context.Context) error
	// ProgressInterval is how often a long step emits a "still in STEP" output event;
	// DefaultProgressInterval when zero.
	ProgressInterval time.Duration
}

// DefaultProgressInterval is how often a step still running says so.
const DefaultProgressInterval = 15 * time.Second

func (o Options) progressEvery() time.Duration {
	if o.ProgressInterval > 0 {
		return o.ProgressInterval
	}
	return DefaultProgressInterval
}

// StepError says which node failed at which step, and how to undo it.
type StepError struct {
	Node string
	Step string
	Err  error
	// Cordoned says the node was left cordoned.
	Cordoned bool
	// Hint is what to do next (the rollback command when the machine was changed).
	Hint string
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s: step %s failed: %v", e.Node, e.Step, e.Err)
	if e.Cordoned {
		fmt.Fprintf(&b, "\nthe node is left cordoned and the roll-out stopped")
	} else {
		fmt.Fprintf(&b, "\nthe roll-out stopped")
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "; %s", e.Hint)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// RollbackCommand is what a user runs to undo a node's change.
func RollbackCommand(node string) string { return "kubectl nerv node rollback " + node }

// hint says how to recover from a failure at step: nothing on the machine changed before
// install, so uncordoning is enough; from install on, the new generation is the boot default
// (and maybe active), so roll back first.
func hint(node, step string) (h, rollback string) {
	switch step {
	case StepPreflight:
		return "nothing was changed", ""
	case StepCordon, StepDrain:
		return "nothing was installed: once the cause is fixed, run `kubectl uncordon " + node + "` or apply again", ""
	case StepCheck:
		rb := RollbackCommand(node)
		return "the node runs the new generation and is schedulable; to roll back: `" + rb + "`", rb
	default:
		rb := RollbackCommand(node)
		return "to roll back: `" + rb + "`, then `kubectl uncordon " + node + "`", rb
	}
}

// Run rolls plan out batch by batch. Nodes in a batch run in parallel; a failure lets the
// other nodes of its batch finish, then stops before the next batch and returns the first
// failure as a *StepError.
func Run(ctx context.Context, plan *Plan, o Options) error {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.Sink == nil {
		o.Sink = SinkFunc(func(Event) {})
	}
	start := time.Now()
	r := &runner{o: o}
	err := r.run(ctx, plan)
	msg := fmt.Sprintf("roll-out of %d node(s) finished", len(plan.Nodes()))
	status := StatusSucceeded
	if err != nil {
		status = StatusFailed
		msg = "roll-out stopped: " + firstLine(err.Error())
	}
	o.Sink.Emit(Event{Time: time.Now(), Step: StepRollout, Status: status, ElapsedSeconds: time.Since(start).Seconds(), Message: msg})
	return err
}

type runner struct {
	o Options
}

func (r *runner) run(ctx context.Context, plan *Plan) error {
	for _, batch := range plan.Batches {
		if r.o.ClusterCheck != nil {
			if err := r.step(ctx, "", StepPreflight, func(ctx context.Context) (string, error) {
				return "doctor kubernetes checks pass", r.o.ClusterCheck(ctx)
			}); err != nil {
				return &StepError{Step: StepPreflight, Node: "(cluster)", Err: err, Hint: "nothing was changed"}
			}
		}
		errs := make([]error, len(batch.Nodes))
		var wg sync.WaitGroup
		for i, t := range batch.Nodes {
			wg.Go(func() { errs[i] = r.node(ctx, t) })
		}
		wg.Wait()
		// Check every node of the batch only once all are back, so one node's check does not
		// see its batch-mates still out.
		for i, t := range batch.Nodes {
			if errs[i] == nil {
				errs[i] = r.check(ctx, t)
			}
		}
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// step runs fn as one named step, emitting started and succeeded/failed events.
func (r *runner) step(ctx context.Context, node, step string, fn func(context.Context) (string, error)) error {
	start := time.Now()
	r.o.Sink.Emit(Event{Time: start, Node: node, Step: step, Status: StatusStarted})
	// A step can wait for minutes (a drain held by a budget, a reboot): say so periodically.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(r.o.progressEvery())
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				r.o.Sink.Emit(Event{Time: now, Node: node, Step: step, Status: StatusOutput,
					Message: fmt.Sprintf("still in %s after %s", step, now.Sub(start).Round(time.Second))})
			}
		}
	})
	msg, err := fn(ctx)
	close(stop)
	wg.Wait()
	ev := Event{Time: time.Now(), Node: node, Step: step, Status: StatusSucceeded, ElapsedSeconds: time.Since(start).Seconds(), Message: msg}
	if err != nil {
		ev.Status, ev.Message = StatusFailed, err.Error()
		if node != "" {
			_, ev.Rollback = hint(node, step)
		}
	}
	r.o.Sink.Emit(ev)
	return err
}

func (r *runner) fail(t Target, step string, err error) error {
	h, _ := hint(t.Name, step)
	return &StepError{Node: t.Name, Step: step, Err: err, Cordoned: step != StepPreflight && step != StepCheck, Hint: h}
}

func (r *runner) output(node, step string) func(string) {
	return func(line string) {
		r.o.Sink.Emit(Event{Time: time.Now(), Node: node, Step: step, Status: StatusOutput, Message: line})
	}
}

// node takes one node through preflight … uncordon.
func (r *runner) node(ctx context.Context, t Target) error {
	cs := r.o.Clientset
	if err := r.step(ctx, t.Name, StepPreflight, func(ctx context.Context) (string, error) { return r.preflight(ctx, t) }); err != nil {
		return r.fail(t, StepPreflight, err)
	}
	if err := r.step(ctx, t.Name, StepCordon, func(ctx context.Context) (string, error) {
		return "", drain.Cordon(ctx, cs, t.Name)
	}); err != nil {
		return r.fail(t, StepCordon, err)
	}
	if err := r.step(ctx, t.Name, StepDrain, func(ctx context.Context) (string, error) {
		opts := r.o.Drain
		opts.Log = func(f string, a ...any) { r.output(t.Name, StepDrain)(fmt.Sprintf(f, a...)) }
		rep, err := drain.Drain(ctx, cs, t.Name, opts)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d pod(s) evicted, %d left (DaemonSet, mirror or finished)", len(rep.Evicted), len(rep.Skipped)), nil
	}); err != nil {
		return r.fail(t, StepDrain, err)
	}
	if err := r.step(ctx, t.Name, StepInstall, func(ctx context.Context) (string, error) {
		return "new generation is the boot default", r.o.Machine.Install(ctx, t, r.output(t.Name, StepInstall))
	}); err != nil {
		return r.fail(t, StepInstall, err)
	}
	var reboot bool
	if err := r.step(ctx, t.Name, StepKernel, func(ctx context.Context) (string, error) {
		changed, detail, err := r.o.Machine.KernelChanged(ctx, t)
		reboot = changed
		if changed {
			detail = "reboot needed: " + detail
		}
		return detail, err
	}); err != nil {
		return r.fail(t, StepKernel, err)
	}

	// What proves the node came back: a new boot ID after a reboot, a lease renewed after the
	// switch otherwise. Both are read before the change.
	before, err := cs.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return r.fail(t, StepReady, fmt.Errorf("reading node %s: %w", t.Name, err))
	}
	bootID := before.Status.NodeInfo.BootID
	var lease string
	if reboot {
		if bootID == "" {
			return r.fail(t, StepReboot, fmt.Errorf("node %s reports no boot ID, so its return from a reboot cannot be told apart; reboot it by hand", t.Name))
		}
		if err := r.step(ctx, t.Name, StepReboot, func(ctx context.Context) (string, error) {
			return "reboot requested (boot ID " + bootID + ")", r.o.Machine.Reboot(ctx, t)
		}); err != nil {
			return r.fail(t, StepReboot, err)
		}
	} else {
		if err := r.step(ctx, t.Name, StepSwitch, func(ctx context.Context) (string, error) {
			var err error
			if err = r.o.Machine.Switch(ctx, t, r.output(t.Name, StepSwitch)); err != nil {
				return "", err
			}
			lease, err = leaseRenewal(ctx, cs, t.Name)
			return "new generation active", err
		}); err != nil {
			return r.fail(t, StepSwitch, err)
		}
	}
	if err := r.step(ctx, t.Name, StepReady, func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, r.o.ReadyTimeout)
		defer cancel()
		if reboot {
			_, err := waitNode(ctx, cs, t.Name, func(n *corev1.Node) bool {
				return n.Status.NodeInfo.BootID != bootID && Ready(n)
			})
			if err != nil {
				return "", fmt.Errorf("node %s not back Ready with a new boot ID within %s: %w", t.Name, r.o.ReadyTimeout, err)
			}
			return "rebooted and Ready", nil
		}
		if err := waitLeaseRenewed(ctx, cs, t.Name, lease); err != nil {
			return "", fmt.Errorf("%w (within %s)", err, r.o.ReadyTimeout)
		}
		if _, err := waitNode(ctx, cs, t.Name, Ready); err != nil {
			return "", fmt.Errorf("node %s not Ready within %s: %w", t.Name, r.o.ReadyTimeout, err)
		}
		return "kubelet heartbeat after the switch, Ready", nil
	}); err != nil {
		return r.fail(t, StepReady, err)
	}
	if err := r.step(ctx, t.Name, StepUncordon, func(ctx context.Context) (string, error) {
		return "", drain.Uncordon(ctx, cs, t.Name)
	}); err != nil {
		return r.fail(t, StepUncordon, err)
	}
	return nil
}

// preflight decides whether the cluster can lose t now.
func (r *runner) preflight(ctx context.Context, t Target) (string, error) {
	cs := r.o.Clientset
	n, err := cs.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("node %s is in the spec but not in the cluster: join it first (kubectl nerv join %s)", t.Name, t.Name)
	}
	if err != nil {
		return "", fmt.Errorf("reading node %s: %w", t.Name, err)
	}
	if !Ready(n) {
		return "", fmt.Errorf("node %s is not Ready: fix it first, or roll it alone once it is", t.Name)
	}
	var notes []string
	if t.Role == "server" {
		for _, s := range r.o.Servers {
			if s == t.Name {
				continue
			}
			other, err := cs.CoreV1().Nodes().Get(ctx, s, metav1.GetOptions{})
			if err != nil {
				return "", fmt.Errorf("server %s (needed for etcd quorum while %s restarts): %w", s, t.Name, err)
			}
			if !Ready(other) || other.Spec.Unschedulable {
				return "", fmt.Errorf("server %s is not Ready and schedulable: taking %s down too could lose etcd quorum", s, t.Name)
			}
		}
		notes = append(notes, fmt.Sprintf("%d other server(s) Ready", len(r.o.Servers)-1))
	}
	blockers, err := drain.Check(ctx, cs, t.Name, r.o.Drain.Force)
	if err != nil {
		return "", err
	}
	if len(blockers) > 0 {
		lines := make([]string, len(blockers))
		for i, b := range blockers {
			lines[i] = b.String()
		}
		return "", fmt.Errorf("the drain would be refused:\n  %s", strings.Join(lines, "\n  "))
	}
	notes = append(notes, "evictions allowed")
	return strings.Join(notes, ", "), nil
}

// check runs after the node is back: it must be Ready and schedulable, and the cluster pass
// the doctor's kubernetes checks.
func (r *runner) check(ctx context.Context, t Target) error {
	err := r.step(ctx, t.Name, StepCheck, func(ctx context.Context) (string, error) {
		n, err := r.o.Clientset.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("reading node %s: %w", t.Name, err)
		}
		if !Ready(n) || n.Spec.Unschedulable {
			return "", fmt.Errorf("node %s is not Ready and schedulable after the change", t.Name)
		}
		if r.o.ClusterCheck != nil {
			if err := r.o.ClusterCheck(ctx); err != nil {
				return "", err
			}
			return "Ready, schedulable, doctor kubernetes checks pass", nil
		}
		return "Ready, schedulable", nil
	})
	if err != nil {
		return r.fail(t, StepCheck, err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
