package rollout

import (
	"context"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nerv-platform/nerv/pkg/drain"
)

// NodeState is what a dry run reads about a node without changing anything.
type NodeState struct {
	Node      string `json:"node"`
	InCluster bool   `json:"inCluster"`
	Ready     bool   `json:"ready"`
	Cordoned  bool   `json:"cordoned"`
	// Evict counts the pods a drain would evict; Blockers are what would refuse (PDBs asked
	// through dry-run evictions, pods without a controller).
	Evict    int             `json:"evict"`
	Blockers []drain.Blocker `json:"blockers,omitempty"`
}

// Inspect reads the state of every node of plan, read-only.
func Inspect(ctx context.Context, cs kubernetes.Interface, plan *Plan, force bool) ([]NodeState, error) {
	var out []NodeState
	for _, t := range plan.Nodes() {
		st := NodeState{Node: t.Name}
		n, err := cs.CoreV1().Nodes().Get(ctx, t.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out = append(out, st)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading node %s: %w", t.Name, err)
		}
		st.InCluster, st.Ready, st.Cordoned = true, Ready(n), n.Spec.Unschedulable
		pods, err := drain.PodsOnNode(ctx, cs, t.Name)
		if err != nil {
			return nil, err
		}
		st.Evict = len(drain.Classify(pods).Evict)
		if st.Blockers, err = drain.Check(ctx, cs, t.Name, force); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// RenderStates writes one line per node for people.
func RenderStates(w io.Writer, states []NodeState) error {
	var b strings.Builder
	for _, s := range states {
		var state string
		switch {
		case !s.InCluster:
			state = "not in the cluster (join it first)"
		default:
			parts := []string{map[bool]string{true: "Ready", false: "NotReady"}[s.Ready]}
			if s.Cordoned {
				parts = append(parts, "cordoned")
			}
			parts = append(parts, fmt.Sprintf("%d pod(s) to evict", s.Evict))
			if len(s.Blockers) == 0 {
				parts = append(parts, "no eviction blocked")
			}
			state = strings.Join(parts, ", ")
		}
		fmt.Fprintf(&b, "%-12s %s\n", s.Node, state)
		for _, bl := range s.Blockers {
			fmt.Fprintf(&b, "%-12s   blocked: %s\n", "", bl)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
