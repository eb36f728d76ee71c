package doctor

// AllChecks returns every built-in check, grouped by category in report order. The IDs
// are stable: scripts and docs/doctor.md anchors rely on them.
func AllChecks() []Check {
	var all []Check
	for _, group := range [][]Check{
		kubernetesChecks(), metallbChecks(), argocdChecks(), traefikChecks(),
		certManagerChecks(), longhornChecks(), webhookChecks(), policyChecks(),
	} {
		all = append(all, group...)
	}
	return all
}
