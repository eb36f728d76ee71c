package cli

import "github.com/nerv-platform/nerv/pkg/rollout"

// nodeRemote is the SSH connection the roll-out reads nodes over (kernel check, reboot):
// pkg/sshclient with the same user, key, known_hosts file and addresses as nixos-rebuild.
func nodeRemote(o *NodeOptions, m *rollout.NixOS) (rollout.Remote, error) {
	return &rollout.SSHRemote{User: o.SSHUser, IdentityFile: o.IdentityFile, KnownHostsFile: o.KnownHostsFile, Address: m.Address}, nil
}
