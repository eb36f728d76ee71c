package policy

import (
	"slices"
	"strings"
	"testing"
)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig([]byte("apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\n"), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ExemptNamespaces, []string{"kube-system", "kube-public", "kube-node-lease", "nerv-system"}) {
		t.Errorf("exemptNamespaces = %v", c.ExemptNamespaces)
	}
	if !slices.Equal(c.Policies.Resources.Required, []string{"requests.cpu", "requests.memory", "limits.memory"}) {
		t.Errorf("required = %v", c.Policies.Resources.Required)
	}
	if c.Policies.Resources.Mode != ModeEnforce || c.Policies.Network.Mode != ModeEnforce {
		t.Errorf("modes = %s, %s; want enforce", c.Policies.Resources.Mode, c.Policies.Network.Mode)
	}
}

func TestLoadConfigExplicit(t *testing.T) {
	c, err := LoadConfig([]byte(`apiVersion: nerv.dev/v1alpha1
kind: PolicyConfig
exemptNamespaces: []
policies:
  resources:
    mode: warn
    required: [requests.cpu, limits.cpu]
    maximums:
      limits.memory: 8Gi
    maxLimitRequestRatio:
      cpu: "4"
  network:
    mode: audit
`), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ExemptNamespaces) != 0 || c.ExemptNamespaces == nil {
		t.Errorf("an explicit empty list must stay empty, got %#v", c.ExemptNamespaces)
	}
	if c.Policies.Resources.Mode != ModeWarn || c.Policies.Network.Mode != ModeAudit {
		t.Errorf("modes = %s, %s", c.Policies.Resources.Mode, c.Policies.Network.Mode)
	}
	if !slices.Equal(c.Policies.Resources.Required, []string{"requests.cpu", "limits.cpu"}) {
		t.Errorf("required = %v", c.Policies.Resources.Required)
	}
	if _, err := NewEngine(c); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	const head = "apiVersion: nerv.dev/v1alpha1\nkind: PolicyConfig\n"
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"empty", "", []string{"policy.yaml", "is empty"}},
		{"not yaml", "a: [", []string{"policy.yaml", "not valid YAML"}},
		{"wrong apiVersion", "apiVersion: v1\nkind: PolicyConfig\n", []string{"apiVersion", "nerv.dev/v1alpha1"}},
		{"wrong kind", "apiVersion: nerv.dev/v1alpha1\nkind: Config\n", []string{"kind", "PolicyConfig"}},
		{"unknown field", head + "policies:\n  resources:\n    modes: warn\n", []string{`unknown field "policies.resources.modes"`}},
		{"duplicate field", head + "exemptNamespaces: []\nexemptNamespaces: []\n", []string{"policy.yaml", "exemptNamespaces"}},
		{"wrong type", head + "policies:\n  resources:\n    required: limits.cpu\n", []string{"policies.resources.required"}},
		{"bad mode", head + "policies:\n  network:\n    mode: block\n", []string{"policies.network.mode", `"block"`, "enforce"}},
		{"bad required key", head + "policies:\n  resources:\n    required: [limit.cpu]\n", []string{"policies.resources.required[0]", "requests.<resource>"}},
		{"duplicate required", head + "policies:\n  resources:\n    required: [limits.cpu, limits.cpu]\n", []string{"policies.resources.required[1]", "Duplicate"}},
		{"bad maximum", head + "policies:\n  resources:\n    maximums:\n      limits.memory: lots\n", []string{"policies.resources.maximums[limits.memory]", "quantity"}},
		{"zero maximum", head + "policies:\n  resources:\n    maximums:\n      limits.memory: \"0\"\n", []string{"policies.resources.maximums[limits.memory]", "greater than zero"}},
		{"ratio below one", head + "policies:\n  resources:\n    maxLimitRequestRatio:\n      cpu: \"0.5\"\n", []string{"policies.resources.maxLimitRequestRatio[cpu]", "at least 1"}},
		{"ratio keyed like required", head + "policies:\n  resources:\n    maxLimitRequestRatio:\n      limits.cpu: \"2\"\n", []string{"maxLimitRequestRatio[limits.cpu]", "resource name"}},
		{"bad namespace", head + "exemptNamespaces: [Kube_System]\n", []string{"exemptNamespaces[0]", "namespace name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig([]byte(tt.yaml), "policy.yaml")
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
