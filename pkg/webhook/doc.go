// Package webhook serves NERV's policies (pkg/policy) as a validating admission webhook on
// controller-runtime's webhook server: TLS from a cert dir with rotation, NetworkPolicy,
// Namespace and Pod lookups from informer caches, Prometheus metrics, health and readiness
// probes, Events and structured logs for warn and audit decisions, and config reload.
package webhook
