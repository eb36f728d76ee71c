package rollout

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"

	"github.com/nerv-platform/nerv/internal/sshtest"
)

// sshRemote reaches every node at srv. TEMPORARY: OpenSSH's client until pkg/sshclient lands.
func sshRemote(t *testing.T, srv *sshtest.Server) Remote {
	return remoteFunc(func(ctx context.Context, _ Target, command string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "ssh", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+srv.KnownHostsFile,
			"-i", srv.ClientKeyPath, "-p", strconv.Itoa(srv.Port), srv.User+"@"+srv.Host, command)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%w: %s", err, errb.String())
		}
		return out.Bytes(), nil
	})
}

type remoteFunc func(context.Context, Target, string) ([]byte, error)

func (f remoteFunc) Run(ctx context.Context, t Target, c string) ([]byte, error) { return f(ctx, t, c) }
