package spec

import (
	"errors"
	"strings"
	"testing"
)

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH8YwlPJcA+utjJJZBE3taGtUkfbGkcYh0p3JP8okMp2 admin@nerv"
	ageA = "age1jv360l9cd6xptfh2x4ks74cmt88v3qaekwnau7mluwdzwy79vc3s0nu95l"
)

func agent(name, ip string) Node { return Node{Name: name, IP: ip, Role: RoleAgent, Disk: "/dev/sda"} }
func server(name, ip string) Node {
	return Node{Name: name, IP: ip, Role: RoleServer, Disk: "/dev/sda"}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Cluster)
		want   []string // every "field: detail" line, in order
	}{
		{"duplicate node name", func(c *Cluster) { c.Spec.Nodes = append(c.Spec.Nodes, agent("misato", "192.168.1.101")) },
			[]string{`spec.nodes[1].name: "misato" is already the name of spec.nodes[0]`}},
		{"duplicate node IP", func(c *Cluster) { c.Spec.Nodes = append(c.Spec.Nodes, agent("kaji", "192.168.1.100")) },
			[]string{`spec.nodes[1].ip: 192.168.1.100 is already the address of spec.nodes[0] (misato)`}},
		{"node IP outside subnet", func(c *Cluster) { c.Spec.Nodes[0].IP = "10.0.0.5" },
			[]string{`spec.nodes[0].ip: 10.0.0.5 is outside the subnet 192.168.1.0/24`}},
		{"node IP in pool", func(c *Cluster) {
			c.Spec.Nodes = append(c.Spec.Nodes, agent("a", "192.168.1.101"), agent("b", "192.168.1.111"), agent("c", "192.168.1.112"))
		},
			[]string{`spec.nodes[2].ip: 192.168.1.111 is inside the LoadBalancer pool 192.168.1.110-192.168.1.115`,
				`spec.nodes[3].ip: 192.168.1.112 is inside the LoadBalancer pool 192.168.1.110-192.168.1.115`}},
		{"node IP is gateway", func(c *Cluster) { c.Spec.Nodes[0].IP = "192.168.1.1" },
			[]string{`spec.nodes[0].ip: 192.168.1.1 is the gateway's address`}},
		{"node IP is broadcast", func(c *Cluster) { c.Spec.Nodes[0].IP = "192.168.1.255" },
			[]string{`spec.nodes[0].ip: 192.168.1.255 is the broadcast address of 192.168.1.0/24`}},
		{"node IP malformed", func(c *Cluster) { c.Spec.Nodes[0].IP = "192.168.1" },
			[]string{`spec.nodes[0].ip: "192.168.1" is not an IP address`}},
		{"node IP v6", func(c *Cluster) { c.Spec.Nodes[0].IP = "fd00::1" },
			[]string{`spec.nodes[0].ip: fd00::1 is not an IPv4 address: NERV supports IPv4 networks only`}},
		{"gateway outside subnet", func(c *Cluster) { c.Spec.Network.Gateway = "192.168.2.1" },
			[]string{`spec.network.gateway: 192.168.2.1 is outside the subnet 192.168.1.0/24`}},
		{"gateway in pool", func(c *Cluster) { c.Spec.Network.Gateway = "192.168.1.113" },
			[]string{`spec.network.gateway: 192.168.1.113 is inside the LoadBalancer pool 192.168.1.110-192.168.1.115`}},
		{"subnet host bits", func(c *Cluster) { c.Spec.Network.Subnet = "192.168.1.7/24" },
			[]string{`spec.network.subnet: 192.168.1.7/24 has host bits set: did you mean 192.168.1.0/24?`}},
		{"subnet malformed", func(c *Cluster) { c.Spec.Network.Subnet = "192.168.1.0" },
			[]string{`spec.network.subnet: "192.168.1.0" is not a CIDR network, e.g. 192.168.1.0/24`}},
		{"pool outside subnet", func(c *Cluster) { c.Spec.Network.LoadBalancerPool.End = "192.168.2.5" },
			[]string{`spec.network.loadBalancerPool.end: 192.168.2.5 is outside the subnet 192.168.1.0/24`}},
		{"pool reversed", func(c *Cluster) {
			c.Spec.Network.LoadBalancerPool = IPRange{Start: "192.168.1.115", End: "192.168.1.110"}
		}, []string{`spec.network.loadBalancerPool: start 192.168.1.115 is after end 192.168.1.110`}},
		{"service IP outside pool", func(c *Cluster) { c.Spec.Network.ServiceIPs.Traefik = "192.168.1.120" },
			[]string{`spec.network.serviceIPs.traefik: 192.168.1.120 is outside the LoadBalancer pool 192.168.1.110-192.168.1.115`}},
		{"service IPs shared", func(c *Cluster) { c.Spec.Network.ServiceIPs.Longhorn = "192.168.1.110" },
			[]string{`spec.network.serviceIPs.longhorn: 192.168.1.110 is already the address of spec.network.serviceIPs.argocd`}},
		{"dns malformed", func(c *Cluster) { c.Spec.Network.DNS = []string{"1.1.1.1", "dns.google"} },
			[]string{`spec.network.dns[1]: "dns.google" is not an IPv4 address`}},
		{"interface", func(c *Cluster) { c.Spec.Network.Interface = "a-very-long-interface0" },
			[]string{`spec.network.interface: "a-very-long-interface0" is not a network interface name (at most 15 letters, digits, '_', '.' or '-')`}},
		{"no clusterInit", func(c *Cluster) { c.Spec.Nodes[0].ClusterInit = false },
			[]string{`spec.nodes[0].clusterInit: no server has clusterInit: true: set it on exactly one server (usually the first, misato)`}},
		{"two clusterInit", func(c *Cluster) {
			s := server("ritsuko", "192.168.1.101")
			s.ClusterInit = true
			c.Spec.Nodes = append(c.Spec.Nodes, s)
		}, []string{`spec.nodes[1].clusterInit: ritsuko also has clusterInit: true, as does misato: exactly one server initialises the cluster`}},
		{"agent clusterInit", func(c *Cluster) {
			a := agent("kaji", "192.168.1.102")
			a.ClusterInit = true
			c.Spec.Nodes = append(c.Spec.Nodes, a)
		}, []string{`spec.nodes[1].clusterInit: only a server can initialise the cluster; kaji is an agent`}},
		{"agent without server", func(c *Cluster) {
			c.Spec.Nodes = []Node{agent("ritsuko", "192.168.1.101"), agent("kaji", "192.168.1.102")}
		},
			[]string{`spec.nodes[0]: agent ritsuko has no server to join: add a node with role: server and clusterInit: true`,
				`spec.nodes[1]: agent kaji has no server to join: add a node with role: server and clusterInit: true`}},
		{"no nodes", func(c *Cluster) { c.Spec.Nodes = nil },
			[]string{`spec.nodes: required: at least one node (a server with clusterInit: true)`}},
		{"hostname uppercase", func(c *Cluster) { c.Spec.Nodes[0].Name = "Misato" },
			[]string{`spec.nodes[0].name: "Misato" is not an RFC 1123 hostname (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)`}},
		{"hostname dot", func(c *Cluster) { c.Spec.Nodes[0].Name = "misato.lan" },
			[]string{`spec.nodes[0].name: "misato.lan" is not an RFC 1123 hostname`}},
		{"hostname too long", func(c *Cluster) { c.Spec.Nodes[0].Name = strings.Repeat("a", 64) },
			[]string{`spec.nodes[0].name: "` + strings.Repeat("a", 64) + `" is not an RFC 1123 hostname`}},
		{"hostname dash", func(c *Cluster) { c.Spec.Nodes[0].Name = "-misato" },
			[]string{`spec.nodes[0].name: "-misato" is not an RFC 1123 hostname`}},
		{"role", func(c *Cluster) { c.Spec.Nodes[0].Role = "master" },
			[]string{`spec.nodes[0].role: "master" is not a role: use server or agent`}},
		{"disk missing", func(c *Cluster) { c.Spec.Nodes[0].Disk = "" },
			[]string{`spec.nodes[0].disk: required: the disk disko partitions and WIPES`}},
		{"disk not a device", func(c *Cluster) { c.Spec.Nodes[0].Disk = "sda" },
			[]string{`spec.nodes[0].disk: "sda" is not a block device path under /dev/`}},
		{"label", func(c *Cluster) { c.Spec.Nodes[0].Labels = map[string]string{"zone": "rack 1"} },
			[]string{`spec.nodes[0].labels[zone]: "rack 1" is not a Kubernetes label value`}},
		{"restricted label", func(c *Cluster) {
			c.Spec.Nodes[0].Labels = map[string]string{"node-role.kubernetes.io/worker": "true", "topology.kubernetes.io/zone": "a", "node.kubernetes.io/pool": "x"}
		}, []string{`spec.nodes[0].labels[node-role.kubernetes.io/worker]: the kubelet may not set labels under kubernetes.io/ or k8s.io/`}},
		{"ssh key malformed", func(c *Cluster) { c.Spec.Admin.SSHKeys = []string{keyA, "ssh-ed25519 AAAAnotbase64 me@host"} },
			[]string{`spec.admin.sshKeys[1]: is not an SSH public key (`}},
		{"ssh key truncated", func(c *Cluster) { c.Spec.Admin.SSHKeys = []string{keyA[:40]} },
			[]string{`spec.admin.sshKeys[0]: is not an SSH public key (`}},
		{"ssh private key", func(c *Cluster) {
			c.Spec.Admin.SSHKeys = []string{"-----BEGIN OPENSSH PRIVATE KEY-----"}
		}, []string{`spec.admin.sshKeys[0]: is a private key: put the public key (the .pub file) here`}},
		{"ssh two keys in one entry", func(c *Cluster) { c.Spec.Admin.SSHKeys = []string{keyA + "\n" + keyA} },
			[]string{`spec.admin.sshKeys[0]: holds more than one line: give one public key per list entry`}},
		{"no ssh keys", func(c *Cluster) { c.Spec.Admin.SSHKeys = nil },
			[]string{`spec.admin.sshKeys: required: at least one SSH public key; password login is disabled`}},
		{"admin root", func(c *Cluster) { c.Spec.Admin.User = "root" },
			[]string{`spec.admin.user: root cannot be the admin user`}},
		{"admin name", func(c *Cluster) { c.Spec.Admin.User = "Gendo Ikari" },
			[]string{`spec.admin.user: "Gendo Ikari" is not a valid user name`}},
		{"age recipient malformed", func(c *Cluster) { c.Spec.SOPS.AgeRecipients = []string{ageA, "age1notakey"} },
			[]string{`spec.sops.ageRecipients[1]: "age1notakey" is not an age X25519 recipient (age1...): `}},
		{"age secret key", func(c *Cluster) {
			c.Spec.SOPS.AgeRecipients = []string{"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"}
		}, []string{`spec.sops.ageRecipients[0]: is an age secret key: put its public key here`}},
		{"age duplicate", func(c *Cluster) { c.Spec.SOPS.AgeRecipients = []string{ageA, ageA} },
			[]string{`spec.sops.ageRecipients[1]: duplicates spec.sops.ageRecipients[0]`}},
		{"no age recipients", func(c *Cluster) { c.Spec.SOPS.AgeRecipients = nil },
			[]string{`spec.sops.ageRecipients: required: at least one age public key`}},
		{"repo URL", func(c *Cluster) { c.Spec.GitOps.RepoURL = "github.com/x/y" },
			[]string{`spec.gitops.repoURL: "github.com/x/y" is not a Git URL`}},
		{"repo URL password", func(c *Cluster) { c.Spec.GitOps.RepoURL = "https://me:hunter2@github.com/x/y.git" },
			[]string{`spec.gitops.repoURL: contains a password: credentials belong in an ArgoCD repository secret`}},
		{"gitops path", func(c *Cluster) { c.Spec.GitOps.Path = "../elsewhere" },
			[]string{`spec.gitops.path: "../elsewhere" must be a relative path inside the repository`}},
		{"k3s managed flag", func(c *Cluster) { c.Spec.K3s.ExtraFlags = []string{"--token=abc"} },
			[]string{`spec.k3s.extraFlags[0]: --token is set by NERV from spec.k3s.tokenSecret; remove it here`}},
		{"k3s flag shape", func(c *Cluster) { c.Spec.K3s.ServerFlags = []string{"--tls-san foo"} },
			[]string{`spec.k3s.serverFlags[0]: "--tls-san foo" is not a k3s flag`}},
		{"k3s package", func(c *Cluster) { c.Spec.K3s.Package = "rke2" },
			[]string{`spec.k3s.package: "rke2" is not a k3s package in nixpkgs`}},
		{"nixos release", func(c *Cluster) { c.Spec.NixOS.Release = "unstable" },
			[]string{`spec.nixos.release: "unstable" is not a NixOS release such as 25.11`}},
		{"cluster name", func(c *Cluster) { c.Metadata.Name = "NERV_1" },
			[]string{`metadata.name: "NERV_1" is not an RFC 1123 label`}},
		{"several at once, document order", func(c *Cluster) {
			c.Spec.Network.ServiceIPs.ArgoCD = "192.168.1.50"
			c.Spec.Nodes[0].IP = "192.168.1.110"
		}, []string{`spec.network.serviceIPs.argocd: 192.168.1.50 is outside the LoadBalancer pool`,
			`spec.nodes[0].ip: 192.168.1.110 is inside the LoadBalancer pool 192.168.1.110-192.168.1.115`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid(t)
			tt.mutate(c)
			_, err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			if len(ve.Errors) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ve.Errors), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := ve.Errors[i].String(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d:\n got  %s\n want %s…", i, got, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "nerv.yaml: ") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestValidateWarnsEvenServers(t *testing.T) {
	c := valid(t)
	c.Spec.Nodes = append(c.Spec.Nodes, server("ritsuko", "192.168.1.101"))
	warnings, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "2 servers: embedded etcd needs a majority") {
		t.Fatalf("warnings %q", warnings)
	}
	c.Spec.Nodes = append(c.Spec.Nodes, server("kaji", "192.168.1.102"))
	if warnings, _ := c.Validate(); len(warnings) != 0 {
		t.Fatalf("3 servers warned: %q", warnings)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	c := valid(t)
	c.Spec.Nodes[0].Role = ""
	c.Spec.Nodes[0].Disk = ""
	_, err := c.Validate()
	want := "nerv.yaml: 2 problems:\n  spec.nodes[0].role: required: server or agent\n  spec.nodes[0].disk: required"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !ve.Has("spec.nodes[0].disk") || ve.Has("spec.nodes[0].ip") {
		t.Fatalf("Has is wrong for %v", err)
	}
}
