package rollout

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/pkg/spec"
)

// cluster builds a spec with the given nodes ("name:role", the first server bootstraps).
func specWith(t testing.TB, nodes ...string) *spec.Cluster {
	t.Helper()
	c, err := spec.Parse(spec.Example(), "nerv.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Default()
	c.Spec.Nodes = nil
	first := true
	for i, n := range nodes {
		name, role, _ := strings.Cut(n, ":")
		node := spec.Node{Name: name, Role: role, IP: fmt.Sprintf("192.168.1.%d", 10+i), Disk: "/dev/sda"}
		if role == spec.RoleServer && first {
			node.ClusterInit, first = true, false
		}
		c.Spec.Nodes = append(c.Spec.Nodes, node)
	}
	return c
}

func batchNames(p *Plan) []string {
	var out []string
	for _, b := range p.Batches {
		var names []string
		for _, n := range b.Nodes {
			names = append(names, n.Name)
		}
		out = append(out, strings.Join(names, "+"))
	}
	return out
}

func TestNewPlanOrder(t *testing.T) {
	c := specWith(t, "melchior:server", "a1:agent", "balthasar:server", "a2:agent", "casper:server", "a3:agent")
	for _, tc := range []struct {
		name    string
		nodes   []string
		maxUnav int
		want    string
		warn    bool
	}{
		{"all, one at a time", nil, 1, "a1 a2 a3 balthasar casper melchior", false},
		{"agents two at a time, servers still one", nil, 2, "a1+a2 a3 balthasar casper melchior", false},
		{"agents all at once", nil, 5, "a1+a2+a3 balthasar casper melchior", false},
		{"selection keeps the safe order", []string{"melchior", "a3", "casper"}, 1, "a3 casper melchior", false},
		{"one agent", []string{"a2"}, 1, "a2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(c, tc.nodes, tc.maxUnav)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(batchNames(p), " "); got != tc.want {
				t.Errorf("batches %q, want %q", got, tc.want)
			}
			for _, b := range p.Batches {
				if b.Role == spec.RoleServer && len(b.Nodes) != 1 {
					t.Errorf("server batch with %d nodes", len(b.Nodes))
				}
			}
			if (len(p.Warnings) > 0) != tc.warn {
				t.Errorf("warnings %v", p.Warnings)
			}
		})
	}
}

func TestNewPlanWarnsWithoutQuorumHeadroom(t *testing.T) {
	for _, tc := range []struct {
		nodes []string
		warn  string
	}{
		{[]string{"s1:server", "a1:agent"}, "1 server"},
		{[]string{"s1:server", "s2:server"}, "2 servers"},
	} {
		p, err := NewPlan(specWith(t, tc.nodes...), nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], tc.warn) {
			t.Errorf("%v: warnings %v, want one about %q", tc.nodes, p.Warnings, tc.warn)
		}
	}
	// Rolling only agents never touches the control plane: no warning.
	p, err := NewPlan(specWith(t, "s1:server", "a1:agent"), []string{"a1"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("agent-only plan warns: %v", p.Warnings)
	}
}

func TestNewPlanBadInput(t *testing.T) {
	c := specWith(t, "s1:server", "a1:agent")
	for _, tc := range []struct {
		nodes   []string
		maxUnav int
		want    string
	}{
		{[]string{"ghost"}, 1, `node "ghost" is not in the cluster spec nerv.yaml (nodes: s1, a1)`},
		{[]string{"a1", "a1"}, 1, `node "a1" named twice`},
		{nil, 0, "max-unavailable must be at least 1"},
	} {
		if _, err := NewPlan(c, tc.nodes, tc.maxUnav); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewPlan(%v, %d) err = %v, want %q", tc.nodes, tc.maxUnav, err, tc.want)
		}
	}
}

func TestPlanRender(t *testing.T) {
	p, err := NewPlan(specWith(t, "s1:server", "a1:agent", "a2:agent"), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	want := "1. agent  a1 (192.168.1.11), a2 (192.168.1.12)\n2. server s1 (192.168.1.10)\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("render:\n%s\nwant prefix:\n%s", b.String(), want)
	}
	for _, s := range []string{"agents 2 at a time, then servers one at a time;", "preflight → cordon → drain → install → kernel → switch|reboot → ready → uncordon → check", "warning: the cluster has 1 server"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("render lacks %q:\n%s", s, b.String())
		}
	}
}

func TestPlanRenderAgentsOnly(t *testing.T) {
	p, err := NewPlan(specWith(t, "s1:server", "a1:agent"), []string{"a1"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nagents 1 at a time; each node:") || strings.Contains(b.String(), "servers") {
		t.Errorf("agent-only plan:\n%s", b.String())
	}
}
