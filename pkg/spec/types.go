// Package spec is the NERV cluster spec (nerv.yaml): its types, defaults, validation, and
// loading and writing the file. Everything else (the NixOS renderer, join, node, doctor) reads
// a site from here, so the spec is the one place a value is declared.
//
// Typical use:
//
//	c, warnings, err := spec.LoadValid("nerv.yaml") // Load + Default + Validate
//
// or, step by step, Load (strict decode) → Default → Validate.
package spec

// APIVersion and Kind identify a NERV cluster spec.
const (
	APIVersion = "nerv.dev/v1alpha1"
	Kind       = "Cluster"
)

// Node roles.
const (
	RoleServer = "server"
	RoleAgent  = "agent"
)

// Cluster is the whole nerv.yaml document.
type Cluster struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   Metadata    `json:"metadata"`
	Spec       ClusterSpec `json:"spec"`

	// source is the file (or label) the spec came from; errors name it.
	source string
}

// Metadata names the cluster.
type Metadata struct {
	// Name is the cluster's name (an RFC 1123 label), used in the flake description and labels.
	Name string `json:"name"`
}

// ClusterSpec is everything a site declares.
type ClusterSpec struct {
	Network Network `json:"network"`
	Admin   Admin   `json:"admin"`
	GitOps  GitOps  `json:"gitops"`
	SOPS    SOPS    `json:"sops"`
	K3s     K3s     `json:"k3s"`
	NixOS   NixOS   `json:"nixos"`
	Nodes   []Node  `json:"nodes"`
}

// Network is the layer-2/3 setup shared by every node.
type Network struct {
	// Subnet is the nodes' IPv4 network in CIDR form, e.g. 192.168.1.0/24.
	Subnet string `json:"subnet"`
	// Gateway is the default route, inside Subnet.
	Gateway string `json:"gateway"`
	// DNS servers; defaults to [Gateway].
	DNS []string `json:"dns,omitempty"`
	// Interface is the NIC that carries Subnet on every node (default eno1); a node may override it.
	Interface string `json:"interface,omitempty"`
	// LoadBalancerPool is the MetalLB address range; no node may sit inside it.
	LoadBalancerPool IPRange `json:"loadBalancerPool"`
	// ServiceIPs are the fixed LoadBalancer addresses of the platform services, inside the pool.
	ServiceIPs ServiceIPs `json:"serviceIPs"`
}

// IPRange is an inclusive IPv4 range.
type IPRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// String renders the range as MetalLB writes it: "start-end".
func (r IPRange) String() string { return r.Start + "-" + r.End }

// ServiceIPs are the fixed LoadBalancer IPs of the platform services.
type ServiceIPs struct {
	ArgoCD   string `json:"argocd"`
	Longhorn string `json:"longhorn"`
	Traefik  string `json:"traefik"`
}

// Admin is the one login user on every node.
type Admin struct {
	// User is the admin account (in wheel); default "admin".
	User string `json:"user,omitempty"`
	// SSHKeys are OpenSSH public keys (authorized_keys lines); password login is off, so at least one.
	SSHKeys []string `json:"sshKeys"`
}

// GitOps is the repository ArgoCD's root app-of-apps tracks.
type GitOps struct {
	RepoURL string `json:"repoURL"`
	// Revision is the branch, tag or commit; default "main".
	Revision string `json:"revision,omitempty"`
	// Path is the directory of the app-of-apps; default "manifests/platform".
	Path string `json:"path,omitempty"`
}

// SOPS configures secret encryption (sops-nix on the nodes, .sops.yaml in the tree).
type SOPS struct {
	// AgeRecipients are age X25519 public keys (age1...) that can decrypt the secrets.
	AgeRecipients []string `json:"ageRecipients"`
}

// K3s configures the Kubernetes distribution.
type K3s struct {
	// Package is the nixpkgs attribute of k3s, e.g. "k3s" or "k3s_1_33"; default "k3s".
	Package string `json:"package,omitempty"`
	// TokenSecret is the sops-nix secret (a key in secrets/secrets.yaml) holding the cluster
	// token; default "k3s-token". The token itself is never in the spec or the rendered tree.
	TokenSecret string `json:"tokenSecret,omitempty"`
	// ExtraFlags are appended to every node's k3s command line (servers and agents).
	ExtraFlags []string `json:"extraFlags,omitempty"`
	// ServerFlags are appended on servers only (k3s agents reject server flags).
	ServerFlags []string `json:"serverFlags,omitempty"`
}

// NixOS configures the operating system layer.
type NixOS struct {
	// Release is the NixOS release, e.g. "25.11": the flake follows nixpkgs' nixos-<release>
	// branch and system.stateVersion is set to it. Default DefaultNixOSRelease.
	Release string `json:"release,omitempty"`
	// TimeZone is an IANA zone name; default "UTC".
	TimeZone string `json:"timeZone,omitempty"`
	// AutoUpgrade makes every node rebuild itself nightly from the flake in spec.gitops.repoURL
	// (directory nixos/, revision spec.gitops.revision), without rebooting. Off by default:
	// rolling upgrades are `kubectl nerv node upgrade`'s job.
	AutoUpgrade bool `json:"autoUpgrade,omitempty"`
}

// Node is one machine.
type Node struct {
	// Name is the hostname (an RFC 1123 label) and the flake's nixosConfigurations key.
	Name string `json:"name"`
	// IP is the node's static IPv4 address inside the subnet and outside the pool.
	IP string `json:"ip"`
	// Role is "server" (control plane + etcd) or "agent".
	Role string `json:"role"`
	// Disk is the block device disko partitions and wipes, e.g. /dev/nvme0n1.
	Disk string `json:"disk"`
	// ClusterInit marks the one server that bootstraps embedded etcd.
	ClusterInit bool `json:"clusterInit,omitempty"`
	// Interface overrides spec.network.interface for this node.
	Interface string `json:"interface,omitempty"`
	// Labels are Kubernetes node labels k3s registers the node with.
	Labels map[string]string `json:"labels,omitempty"`
}

// IsServer reports whether the node runs the control plane.
func (n *Node) IsServer() bool { return n.Role == RoleServer }

// Source is the file the spec was loaded from ("" for a spec built in code).
func (c *Cluster) Source() string { return c.source }

// SetSource sets the label errors use for this spec (Load sets it to the path).
func (c *Cluster) SetSource(s string) { c.source = s }
