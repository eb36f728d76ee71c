package doctor

import "testing"

func TestDenialSummary(t *testing.T) {
	for in, want := range map[string]string{
		"Pod default/p violates NERV policy:\n  resources: spec.containers[0]: no limits.memory\n  network: no NetworkPolicy": "Pod default/p violates NERV policy: resources: spec.containers[0]: no limits.memory (and 1 more)",
		"Pod default/p violates NERV policy:\n  resources: spec.containers[0]: no limits.memory\n":                            "Pod default/p violates NERV policy: resources: spec.containers[0]: no limits.memory",
		"a one-line reason": "a one-line reason",
	} {
		if got := denialSummary(in); got != want {
			t.Errorf("denialSummary(%q) = %q, want %q", in, got, want)
		}
	}
}
