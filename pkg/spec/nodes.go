package spec

import (
	"errors"
	"fmt"
	"sort"
)

// Errors returned by AddNode and RemoveNode; test with errors.Is.
var (
	ErrNodeExists   = errors.New("node already in the spec")
	ErrNodeNotFound = errors.New("node not in the spec")
)

// Node returns the node called name, as a pointer into the spec so callers can edit it.
func (c *Cluster) Node(name string) (*Node, bool) {
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == name {
			return &c.Spec.Nodes[i], true
		}
	}
	return nil, false
}

// Servers returns the server nodes in spec order.
func (c *Cluster) Servers() []*Node { return c.byRole(RoleServer) }

// Agents returns the agent nodes in spec order.
func (c *Cluster) Agents() []*Node { return c.byRole(RoleAgent) }

func (c *Cluster) byRole(role string) []*Node {
	var out []*Node
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Role == role {
			out = append(out, &c.Spec.Nodes[i])
		}
	}
	return out
}

// FirstServer is the server that bootstraps the cluster (clusterInit), or failing that the
// first server; every other node joins through its address. nil if there is no server.
func (c *Cluster) FirstServer() *Node {
	servers := c.Servers()
	for _, n := range servers {
		if n.ClusterInit {
			return n
		}
	}
	if len(servers) > 0 {
		return servers[0]
	}
	return nil
}

// ServerURL is the k3s API address nodes join through: https://<first server IP>:6443.
// Empty if there is no server.
func (c *Cluster) ServerURL() string {
	s := c.FirstServer()
	if s == nil {
		return ""
	}
	return "https://" + s.IP + ":6443"
}

// InterfaceOf is the NIC carrying the cluster network on n: its own override or the
// cluster-wide spec.network.interface.
func (c *Cluster) InterfaceOf(n *Node) string {
	if n.Interface != "" {
		return n.Interface
	}
	if c.Spec.Network.Interface != "" {
		return c.Spec.Network.Interface
	}
	return DefaultInterface
}

// AddNode appends n. It refuses a name or IP already in the spec (ErrNodeExists); the rest
// of the checks are Validate's, which callers run on the result.
func (c *Cluster) AddNode(n Node) error {
	for i := range c.Spec.Nodes {
		e := &c.Spec.Nodes[i]
		if e.Name == n.Name {
			return fmt.Errorf("adding node %s: %w as spec.nodes[%d]", n.Name, ErrNodeExists, i)
		}
		if n.IP != "" && e.IP == n.IP {
			return fmt.Errorf("adding node %s: %s is already the address of %s (spec.nodes[%d]): %w", n.Name, n.IP, e.Name, i, ErrNodeExists)
		}
	}
	c.Spec.Nodes = append(c.Spec.Nodes, n)
	return nil
}

// RemoveNode deletes the node called name, keeping the others' order.
func (c *Cluster) RemoveNode(name string) error {
	for i := range c.Spec.Nodes {
		if c.Spec.Nodes[i].Name == name {
			c.Spec.Nodes = append(c.Spec.Nodes[:i:i], c.Spec.Nodes[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("removing node %s: %w", name, ErrNodeNotFound)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DeepCopy returns an independent copy of c (for planning a change without touching c).
func (c *Cluster) DeepCopy() *Cluster {
	out := *c
	s := &out.Spec
	s.Network.DNS = append([]string(nil), c.Spec.Network.DNS...)
	s.Admin.SSHKeys = append([]string(nil), c.Spec.Admin.SSHKeys...)
	s.SOPS.AgeRecipients = append([]string(nil), c.Spec.SOPS.AgeRecipients...)
	s.K3s.ExtraFlags = append([]string(nil), c.Spec.K3s.ExtraFlags...)
	s.K3s.ServerFlags = append([]string(nil), c.Spec.K3s.ServerFlags...)
	s.Nodes = make([]Node, len(c.Spec.Nodes))
	for i, n := range c.Spec.Nodes {
		if n.Labels != nil {
			labels := make(map[string]string, len(n.Labels))
			for k, v := range n.Labels {
				labels[k] = v
			}
			n.Labels = labels
		}
		s.Nodes[i] = n
	}
	return &out
}

// StorageReplicas is how many copies of each Longhorn volume the site keeps: three, or one per
// node on a smaller site (Longhorn never puts two replicas of a volume on one node, so more
// replicas than nodes would leave every volume degraded).
func (c *Cluster) StorageReplicas() int {
	return min(3, max(1, len(c.Spec.Nodes)))
}
