package rollout

import (
	"context"
	"net"
	"strconv"

	"github.com/nerv-platform/nerv/pkg/sshclient"
)

// SSHRemote runs commands on nodes with pkg/sshclient: a node's host key must already be in
// KnownHostsFile (join recorded it); an unknown or changed key is refused, never accepted.
type SSHRemote struct {
	User, IdentityFile, KnownHostsFile string
	// Address resolves where a node is reached (NixOS.Address).
	Address func(Target) (string, int, error)
}

// Run dials the node, runs command and returns its standard output. A connection per
// command: a roll-out makes two or three per node, minutes apart, across reboots.
func (r *SSHRemote) Run(ctx context.Context, t Target, command string) ([]byte, error) {
	host, port, err := r.Address(t)
	if err != nil {
		return nil, err
	}
	c, err := sshclient.Dial(ctx, sshclient.Config{
		Addr:           net.JoinHostPort(host, strconv.Itoa(port)),
		User:           r.User,
		IdentityFile:   r.IdentityFile,
		KnownHostsFile: r.KnownHostsFile,
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Output(ctx, command)
}
