package rollout

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/internal/sshtest"
	"github.com/nerv-platform/nerv/pkg/sshclient"
)

// sshRemote reaches every node at srv through pkg/sshclient, host key verified.
func sshRemote(t *testing.T, srv *sshtest.Server) Remote {
	t.Helper()
	return &SSHRemote{
		User: srv.User, IdentityFile: srv.ClientKeyPath, KnownHostsFile: srv.KnownHostsFile,
		Address: func(Target) (string, int, error) { return srv.Host, srv.Port, nil },
	}
}

func TestSSHRemoteRefusesUnknownAndChangedHostKeys(t *testing.T) {
	srv := sshtest.Start(t)
	r := sshRemote(t, srv).(*SSHRemote)
	out, err := r.Run(context.Background(), Target{Name: "n"}, "echo hello")
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	// A node whose host key is not on file is refused, not trusted on first use.
	empty := t.TempDir() + "/known_hosts"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r2 := *r
	r2.KnownHostsFile = empty
	var unknown *sshclient.UnknownHostKeyError
	if _, err := r2.Run(context.Background(), Target{Name: "n"}, "true"); !errors.As(err, &unknown) {
		t.Errorf("unknown host key: err = %v, want *sshclient.UnknownHostKeyError", err)
	}
	srv.RotateHostKey(t)
	var changed *sshclient.HostKeyChangedError
	if _, err := r.Run(context.Background(), Target{Name: "n"}, "true"); !errors.As(err, &changed) {
		t.Errorf("changed host key: err = %v, want *sshclient.HostKeyChangedError", err)
	}
}
