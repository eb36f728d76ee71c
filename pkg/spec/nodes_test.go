package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestNodeHelpers(t *testing.T) {
	c, _, err := LoadValid("testdata/three-node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := c.Node("kaji"); !ok || n.Role != RoleAgent || c.InterfaceOf(n) != "enp3s0" {
		t.Fatalf("kaji: %+v", n)
	}
	if n, _ := c.Node("ritsuko"); c.InterfaceOf(n) != "eno1" {
		t.Fatalf("ritsuko interface %q", c.InterfaceOf(n))
	}
	if _, ok := c.Node("shinji"); ok {
		t.Fatal("found shinji")
	}
	if s := c.Servers(); len(s) != 1 || s[0].Name != "misato" {
		t.Fatalf("servers %v", s)
	}
	if a := c.Agents(); len(a) != 2 || a[0].Name != "ritsuko" || a[1].Name != "kaji" {
		t.Fatalf("agents %v", a)
	}
	if c.FirstServer().Name != "misato" || c.ServerURL() != "https://192.168.1.100:6443" {
		t.Fatalf("first server %v %s", c.FirstServer(), c.ServerURL())
	}
	// Node returns a pointer into the spec: edits stick.
	n, _ := c.Node("kaji")
	n.Disk = "/dev/vda"
	if n2, _ := c.Node("kaji"); n2.Disk != "/dev/vda" {
		t.Fatal("edit through Node lost")
	}

	if err := c.AddNode(Node{Name: "kaji", IP: "192.168.1.150"}); !errors.Is(err, ErrNodeExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := c.AddNode(Node{Name: "shinji", IP: "192.168.1.101"}); !errors.Is(err, ErrNodeExists) || err.Error() != "adding node shinji: 192.168.1.101 is already the address of ritsuko (spec.nodes[1]): node already in the spec" {
		t.Fatalf("duplicate IP: %v", err)
	}
	if err := c.AddNode(Node{Name: "shinji", IP: "192.168.1.103", Role: RoleAgent, Disk: "/dev/sda"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNode("ritsuko"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range c.Spec.Nodes {
		names = append(names, n.Name)
	}
	if want := "misato kaji shinji"; strings.Join(names, " ") != want {
		t.Fatalf("after remove: %v", names)
	}
	if err := c.RemoveNode("ritsuko"); !errors.Is(err, ErrNodeNotFound) {
		t.Fatalf("remove missing: %v", err)
	}

	empty := &Cluster{}
	if empty.FirstServer() != nil || empty.ServerURL() != "" {
		t.Fatal("empty cluster has a server")
	}
}

func TestDeepCopy(t *testing.T) {
	c, _, err := LoadValid("testdata/three-node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := Marshal(c)
	d := c.DeepCopy()
	if d.Source() != c.Source() {
		t.Error("source not copied")
	}
	d.Spec.Nodes[1].Labels["zone"] = "b"
	d.Spec.Nodes[0].IP = "192.168.1.99"
	d.Spec.Admin.SSHKeys[0] = "changed"
	d.Spec.Network.DNS[0] = "9.9.9.9"
	if err := d.AddNode(Node{Name: "shinji", IP: "192.168.1.103", Role: RoleAgent, Disk: "/dev/sda"}); err != nil {
		t.Fatal(err)
	}
	after, _ := Marshal(c)
	if string(before) != string(after) {
		t.Fatalf("changing the copy changed the original:\n%s", after)
	}
}
