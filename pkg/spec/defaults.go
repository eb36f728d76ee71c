package spec

import "net/netip"

// Defaults applied by (*Cluster).Default.
const (
	DefaultInterface    = "eno1"
	DefaultAdminUser    = "admin"
	DefaultRevision     = "main"
	DefaultGitOpsPath   = "manifests/platform"
	DefaultK3sPackage   = "k3s"
	DefaultTokenSecret  = "k3s-token"
	DefaultNixOSRelease = "25.11"
	DefaultTimeZone     = "UTC"
)

// Default fills every optional field that is unset. It is idempotent and never overrides a
// value the user wrote. Disks and roles have no default: guessing which disk to wipe or what a
// machine is for is not something a tool should do silently.
func (c *Cluster) Default() {
	s := &c.Spec
	if s.Network.Interface == "" {
		s.Network.Interface = DefaultInterface
	}
	if len(s.Network.DNS) == 0 && s.Network.Gateway != "" {
		s.Network.DNS = []string{s.Network.Gateway}
	}
	// Unset service IPs take the first free addresses of the pool, in the seed's order
	// (ArgoCD, Longhorn, Traefik), skipping any address another service already holds.
	if start, err := netip.ParseAddr(s.Network.LoadBalancerPool.Start); err == nil && start.Is4() {
		ips := []*string{&s.Network.ServiceIPs.ArgoCD, &s.Network.ServiceIPs.Longhorn, &s.Network.ServiceIPs.Traefik}
		used := map[string]bool{}
		for _, ip := range ips {
			used[*ip] = true
		}
		next := start
		for _, ip := range ips {
			if *ip != "" {
				continue
			}
			for used[next.String()] {
				next = next.Next()
			}
			*ip = next.String()
			used[*ip] = true
		}
	}
	if s.Admin.User == "" {
		s.Admin.User = DefaultAdminUser
	}
	if s.GitOps.Revision == "" {
		s.GitOps.Revision = DefaultRevision
	}
	if s.GitOps.Path == "" {
		s.GitOps.Path = DefaultGitOpsPath
	}
	if s.K3s.Package == "" {
		s.K3s.Package = DefaultK3sPackage
	}
	if s.K3s.TokenSecret == "" {
		s.K3s.TokenSecret = DefaultTokenSecret
	}
	if s.NixOS.Release == "" {
		s.NixOS.Release = DefaultNixOSRelease
	}
	if s.NixOS.TimeZone == "" {
		s.NixOS.TimeZone = DefaultTimeZone
	}
}
