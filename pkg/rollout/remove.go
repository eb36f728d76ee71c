package rollout

import (
	"fmt"

	"github.com/nerv-platform/nerv/pkg/spec"
)

// Removal is what removing a node from the cluster implies.
type Removal struct {
	Node spec.Node
	// NewClusterInit names the server that takes over clusterInit when the bootstrap server
	// is removed ("" otherwise): the others join through it after the next apply.
	NewClusterInit string
	Warnings       []string
}

// PlanRemove decides whether node may leave the cluster, given which servers are Ready now
// (by name). The rule, for embedded etcd where every server is a member:
//
//   - an agent may always leave;
//   - the last server may not (nothing would be left to run the cluster);
//   - a server may leave only if, among the servers that remain, at least a quorum of the
//     new member count (floor((n-1)/2)+1) is Ready, so that etcd can commit the member
//     removal and keep serving afterwards;
//   - leaving an even number of servers (2, 4…) is allowed with a warning: it tolerates no
//     more failures than one fewer.
//
// It returns the change to make to the spec (RemoveNode, and clusterInit moved if needed)
// without applying it.
func PlanRemove(c *spec.Cluster, node string, ready map[string]bool) (*Removal, error) {
	n, ok := c.Node(node)
	if !ok {
		return nil, fmt.Errorf("node %q is not in the cluster spec %s (nodes: %s)", node, c.Source(), joinNames(nodeNames(c)))
	}
	r := &Removal{Node: *n}
	if !n.IsServer() {
		return r, nil
	}
	servers := c.Servers()
	if len(servers) == 1 {
		return nil, fmt.Errorf("refusing to remove %s: it is the last server; a cluster needs at least one (join another server first)", node)
	}
	remaining := len(servers) - 1
	quorum := remaining/2 + 1
	readyOthers := 0
	var notReady []string
	for _, s := range servers {
		if s.Name == node {
			continue
		}
		if ready[s.Name] {
			readyOthers++
		} else {
			notReady = append(notReady, s.Name)
		}
	}
	if readyOthers < quorum {
		return nil, fmt.Errorf("refusing to remove server %s: %d server(s) would remain and etcd needs %d of them Ready for quorum, but only %d are (not Ready: %s)",
			node, remaining, quorum, readyOthers, joinNames(notReady))
	}
	if remaining%2 == 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d servers remain: an even number of etcd members tolerates no more failures than %d; join or remove a server to get back to an odd count", remaining, remaining-1))
	}
	if n.ClusterInit {
		for _, s := range servers {
			if s.Name != node {
				r.NewClusterInit = s.Name
				break
			}
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s bootstrapped the cluster; clusterInit moves to %s, which the other nodes join through from now on: run `kubectl nerv node apply --all` afterwards", node, r.NewClusterInit))
	}
	return r, nil
}

// Apply makes the removal in c: the node leaves the spec and clusterInit moves if needed.
func (r *Removal) Apply(c *spec.Cluster) error {
	if err := c.RemoveNode(r.Node.Name); err != nil {
		return err
	}
	if r.NewClusterInit != "" {
		n, ok := c.Node(r.NewClusterInit)
		if !ok {
			return fmt.Errorf("server %s vanished from the spec", r.NewClusterInit)
		}
		n.ClusterInit = true
	}
	return nil
}

func joinNames(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	out := s[0]
	for _, x := range s[1:] {
		out += ", " + x
	}
	return out
}
