package rollout

import (
	"strings"
	"testing"
)

func TestPlanRemove(t *testing.T) {
	three := []string{"s1:server", "s2:server", "s3:server", "a1:agent"}
	all := map[string]bool{"s1": true, "s2": true, "s3": true, "a1": true}
	for _, tc := range []struct {
		name    string
		nodes   []string
		remove  string
		ready   map[string]bool
		err     string
		warn    []string
		newInit string
	}{
		{name: "agent", nodes: three, remove: "a1", ready: map[string]bool{}},
		{name: "last server", nodes: []string{"s1:server", "a1:agent"}, remove: "s1", ready: all, err: "it is the last server"},
		{name: "server of three, others Ready", nodes: three, remove: "s2", ready: all, warn: []string{"2 servers remain"}},
		{name: "server of three, one other down", nodes: three, remove: "s2", ready: map[string]bool{"s1": true}, err: "etcd needs 2 of them Ready for quorum, but only 1 are (not Ready: s3)"},
		{name: "bootstrap server moves clusterInit", nodes: three, remove: "s1", ready: all, warn: []string{"2 servers remain", "clusterInit moves to s2"}, newInit: "s2"},
		{name: "second of two", nodes: []string{"s1:server", "s2:server"}, remove: "s2", ready: all},
		{name: "second of two, other down", nodes: []string{"s1:server", "s2:server"}, remove: "s2", ready: map[string]bool{}, err: "etcd needs 1"},
		{name: "unknown", nodes: three, remove: "ghost", ready: all, err: `node "ghost" is not in the cluster spec nerv.yaml (nodes: s1, s2, s3, a1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := specWith(t, tc.nodes...)
			r, err := PlanRemove(c, tc.remove, tc.ready)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Warnings) != len(tc.warn) {
				t.Fatalf("warnings %q, want %d matching %q", r.Warnings, len(tc.warn), tc.warn)
			}
			for i, w := range tc.warn {
				if !strings.Contains(r.Warnings[i], w) {
					t.Errorf("warning %q lacks %q", r.Warnings[i], w)
				}
			}
			if r.NewClusterInit != tc.newInit {
				t.Errorf("new clusterInit %q, want %q", r.NewClusterInit, tc.newInit)
			}
			if err := r.Apply(c); err != nil {
				t.Fatal(err)
			}
			if _, ok := c.Node(tc.remove); ok {
				t.Error("node still in the spec after Apply")
			}
			if _, err := c.Validate(); err != nil && len(c.Servers()) > 0 {
				t.Errorf("spec invalid after removal: %v", err)
			}
		})
	}
}
