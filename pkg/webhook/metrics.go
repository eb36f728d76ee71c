package webhook

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are nerv-webhook's own series; controller-runtime adds its webhook latency
// histogram (controller_runtime_webhook_latency_seconds) on the same registry.
type Metrics struct {
	// Decisions counts one decision per policy per review.
	Decisions *prometheus.CounterVec
	// ConfigReloads counts config reload attempts by result (success, rejected).
	ConfigReloads *prometheus.CounterVec
	// Rechecks counts network-policy denials re-checked against the API server, by result
	// (confirmed, or overturned: the cache had not yet seen a NetworkPolicy).
	Rechecks *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg. Registering twice on the
// same registry (two servers in one test process) reuses the first collectors.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nerv_webhook_decisions_total",
			Help: "Policy decisions by policy, mode, verdict (pass, exempt, deny, warn, audit) and namespace.",
		}, []string{"policy", "mode", "verdict", "namespace"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nerv_webhook_config_reloads_total",
			Help: "Policy config reloads by result: success, or rejected (the last good config stays active).",
		}, []string{"result"}),
		Rechecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nerv_webhook_network_rechecks_total",
			Help: "Network-policy denials re-checked against the API server's NetworkPolicies, by result: confirmed, or overturned (the informer cache lagged).",
		}, []string{"result"}),
	}
	var err error
	if m.Decisions, err = register(reg, m.Decisions); err != nil {
		return nil, err
	}
	if m.ConfigReloads, err = register(reg, m.ConfigReloads); err != nil {
		return nil, err
	}
	if m.Rechecks, err = register(reg, m.Rechecks); err != nil {
		return nil, err
	}
	return m, nil
}

func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}
