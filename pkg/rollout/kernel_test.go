package rollout

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/internal/sshtest"
)

// TestKernelChangedOverSSH reads the kernel links through the real sshd. The paths on the
// "node" are test directories (BootedSystem/SystemProfile), since this machine is not NixOS
// and /run/booted-system cannot be faked without root-owned changes to the host.
func TestKernelChangedOverSSH(t *testing.T) {
	srv := sshtest.Start(t)
	remote := sshRemote(t, srv)
	h := &harness{t: t}
	for _, tc := range []struct {
		name            string
		booted, profile string
		missing         string
		changed         bool
		err             string
	}{
		{name: "same kernel", booted: "linux-6.12.7", profile: "linux-6.12.7"},
		{name: "new kernel", booted: "linux-6.12.7", profile: "linux-6.18.1", changed: true},
		{name: "profile lacks initrd", booted: "linux-6.12.7", profile: "linux-6.12.7", missing: "initrd", err: "reading kernel paths on n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			sys := t.TempDir()
			booted, profile := filepath.Join(sys, "booted"), filepath.Join(sys, "profile")
			h.setKernel(booted, tc.booted)
			h.setKernel(profile, tc.profile)
			if tc.missing != "" {
				os.Remove(filepath.Join(profile, tc.missing))
			}
			m := &NixOS{Remote: remote, BootedSystem: booted, SystemProfile: profile}
			changed, detail, err := m.KernelChanged(context.Background(), Target{Name: "n1"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v (%s), want %v", changed, detail, tc.changed)
			}
			if tc.changed && !strings.Contains(detail, tc.profile) {
				t.Errorf("detail %q does not name the new kernel", detail)
			}
		})
	}
}
