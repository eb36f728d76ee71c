package policy

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// resourceKey is one parsed "requests.cpu"-style key.
type resourceKey struct {
	key    string // as written in the config
	limits bool   // limits (true) or requests (false)
	name   corev1.ResourceName
}

type resourceMax struct {
	resourceKey
	max resource.Quantity
}

type resourceRatio struct {
	name  corev1.ResourceName
	max   float64
	asStr string
}

// resourcesRule is the compiled resources policy.
type resourcesRule struct {
	mode     Mode
	required []resourceKey
	maximums []resourceMax
	ratios   []resourceRatio
}

func newResourcesRule(c *ResourcesConfig) (resourcesRule, error) {
	r := resourcesRule{mode: c.Mode}
	for _, k := range c.Required {
		rk, err := compileKey(k)
		if err != nil {
			return r, err
		}
		r.required = append(r.required, rk)
	}
	for _, k := range sortedKeys(c.Maximums) {
		rk, err := compileKey(k)
		if err != nil {
			return r, err
		}
		q, err := resource.ParseQuantity(c.Maximums[k])
		if err != nil {
			return r, fmt.Errorf("policies.resources.maximums[%s]: %w", k, err)
		}
		r.maximums = append(r.maximums, resourceMax{resourceKey: rk, max: q})
	}
	for _, name := range sortedKeys(c.MaxLimitRequestRatio) {
		q, err := resource.ParseQuantity(c.MaxLimitRequestRatio[name])
		if err != nil {
			return r, fmt.Errorf("policies.resources.maxLimitRequestRatio[%s]: %w", name, err)
		}
		r.ratios = append(r.ratios, resourceRatio{name: corev1.ResourceName(name), max: q.AsApproximateFloat64(), asStr: c.MaxLimitRequestRatio[name]})
	}
	return r, nil
}

func compileKey(k string) (resourceKey, error) {
	kind, name, err := parseResourceKey(k)
	if err != nil {
		return resourceKey{}, fmt.Errorf("policies.resources: %q: %w", k, err)
	}
	return resourceKey{key: k, limits: kind == "limits", name: name}, nil
}

func (k *resourceKey) list(r *corev1.ResourceRequirements) corev1.ResourceList {
	if k.limits {
		return r.Limits
	}
	return r.Requests
}

// check reports every container and init container that misses a required value, exceeds
// a maximum or a limit/request ratio.
func (r *resourcesRule) check(s *subject, add addFunc) {
	r.checkContainers(s.podSpec.InitContainers, s.specPath+".initContainers", add)
	r.checkContainers(s.podSpec.Containers, s.specPath+".containers", add)
}

func (r *resourcesRule) checkContainers(cs []corev1.Container, path string, add addFunc) {
	for i := range cs {
		c := &cs[i]
		res := &c.Resources
		for j := range r.required {
			k := &r.required[j]
			if _, ok := k.list(res)[k.name]; !ok {
				add(containerField(path, i, k.key), fmt.Sprintf("container %q does not set %s: %s", c.Name, k.key, missingHint(k)))
			}
		}
		for j := range r.maximums {
			m := &r.maximums[j]
			if q, ok := m.list(res)[m.name]; ok && q.Cmp(m.max) > 0 {
				add(containerField(path, i, m.key), fmt.Sprintf("container %q sets %s to %s, above the maximum %s: lower it to at most %s, or split the work across more replicas",
					c.Name, m.key, q.String(), m.max.String(), m.max.String()))
			}
		}
		for j := range r.ratios {
			rt := &r.ratios[j]
			lim, okL := res.Limits[rt.name]
			req, okR := res.Requests[rt.name]
			if !okL || !okR || req.Sign() <= 0 {
				continue
			}
			ratio := lim.AsApproximateFloat64() / req.AsApproximateFloat64()
			if ratio > rt.max {
				add(containerField(path, i, "limits."+string(rt.name)),
					fmt.Sprintf("container %q has a %s limit/request ratio of %s (limit %s, request %s), above the maximum %s: raise requests.%s or lower limits.%s",
						c.Name, rt.name, strconv.FormatFloat(ratio, 'g', 3, 64), lim.String(), req.String(), rt.asStr, rt.name, rt.name))
			}
		}
	}
}

func containerField(path string, i int, key string) string {
	return path + "[" + strconv.Itoa(i) + "].resources." + key
}

// examples gives a typical value per resource, so the message shows what to write.
var examples = map[corev1.ResourceName][2]string{ // requests, limits
	corev1.ResourceCPU:              {"100m", "500m"},
	corev1.ResourceMemory:           {"128Mi", "256Mi"},
	corev1.ResourceEphemeralStorage: {"1Gi", "2Gi"},
}

func missingHint(k *resourceKey) string {
	var b []byte
	if k.limits {
		b = fmt.Appendf(b, "set the most %s the container may use", k.name)
	} else {
		b = fmt.Appendf(b, "set the %s the container needs to run", k.name)
	}
	if ex, ok := examples[k.name]; ok {
		v := ex[0]
		if k.limits {
			v = ex[1]
		}
		b = fmt.Appendf(b, " (e.g. %s: %s)", k.key, v)
	}
	if k.limits && k.name == corev1.ResourceMemory {
		b = append(b, ", so that one container cannot exhaust the node's memory"...)
	}
	return string(b)
}
