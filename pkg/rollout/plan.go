// Package rollout applies a rendered NixOS configuration to running nodes without taking the
// cluster down: it orders the nodes (agents before servers, servers one at a time so etcd
// keeps quorum) and walks each through named steps — preflight, cordon, drain, install,
// kernel check, switch or reboot, wait Ready, uncordon, check — emitting an event per step.
// A failure stops the roll-out and leaves the failed node cordoned, with the rollback command.
package rollout

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nerv-platform/nerv/pkg/spec"
)

// Target is one node of a roll-out.
type Target struct {
	Name string `json:"name"`
	Role string `json:"role"`
	IP   string `json:"ip"`
}

// Batch is a set of nodes taken out of service together.
type Batch struct {
	Role  string   `json:"role"`
	Nodes []Target `json:"nodes"`
}

// Plan is the ordered roll-out: batches run one after another, the nodes of a batch at once.
type Plan struct {
	Batches []Batch `json:"batches"`
	// Warnings are facts about the cluster the user should know before rolling (e.g. a
	// server count that cannot keep etcd quorum while one server restarts).
	Warnings []string `json:"warnings,omitempty"`
	// MaxUnavailable is the agent batch size the plan was made with.
	MaxUnavailable int `json:"maxUnavailable"`
}

// Nodes lists the plan's nodes in roll-out order.
func (p *Plan) Nodes() []Target {
	var out []Target
	for _, b := range p.Batches {
		out = append(out, b.Nodes...)
	}
	return out
}

// NewPlan orders the named nodes of c (all of them when names is empty) for a roll-out:
//
//   - agents first, in spec order, maxUnavailable at a time: losing agents costs capacity,
//     not the control plane, and an agent that fails stops the roll-out before any server
//     is touched;
//   - then servers, one per batch, so that at most one etcd member is ever down; the
//     bootstrap server (clusterInit, whose address the others joined through) goes last.
//
// maxUnavailable applies to agents only and must be at least 1. Unknown names are an error
// that lists the spec's nodes.
func NewPlan(c *spec.Cluster, names []string, maxUnavailable int) (*Plan, error) {
	if maxUnavailable < 1 {
		return nil, fmt.Errorf("max-unavailable must be at least 1, got %d", maxUnavailable)
	}
	selected := map[string]bool{}
	for _, n := range names {
		if _, ok := c.Node(n); !ok {
			return nil, fmt.Errorf("node %q is not in the cluster spec %s (nodes: %s)", n, c.Source(), strings.Join(nodeNames(c), ", "))
		}
		if selected[n] {
			return nil, fmt.Errorf("node %q named twice", n)
		}
		selected[n] = true
	}
	want := func(n *spec.Node) bool { return len(names) == 0 || selected[n.Name] }

	p := &Plan{MaxUnavailable: maxUnavailable}
	var batch []Target
	for _, n := range c.Agents() {
		if !want(n) {
			continue
		}
		batch = append(batch, Target{Name: n.Name, Role: n.Role, IP: n.IP})
		if len(batch) == maxUnavailable {
			p.Batches = append(p.Batches, Batch{Role: spec.RoleAgent, Nodes: batch})
			batch = nil
		}
	}
	if len(batch) > 0 {
		p.Batches = append(p.Batches, Batch{Role: spec.RoleAgent, Nodes: batch})
	}
	servers := c.Servers()
	first := c.FirstServer()
	ordered := slices.DeleteFunc(slices.Clone(servers), func(n *spec.Node) bool { return n == first })
	if first != nil {
		ordered = append(ordered, first)
	}
	rollsServer := false
	for _, n := range ordered {
		if want(n) {
			rollsServer = true
			p.Batches = append(p.Batches, Batch{Role: spec.RoleServer, Nodes: []Target{{Name: n.Name, Role: n.Role, IP: n.IP}}})
		}
	}
	if rollsServer {
		switch len(servers) {
		case 1:
			p.Warnings = append(p.Warnings, "the cluster has 1 server: the Kubernetes API is unavailable while it restarts (run 3 servers for roll-outs without control-plane downtime)")
		case 2:
			p.Warnings = append(p.Warnings, "the cluster has 2 servers: etcd needs both for quorum, so the Kubernetes API is unavailable while either restarts (run 3 servers)")
		}
	}
	return p, nil
}

func nodeNames(c *spec.Cluster) []string {
	out := make([]string, len(c.Spec.Nodes))
	for i, n := range c.Spec.Nodes {
		out[i] = n.Name
	}
	return out
}

// Render writes the plan for people: one line per batch, then the steps every node goes
// through.
func (p *Plan) Render(w io.Writer) error {
	var b strings.Builder
	if len(p.Batches) == 0 {
		b.WriteString("nothing to roll out: no node selected\n")
	}
	for i, batch := range p.Batches {
		names := make([]string, len(batch.Nodes))
		for j, n := range batch.Nodes {
			names[j] = fmt.Sprintf("%s (%s)", n.Name, n.IP)
		}
		fmt.Fprintf(&b, "%d. %-6s %s\n", i+1, batch.Role, strings.Join(names, ", "))
	}
	if len(p.Batches) > 0 {
		var order []string
		roles := map[string]bool{}
		for _, batch := range p.Batches {
			roles[batch.Role] = true
		}
		if roles[spec.RoleAgent] {
			order = append(order, fmt.Sprintf("agents %d at a time", p.MaxUnavailable))
		}
		if roles[spec.RoleServer] {
			order = append(order, "servers one at a time")
		}
		fmt.Fprintf(&b, "\n%s; each node: %s\n", strings.Join(order, ", then "), strings.Join(StepNames, " → "))
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
