package spec

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// FieldError is one problem with one field of the spec.
type FieldError struct {
	// Field is the path, e.g. spec.nodes[2].ip.
	Field string
	// Detail says what is wrong and, where it helps, what to do.
	Detail string
}

func (e FieldError) String() string { return e.Field + ": " + e.Detail }

// ValidationError lists every problem found in a spec, in document order.
type ValidationError struct {
	Source string
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	src := e.Source
	if src == "" {
		src = "cluster spec"
	}
	if len(e.Errors) == 1 {
		return src + ": " + e.Errors[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", src, len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(fe.String())
	}
	return b.String()
}

// Has reports whether some error is about field (exact path).
func (e *ValidationError) Has(field string) bool {
	for _, fe := range e.Errors {
		if fe.Field == field {
			return true
		}
	}
	return false
}

var (
	// RFC 1123 label: what a hostname and a Kubernetes node name may be.
	rfc1123Label = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	unixUser     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// A Linux interface name: at most 15 bytes, no slash, colon or whitespace.
	ifName         = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	k3sPackage     = regexp.MustCompile(`^k3s(_1_[0-9]+)?$`)
	sopsSecretName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	nixosRelease   = regexp.MustCompile(`^[0-9]{2}\.(05|11)$`)
	// A git scp-like address: git@host:owner/repo.git
	scpLike     = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$`)
	labelKey    = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValue  = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	tzName      = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
	managedFlag = map[string]string{
		"--token":                 "spec.k3s.tokenSecret",
		"--token-file":            "spec.k3s.tokenSecret",
		"--server":                "spec.nodes[].clusterInit (the first server is the join address)",
		"--cluster-init":          "spec.nodes[].clusterInit",
		"--node-ip":               "spec.nodes[].ip",
		"--node-label":            "spec.nodes[].labels",
		"--write-kubeconfig-mode": "NERV (always 0600)",
	}
)

// validator accumulates problems in document order.
type validator struct {
	errs     []FieldError
	warnings []string
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

// Validate checks the spec and returns every problem at once (a *ValidationError) plus
// warnings that do not stop rendering. Call Default first: required fields that Default fills
// are reported as missing otherwise.
func (c *Cluster) Validate() (warnings []string, err error) {
	v := &validator{}
	if c.APIVersion != APIVersion {
		v.add("apiVersion", "%q is not supported: use %s", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		v.add("kind", "%q is not supported: use %s", c.Kind, Kind)
	}
	switch {
	case c.Metadata.Name == "":
		v.add("metadata.name", "required: the cluster's name, e.g. nerv")
	case !rfc1123Label.MatchString(c.Metadata.Name):
		v.add("metadata.name", "%q is not an RFC 1123 label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)", c.Metadata.Name)
	}
	subnet, pool := v.network(&c.Spec.Network)
	v.admin(&c.Spec.Admin)
	v.gitops(&c.Spec.GitOps)
	v.sops(&c.Spec.SOPS)
	v.k3s(&c.Spec.K3s)
	v.nixos(&c.Spec.NixOS)
	v.nodes(c, subnet, pool)
	if len(v.errs) > 0 {
		return v.warnings, &ValidationError{Source: c.source, Errors: v.errs}
	}
	return v.warnings, nil
}

// ipRange is a parsed, valid pool.
type ipRange struct{ start, end netip.Addr }

func (r *ipRange) contains(a netip.Addr) bool {
	return r != nil && a.Compare(r.start) >= 0 && a.Compare(r.end) <= 0
}

func (r *ipRange) String() string { return r.start.String() + "-" + r.end.String() }

// parseIPv4 reports a missing or malformed address at field and returns ok=false.
func (v *validator) parseIPv4(field, s string) (netip.Addr, bool) {
	if s == "" {
		v.add(field, "required: an IPv4 address")
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		v.add(field, "%q is not an IP address", s)
		return netip.Addr{}, false
	}
	if !a.Is4() {
		v.add(field, "%s is not an IPv4 address: NERV supports IPv4 networks only", s)
		return netip.Addr{}, false
	}
	return a, true
}

func (v *validator) network(n *Network) (*netip.Prefix, *ipRange) {
	var subnet *netip.Prefix
	switch p, err := netip.ParsePrefix(n.Subnet); {
	case n.Subnet == "":
		v.add("spec.network.subnet", "required: the nodes' network in CIDR form, e.g. 192.168.1.0/24")
	case err != nil:
		v.add("spec.network.subnet", "%q is not a CIDR network, e.g. 192.168.1.0/24", n.Subnet)
	case !p.Addr().Is4():
		v.add("spec.network.subnet", "%s is not an IPv4 network: NERV supports IPv4 networks only", n.Subnet)
	case p.Masked() != p:
		v.add("spec.network.subnet", "%s has host bits set: did you mean %s?", n.Subnet, p.Masked())
	case p.Bits() > 30:
		v.add("spec.network.subnet", "%s is too small for a cluster: use a /30 or larger network", n.Subnet)
	default:
		subnet = &p
	}
	inSubnet := func(field string, a netip.Addr) {
		if subnet == nil {
			return
		}
		if !subnet.Contains(a) {
			v.add(field, "%s is outside the subnet %s", a, subnet)
			return
		}
		if a == subnet.Addr() {
			v.add(field, "%s is the network address of %s", a, subnet)
		} else if a == lastAddr(*subnet) {
			v.add(field, "%s is the broadcast address of %s", a, subnet)
		}
	}
	gw, gwOK := v.parseIPv4("spec.network.gateway", n.Gateway)
	if gwOK {
		inSubnet("spec.network.gateway", gw)
	}
	for i, d := range n.DNS {
		if a, err := netip.ParseAddr(d); err != nil || !a.Is4() {
			v.add(fmt.Sprintf("spec.network.dns[%d]", i), "%q is not an IPv4 address", d)
		}
	}
	if n.Interface != "" && !ifName.MatchString(n.Interface) {
		v.add("spec.network.interface", "%q is not a network interface name (at most 15 letters, digits, '_', '.' or '-')", n.Interface)
	}

	var pool *ipRange
	start, okS := v.parseIPv4("spec.network.loadBalancerPool.start", n.LoadBalancerPool.Start)
	end, okE := v.parseIPv4("spec.network.loadBalancerPool.end", n.LoadBalancerPool.End)
	if okS {
		inSubnet("spec.network.loadBalancerPool.start", start)
	}
	if okE {
		inSubnet("spec.network.loadBalancerPool.end", end)
	}
	if okS && okE {
		if start.Compare(end) > 0 {
			v.add("spec.network.loadBalancerPool", "start %s is after end %s", start, end)
		} else {
			pool = &ipRange{start, end}
		}
	}
	if pool != nil && gwOK && pool.contains(gw) {
		v.add("spec.network.gateway", "%s is inside the LoadBalancer pool %s", gw, pool)
	}

	seen := map[netip.Addr]string{}
	for _, s := range []struct{ field, value string }{
		{"spec.network.serviceIPs.argocd", n.ServiceIPs.ArgoCD},
		{"spec.network.serviceIPs.longhorn", n.ServiceIPs.Longhorn},
		{"spec.network.serviceIPs.traefik", n.ServiceIPs.Traefik},
	} {
		a, ok := v.parseIPv4(s.field, s.value)
		if !ok {
			continue
		}
		if pool != nil && !pool.contains(a) {
			v.add(s.field, "%s is outside the LoadBalancer pool %s", a, pool)
		}
		if other, dup := seen[a]; dup {
			v.add(s.field, "%s is already the address of %s", a, other)
		}
		seen[a] = s.field
	}
	return subnet, pool
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}

func (v *validator) admin(a *Admin) {
	switch {
	case a.User == "":
		v.add("spec.admin.user", "required: the admin login, e.g. admin")
	case a.User == "root":
		v.add("spec.admin.user", "root cannot be the admin user: root login over SSH is disabled; pick a personal account")
	case !unixUser.MatchString(a.User):
		v.add("spec.admin.user", "%q is not a valid user name (lowercase letters, digits, '_' and '-', at most 32, not starting with a digit)", a.User)
	}
	if len(a.SSHKeys) == 0 {
		v.add("spec.admin.sshKeys", "required: at least one SSH public key; password login is disabled, so without one nobody can log in")
	}
	for i, k := range a.SSHKeys {
		field := fmt.Sprintf("spec.admin.sshKeys[%d]", i)
		if strings.ContainsAny(strings.TrimSpace(k), "\r\n") {
			v.add(field, "holds more than one line: give one public key per list entry")
			continue
		}
		if strings.Contains(k, "PRIVATE KEY") {
			v.add(field, "is a private key: put the public key (the .pub file) here, and remove the private key from this file")
			continue
		}
		if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			v.add(field, "is not an SSH public key (%v): paste one line of a .pub file, e.g. ssh-ed25519 AAAA... you@host", err)
		} else if len(strings.TrimSpace(string(rest))) > 0 {
			v.add(field, "holds more than one key: give one public key per list entry")
		}
	}
}

func (v *validator) gitops(g *GitOps) {
	switch {
	case g.RepoURL == "":
		v.add("spec.gitops.repoURL", "required: the Git repository ArgoCD syncs, e.g. https://github.com/you/platform.git")
	case scpLike.MatchString(g.RepoURL):
	default:
		u, err := url.Parse(g.RepoURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ssh" && u.Scheme != "git") {
			v.add("spec.gitops.repoURL", "%q is not a Git URL: use https://host/owner/repo.git, ssh://git@host/owner/repo.git or git@host:owner/repo.git", g.RepoURL)
		} else if u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				v.add("spec.gitops.repoURL", "contains a password: credentials belong in an ArgoCD repository secret, not in the spec")
			}
		}
	}
	if g.Revision == "" {
		v.add("spec.gitops.revision", "required: a branch, tag or commit, e.g. main")
	} else if strings.ContainsAny(g.Revision, " \t\n\"\\") {
		v.add("spec.gitops.revision", "%q is not a Git revision", g.Revision)
	}
	switch {
	case g.Path == "":
		v.add("spec.gitops.path", "required: the app-of-apps directory in the repository, e.g. manifests/platform")
	case strings.HasPrefix(g.Path, "/") || strings.Contains("/"+g.Path+"/", "/../"):
		v.add("spec.gitops.path", "%q must be a relative path inside the repository", g.Path)
	case strings.ContainsAny(g.Path, "\"\\\n"):
		v.add("spec.gitops.path", "%q contains a quote, backslash or newline", g.Path)
	}
}

func (v *validator) sops(s *SOPS) {
	if len(s.AgeRecipients) == 0 {
		v.add("spec.sops.ageRecipients", "required: at least one age public key (age1...), e.g. from age-keygen -y key.txt")
	}
	seen := map[string]int{}
	for i, r := range s.AgeRecipients {
		field := fmt.Sprintf("spec.sops.ageRecipients[%d]", i)
		if strings.HasPrefix(strings.ToUpper(r), "AGE-SECRET-KEY-") {
			v.add(field, "is an age secret key: put its public key here (age-keygen -y key.txt) and remove the secret key from this file")
			continue
		}
		if _, err := age.ParseX25519Recipient(r); err != nil {
			v.add(field, "%q is not an age X25519 recipient (age1...): %v", r, err)
			continue
		}
		if j, dup := seen[r]; dup {
			v.add(field, "duplicates spec.sops.ageRecipients[%d]", j)
		}
		seen[r] = i
	}
}

func (v *validator) k3s(k *K3s) {
	if !k3sPackage.MatchString(k.Package) {
		v.add("spec.k3s.package", "%q is not a k3s package in nixpkgs: use k3s or a versioned attribute such as k3s_1_33", k.Package)
	}
	if !sopsSecretName.MatchString(k.TokenSecret) {
		v.add("spec.k3s.tokenSecret", "%q is not a sops secret name (letters, digits, '.', '_' and '-')", k.TokenSecret)
	}
	v.flags("spec.k3s.extraFlags", k.ExtraFlags)
	v.flags("spec.k3s.serverFlags", k.ServerFlags)
}

func (v *validator) flags(field string, flags []string) {
	for i, f := range flags {
		name, _, _ := strings.Cut(f, "=")
		if owner, ok := managedFlag[name]; ok {
			v.add(fmt.Sprintf("%s[%d]", field, i), "%s is set by NERV from %s; remove it here", name, owner)
			continue
		}
		if !strings.HasPrefix(f, "--") || strings.ContainsAny(f, " \t\n\"\\$`'") {
			v.add(fmt.Sprintf("%s[%d]", field, i), "%q is not a k3s flag: write one --flag or --flag=value per entry, without spaces or quotes", f)
		}
	}
}

func (v *validator) nixos(n *NixOS) {
	if !nixosRelease.MatchString(n.Release) {
		v.add("spec.nixos.release", "%q is not a NixOS release such as %s", n.Release, DefaultNixOSRelease)
	}
	if !tzName.MatchString(n.TimeZone) {
		v.add("spec.nixos.timeZone", "%q is not a time zone name such as Europe/Berlin or UTC", n.TimeZone)
	}
}

func (v *validator) nodes(c *Cluster, subnet *netip.Prefix, pool *ipRange) {
	nodes := c.Spec.Nodes
	if len(nodes) == 0 {
		v.add("spec.nodes", "required: at least one node (a server with clusterInit: true)")
		return
	}
	names := map[string]int{}
	ips := map[netip.Addr]int{}
	gw, _ := netip.ParseAddr(c.Spec.Network.Gateway)
	var servers, agents []int
	var inits []int
	for i := range nodes {
		n := &nodes[i]
		p := fmt.Sprintf("spec.nodes[%d]", i)
		switch {
		case n.Name == "":
			v.add(p+".name", "required: the node's hostname")
		case !rfc1123Label.MatchString(n.Name):
			v.add(p+".name", "%q is not an RFC 1123 hostname (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)", n.Name)
		default:
			if j, dup := names[n.Name]; dup {
				v.add(p+".name", "%q is already the name of spec.nodes[%d]", n.Name, j)
			} else {
				names[n.Name] = i
			}
		}
		if a, ok := v.parseIPv4(p+".ip", n.IP); ok {
			switch {
			case subnet != nil && !subnet.Contains(a):
				v.add(p+".ip", "%s is outside the subnet %s", a, subnet)
			case subnet != nil && a == subnet.Addr():
				v.add(p+".ip", "%s is the network address of %s", a, subnet)
			case subnet != nil && a == lastAddr(*subnet):
				v.add(p+".ip", "%s is the broadcast address of %s", a, subnet)
			case pool.contains(a):
				v.add(p+".ip", "%s is inside the LoadBalancer pool %s", a, pool)
			case a == gw:
				v.add(p+".ip", "%s is the gateway's address", a)
			}
			if j, dup := ips[a]; dup {
				v.add(p+".ip", "%s is already the address of spec.nodes[%d] (%s)", a, j, nodes[j].Name)
			} else {
				ips[a] = i
			}
		}
		switch n.Role {
		case RoleServer:
			servers = append(servers, i)
		case RoleAgent:
			agents = append(agents, i)
		case "":
			v.add(p+".role", "required: server or agent")
		default:
			v.add(p+".role", "%q is not a role: use server or agent", n.Role)
		}
		if n.ClusterInit {
			if n.Role == RoleAgent {
				v.add(p+".clusterInit", "only a server can initialise the cluster; %s is an agent", n.Name)
			} else {
				inits = append(inits, i)
			}
		}
		switch {
		case n.Disk == "":
			v.add(p+".disk", "required: the disk disko partitions and WIPES, e.g. /dev/nvme0n1 or /dev/disk/by-id/... (see lsblk on the machine)")
		case !strings.HasPrefix(n.Disk, "/dev/") || strings.ContainsAny(n.Disk, " \t\n\"\\$"):
			v.add(p+".disk", "%q is not a block device path under /dev/", n.Disk)
		}
		if n.Interface != "" && !ifName.MatchString(n.Interface) {
			v.add(p+".interface", "%q is not a network interface name (at most 15 letters, digits, '_', '.' or '-')", n.Interface)
		}
		for _, k := range sortedKeys(n.Labels) {
			if !labelKey.MatchString(k) || len(k) > 316 {
				v.add(fmt.Sprintf("%s.labels[%s]", p, k), "%q is not a Kubernetes label key", k)
			} else if restrictedNodeLabel(k) {
				v.add(fmt.Sprintf("%s.labels[%s]", p, k), "the kubelet may not set labels under kubernetes.io/ or k8s.io/ (NodeRestriction), so k3s would not register the node: use another prefix, e.g. nerv.dev/")
			}
			if !labelValue.MatchString(n.Labels[k]) {
				v.add(fmt.Sprintf("%s.labels[%s]", p, k), "%q is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.')", n.Labels[k])
			}
		}
	}
	switch {
	case len(servers) == 0 && len(agents) > 0:
		for _, i := range agents {
			v.add(fmt.Sprintf("spec.nodes[%d]", i), "agent %s has no server to join: add a node with role: server and clusterInit: true", nodes[i].Name)
		}
	case len(servers) > 0 && len(inits) == 0:
		v.add(fmt.Sprintf("spec.nodes[%d].clusterInit", servers[0]), "no server has clusterInit: true: set it on exactly one server (usually the first, %s)", nodes[servers[0]].Name)
	}
	for _, i := range inits[min(1, len(inits)):] {
		v.add(fmt.Sprintf("spec.nodes[%d].clusterInit", i), "%s also has clusterInit: true, as does %s: exactly one server initialises the cluster", nodes[i].Name, nodes[inits[0]].Name)
	}
	if len(servers) > 0 && len(servers)%2 == 0 {
		v.warnings = append(v.warnings, fmt.Sprintf("spec.nodes: %d servers: embedded etcd needs a majority, so an even number tolerates no more failures than one fewer; use an odd number (1, 3, 5)", len(servers)))
	}
}

// restrictedNodeLabel reports whether the NodeRestriction admission plugin forbids a kubelet
// from setting label key on its own Node (kubernetes.io and k8s.io prefixes, bar a few).
func restrictedNodeLabel(key string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	if prefix != "kubernetes.io" && prefix != "k8s.io" &&
		!strings.HasSuffix(prefix, ".kubernetes.io") && !strings.HasSuffix(prefix, ".k8s.io") {
		return false
	}
	switch {
	case prefix == "kubelet.kubernetes.io" || prefix == "node.kubernetes.io",
		strings.HasSuffix(prefix, ".kubelet.kubernetes.io") || strings.HasSuffix(prefix, ".node.kubernetes.io"):
		return false
	}
	switch key {
	case "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
		"topology.kubernetes.io/region", "topology.kubernetes.io/zone",
		"failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
		"beta.kubernetes.io/instance-type", "beta.kubernetes.io/arch", "beta.kubernetes.io/os":
		return false
	}
	return true
}
