package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/nerv-platform/nerv/pkg/spec"
)

// nodeReady reports whether n's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readySummary describes the node's Ready condition: "Ready=False (KubeletNotReady: ...)".
func readySummary(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			s := "Ready=" + string(c.Status)
			if c.Reason != "" || c.Message != "" {
				s += " (" + strings.TrimSuffix(c.Reason+": "+c.Message, ": ") + ")"
			}
			return s
		}
	}
	return "registered, no Ready condition yet"
}

func (j *joiner) waitDone(ctx context.Context) (bool, string, error) {
	k, err := j.client()
	if err != nil {
		return false, "", nil
	}
	n, err := k.CoreV1().Nodes().Get(ctx, j.o.Node, metav1.GetOptions{})
	if err != nil || !nodeReady(n) {
		return false, "", nil
	}
	return true, j.o.Node + " is Ready", nil
}

// wait watches the Node (no polling) until it is Ready, printing a progress line with the
// elapsed time and the current condition whenever it changes and every Progress interval.
func (j *joiner) wait(ctx context.Context) (string, error) {
	o := j.o
	k, err := j.client()
	if err != nil {
		return "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	sel := fields.OneTermEqualSelector("metadata.name", o.Node).String()
	lw := &cache.ListWatch{
		ListFunc: func(opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = sel
			return k.CoreV1().Nodes().List(ctx, opts)
		},
		WatchFunc: func(opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = sel
			return k.CoreV1().Nodes().Watch(ctx, opts)
		},
	}
	var mu sync.Mutex
	last := "not registered yet"
	progress := func() {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(o.Out, "  waiting for %s: %s elapsed, %s\n", o.Node, time.Since(start).Round(time.Second), last)
	}
	set := func(now string) bool {
		mu.Lock()
		defer mu.Unlock()
		changed := now != last
		last = now
		return changed
	}
	progress()
	ticker := time.NewTicker(o.Progress)
	defer ticker.Stop()
	// The progress goroutine writes to o.Out: it must have ended before wait returns and the
	// caller writes there again.
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	defer func() { close(stopProgress); <-progressDone }()
	go func() {
		defer close(progressDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-stopProgress:
				return
			case <-ticker.C:
				progress()
			}
		}
	}()
	// UntilWithSync re-lists and re-watches across dropped watches; the condition runs on
	// every event, so progress follows the node as it changes.
	_, err = watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			set("deleted")
			return false, nil
		case watch.Added, watch.Modified:
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				return false, nil
			}
			if set(readySummary(n)) {
				progress()
			}
			return nodeReady(n), nil
		}
		return false, nil
	})
	ticker.Stop()
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) || ctx.Err() != nil {
			if parentErr := context.Cause(ctx); errors.Is(parentErr, context.Canceled) {
				return "", fmt.Errorf("interrupted while waiting for %s (last seen: %s)", o.Node, last)
			}
			return "", fmt.Errorf("%s not Ready after %s; last condition seen: %s. Check the machine's console or `journalctl -u k3s` on it, then re-run to resume", o.Node, o.Timeout, last)
		}
		return "", fmt.Errorf("watching Node %s: %w", o.Node, err)
	}
	return fmt.Sprintf("%s Ready after %s", o.Node, time.Since(start).Round(time.Second)), nil
}

// roleLabels are the labels NERV puts on a node: its role in NERV's terms, the
// node-role label kubectl shows for agents (k3s labels servers itself), and the spec's labels.
func roleLabels(n *spec.Node) map[string]string {
	l := map[string]string{"nerv.dev/role": n.Role}
	if n.Role == spec.RoleAgent {
		l["node-role.kubernetes.io/worker"] = "true"
	} else {
		l["node-role.kubernetes.io/control-plane"] = "true"
	}
	for k, v := range n.Labels {
		l[k] = v
	}
	return l
}

func missingLabels(have, want map[string]string) []string {
	var out []string
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

func (j *joiner) labelDone(ctx context.Context) (bool, string, error) {
	k, err := j.client()
	if err != nil {
		return false, "", nil
	}
	n, err := k.CoreV1().Nodes().Get(ctx, j.o.Node, metav1.GetOptions{})
	if err != nil {
		return false, "", nil
	}
	if len(missingLabels(n.Labels, roleLabels(j.node))) > 0 {
		return false, "", nil
	}
	return true, "labels in place", nil
}

// label applies the role labels with a merge patch (only the labels NERV owns change).
func (j *joiner) label(ctx context.Context) (string, error) {
	k, err := j.client()
	if err != nil {
		return "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	want := roleLabels(j.node)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": want}})
	if err != nil {
		return "", err
	}
	if _, err := k.CoreV1().Nodes().Patch(ctx, j.o.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-nerv"}); err != nil {
		return "", fmt.Errorf("labelling Node %s: %w", j.o.Node, err)
	}
	keys := make([]string, 0, len(want))
	for k, v := range want {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", "), nil
}

// summary prints where things stand and what to do next.
func (j *joiner) summary(ctx context.Context) (string, error) {
	o := j.o
	fmt.Fprintf(o.Out, "\n%s joined the cluster %q as %s (%s).\n", o.Node, j.cluster.Metadata.Name, j.node.Role, j.node.IP)
	fmt.Fprintf(o.Out, "  spec: %s; NixOS tree: %s\n", o.SpecPath, o.OutDir+"/nixos")
	if j.kubeContext != "" {
		fmt.Fprintf(o.Out, "  kubeconfig: context %q in %s (kubectl --context %s get nodes)\n", j.kubeContext, o.Kubeconfig, j.kubeContext)
	}
	fmt.Fprintf(o.Out, "  next: commit nerv.yaml and nixos/ (hardware-configuration.nix included); kubectl nerv doctor\n")
	return "joined", nil
}
