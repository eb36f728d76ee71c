package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Identity of the config file.
const (
	ConfigAPIVersion = "nerv.dev/v1alpha1"
	ConfigKind       = "PolicyConfig"
)

// DefaultExemptNamespaces are skipped by every policy unless exemptNamespaces is set.
var DefaultExemptNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "nerv-system"}

// DefaultRequiredResources is the resources policy's default required set.
var DefaultRequiredResources = []string{"requests.cpu", "requests.memory", "limits.memory"}

// Config is the policy config file (a ConfigMap key in the cluster). Every field is
// documented in docs/nerv-webhook.md.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// ExemptNamespaces are skipped by every policy. Unset means DefaultExemptNamespaces;
	// an empty list exempts none.
	ExemptNamespaces []string     `json:"exemptNamespaces"`
	Policies         PolicyConfig `json:"policies"`
}

// PolicyConfig holds one section per policy.
type PolicyConfig struct {
	Resources ResourcesConfig `json:"resources"`
	Network   NetworkConfig   `json:"network"`
}

// ResourcesConfig configures the resources policy.
type ResourcesConfig struct {
	// Mode defaults to enforce.
	Mode Mode `json:"mode,omitempty"`
	// Required lists "requests.<resource>" / "limits.<resource>" every container must set.
	// Unset means DefaultRequiredResources.
	Required []string `json:"required"`
	// Maximums caps values per container, keyed like Required ("limits.memory": "4Gi").
	Maximums map[string]string `json:"maximums,omitempty"`
	// MaxLimitRequestRatio caps limit/request per resource ("cpu": "4"), checked where a
	// container sets both.
	MaxLimitRequestRatio map[string]string `json:"maxLimitRequestRatio,omitempty"`
}

// NetworkConfig configures the network policy.
type NetworkConfig struct {
	// Mode defaults to enforce.
	Mode Mode `json:"mode,omitempty"`
}

// DefaultConfig returns the config used when no file is given.
func DefaultConfig() *Config {
	c := &Config{APIVersion: ConfigAPIVersion, Kind: ConfigKind}
	c.Default()
	return c
}

// Default fills unset fields with their defaults.
func (c *Config) Default() {
	if c.ExemptNamespaces == nil {
		c.ExemptNamespaces = slices.Clone(DefaultExemptNamespaces)
	}
	if c.Policies.Resources.Mode == "" {
		c.Policies.Resources.Mode = ModeEnforce
	}
	if c.Policies.Resources.Required == nil {
		c.Policies.Resources.Required = slices.Clone(DefaultRequiredResources)
	}
	if c.Policies.Network.Mode == "" {
		c.Policies.Network.Mode = ModeEnforce
	}
}

// LoadConfig parses, defaults and validates a config file. source names the file in
// errors. Unknown and duplicate fields are errors: a typo must not silently weaken a policy.
func LoadConfig(data []byte, source string) (*Config, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", source, err)
	}
	if strings.TrimSpace(string(j)) == "null" {
		return nil, fmt.Errorf("%s: is empty: a config needs at least apiVersion: %s and kind: %s", source, ConfigAPIVersion, ConfigKind)
	}
	c := &Config{}
	strictErrs, err := sigsjson.UnmarshalStrict(j, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, 0, len(strictErrs))
		for _, e := range strictErrs {
			msgs = append(msgs, e.Error())
		}
		return nil, fmt.Errorf("%s: %s", source, strings.Join(msgs, "; "))
	}
	c.Default()
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", source, errs.ToAggregate())
	}
	return c, nil
}

// Validate checks a defaulted config; each error names its field path.
func (c *Config) Validate() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != ConfigAPIVersion {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), c.APIVersion, "must be "+ConfigAPIVersion))
	}
	if c.Kind != ConfigKind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), c.Kind, "must be "+ConfigKind))
	}
	seen := map[string]bool{}
	for i, ns := range c.ExemptNamespaces {
		p := field.NewPath("exemptNamespaces").Index(i)
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(p, ns, "not a namespace name: "+msg))
		}
		if seen[ns] {
			errs = append(errs, field.Duplicate(p, ns))
		}
		seen[ns] = true
	}
	rp := field.NewPath("policies", "resources")
	r := &c.Policies.Resources
	errs = append(errs, validateMode(rp.Child("mode"), r.Mode)...)
	seen = map[string]bool{}
	for i, key := range r.Required {
		p := rp.Child("required").Index(i)
		if _, _, err := parseResourceKey(key); err != nil {
			errs = append(errs, field.Invalid(p, key, err.Error()))
		}
		if seen[key] {
			errs = append(errs, field.Duplicate(p, key))
		}
		seen[key] = true
	}
	for _, key := range sortedKeys(r.Maximums) {
		p := rp.Child("maximums").Key(key)
		if _, _, err := parseResourceKey(key); err != nil {
			errs = append(errs, field.Invalid(p, key, err.Error()))
		}
		if q, err := resource.ParseQuantity(r.Maximums[key]); err != nil {
			errs = append(errs, field.Invalid(p, r.Maximums[key], "not a quantity (e.g. 500m, 2, 512Mi, 4Gi)"))
		} else if q.Sign() <= 0 {
			errs = append(errs, field.Invalid(p, r.Maximums[key], "must be greater than zero"))
		}
	}
	for _, name := range sortedKeys(r.MaxLimitRequestRatio) {
		p := rp.Child("maxLimitRequestRatio").Key(name)
		if msgs := validation.IsQualifiedName(name); len(msgs) > 0 || strings.Contains(name, ".") && !strings.Contains(name, "/") {
			errs = append(errs, field.Invalid(p, name, "key must be a resource name such as cpu or memory"))
		}
		q, err := resource.ParseQuantity(r.MaxLimitRequestRatio[name])
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(p, r.MaxLimitRequestRatio[name], "not a number (e.g. 2 or 1.5)"))
		case q.AsApproximateFloat64() < 1:
			errs = append(errs, field.Invalid(p, r.MaxLimitRequestRatio[name], "must be at least 1: a limit below its request is rejected by Kubernetes anyway"))
		}
	}
	errs = append(errs, validateMode(field.NewPath("policies", "network", "mode"), c.Policies.Network.Mode)...)
	return errs
}

func validateMode(p *field.Path, m Mode) field.ErrorList {
	if m.Valid() {
		return nil
	}
	return field.ErrorList{field.NotSupported(p, m, []string{string(ModeEnforce), string(ModeWarn), string(ModeAudit)})}
}

// parseResourceKey splits "limits.memory" into ("limits", "memory").
func parseResourceKey(key string) (kind string, name corev1.ResourceName, err error) {
	kind, rest, ok := strings.Cut(key, ".")
	if !ok || (kind != "requests" && kind != "limits") {
		return "", "", errors.New(`must be "requests.<resource>" or "limits.<resource>", e.g. limits.memory`)
	}
	if msgs := validation.IsQualifiedName(rest); len(msgs) > 0 {
		return "", "", fmt.Errorf("%q is not a resource name: %s", rest, strings.Join(msgs, "; "))
	}
	return kind, corev1.ResourceName(rest), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
