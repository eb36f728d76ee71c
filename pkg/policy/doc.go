// Package policy is NERV's admission policy engine: given an object (and a view of its
// namespace) it returns the violations of the configured policies. It does no I/O, so the
// same code judges live admission reviews (pkg/webhook), manifests on disk
// (`kubectl nerv validate`) and a running cluster (doctor).
//
// Two policies exist:
//
//   - resources: every container and init container of a Pod or pod template sets the
//     configured requests and limits, within optional maximums and limit/request ratios.
//   - network: a Pod is admitted only if a NetworkPolicy in its namespace selects it for
//     ingress; a NetworkPolicy opening ingress to the world needs nerv.dev/allow-world; the
//     last NetworkPolicy selecting running Pods cannot be deleted.
package policy
