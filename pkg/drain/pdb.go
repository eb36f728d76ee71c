package drain

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// refusal explains a 429 from the Eviction API: which budget refused and its current state.
// The apiserver's own cause text is kept, since it says what the budget needs.
func refusal(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, err error) Blocker {
	b := Blocker{Pod: refOf(pod), Reason: causeMessage(err)}
	pdbs, lerr := matchingPDBs(ctx, cs, pod)
	if lerr != nil || len(pdbs) == 0 {
		return b
	}
	// The apiserver refuses an eviction covered by more than one budget with a 500, so a 429
	// means exactly one matched.
	pdb := pdbs[0]
	b.PDB = pdb.Namespace + "/" + pdb.Name
	b.Reason = fmt.Sprintf("allows %d disruption(s) now (%d of %d desired pods healthy): %s",
		pdb.Status.DisruptionsAllowed, pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy, b.Reason)
	return b
}

func causeMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		if st.Details != nil {
			var msgs []string
			for _, c := range st.Details.Causes {
				if c.Message != "" {
					msgs = append(msgs, c.Message)
				}
			}
			if len(msgs) > 0 {
				return strings.Join(msgs, "; ")
			}
		}
		if st.Message != "" {
			return st.Message
		}
	}
	return err.Error()
}

// matchingPDBs returns the budgets in the pod's namespace whose selector matches it.
func matchingPDBs(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) ([]policyv1.PodDisruptionBudget, error) {
	list, err := cs.PolicyV1().PodDisruptionBudgets(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []policyv1.PodDisruptionBudget
	for _, pdb := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		// An empty selector matches every pod in policy/v1; a nil one matches none.
		if err != nil || pdb.Spec.Selector == nil {
			continue
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pdb)
		}
	}
	return out, nil
}

// Check asks, without evicting anything, whether a drain of node could start now: every pod
// a drain would evict is submitted as a dry-run eviction, so the apiserver applies the
// PodDisruptionBudgets exactly as it will for the real one. Pods without a controller are
// blockers unless force. Budgets that allow one disruption but cover two pods on the node
// pass here: the real drain then waits for the first pod's replacement to become healthy.
func Check(ctx context.Context, cs kubernetes.Interface, node string, force bool) ([]Blocker, error) {
	pods, err := PodsOnNode(ctx, cs, node)
	if err != nil {
		return nil, err
	}
	c := Classify(pods)
	var blockers []Blocker
	unmanaged := map[PodRef]bool{}
	if !force {
		for _, p := range c.Unmanaged {
			unmanaged[p] = true
			blockers = append(blockers, Blocker{Pod: p, Reason: "no controller: eviction would delete it for good (drain with force to evict it anyway)"})
		}
	}
	for i := range c.Evict {
		pod := &c.Evict[i]
		if unmanaged[refOf(pod)] {
			continue
		}
		ev := &policyv1.Eviction{
			ObjectMeta:    metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
			DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}},
		}
		err := cs.PolicyV1().Evictions(pod.Namespace).Evict(ctx, ev)
		switch {
		case err == nil || apierrors.IsNotFound(err):
		case apierrors.IsTooManyRequests(err):
			blockers = append(blockers, refusal(ctx, cs, pod, err))
		default:
			return blockers, fmt.Errorf("checking eviction of pod %s: %w", refOf(pod), err)
		}
	}
	return blockers, nil
}
