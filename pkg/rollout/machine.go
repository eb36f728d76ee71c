package rollout

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Machine changes the operating system of a node. NixOS is the real one; the roll-out only
// sees this interface.
type Machine interface {
	// Install builds the node's new generation, copies it and makes it the boot default,
	// without activating it (nixos-rebuild boot).
	Install(ctx context.Context, t Target, out func(line string)) error
	// KernelChanged reports whether booting the new generation changes the kernel, initrd
	// or kernel modules, and says what it compared.
	KernelChanged(ctx context.Context, t Target) (changed bool, detail string, err error)
	// Switch activates the new generation in place (nixos-rebuild switch).
	Switch(ctx context.Context, t Target, out func(line string)) error
	// Reboot restarts the node into its boot default.
	Reboot(ctx context.Context, t Target) error
	// Rollback activates the previous generation (nixos-rebuild switch --rollback).
	Rollback(ctx context.Context, t Target, out func(line string)) error
}

// Remote runs one command on a node over SSH, the host key verified, and returns its
// standard output. pkg/sshclient provides it.
type Remote interface {
	Run(ctx context.Context, t Target, command string) ([]byte, error)
}

// Default paths and commands on a NixOS node.
const (
	// DefaultBootedSystem is the generation the running kernel booted.
	DefaultBootedSystem = "/run/booted-system"
	// DefaultSystemProfile is the newest generation: `nixos-rebuild boot` points it at the
	// new one without activating it (so /run/current-system has not moved yet).
	DefaultSystemProfile = "/nix/var/nix/profiles/system"
	// DefaultRebootCommand schedules the reboot a moment later through a transient systemd
	// timer, so the SSH session ends with a clean exit status instead of a cut connection.
	DefaultRebootCommand = "sudo systemd-run --on-active=2 systemctl reboot"
)

// NixOS drives nodes with nixos-rebuild over SSH (--target-host) and reads them over Remote.
type NixOS struct {
	// FlakeDir is the rendered NixOS tree (<dir>/nixos); hosts are its nixosConfigurations.
	FlakeDir string
	// Rebuild is the nixos-rebuild program; "nixos-rebuild" (from PATH) when empty.
	Rebuild string
	// User logs in on the nodes (the spec's admin user); it needs passwordless sudo.
	User string
	// IdentityFile and KnownHostsFile are passed to ssh; strict host key checking is always on.
	IdentityFile   string
	KnownHostsFile string
	// Addresses overrides where a node is reached, node name → host:port (tests use loopback).
	Addresses map[string]string
	Remote    Remote
	// BootedSystem, SystemProfile and RebootCommand default to the Default* constants; tests
	// point the paths at a directory of symlinks shaped like a NixOS system.
	BootedSystem, SystemProfile, RebootCommand string
}

// Address is where the node is reached: the override if any, else IP:22.
func (n *NixOS) Address(t Target) (host string, port int, err error) {
	addr, ok := n.Addresses[t.Name]
	if !ok {
		return t.IP, 22, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address of node %s: %q is not HOST:PORT: %w", t.Name, addr, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("address of node %s: %q: port must be 1-65535", t.Name, addr)
	}
	return h, port, nil
}

// RebuildArgs is the nixos-rebuild command line for action (boot or switch) on t.
func (n *NixOS) RebuildArgs(t Target, action string) ([]string, error) {
	host, _, err := n.Address(t)
	if err != nil {
		return nil, err
	}
	args := []string{action}
	if action == "rollback" {
		args = []string{"switch", "--rollback"}
	} else {
		args = append(args, "--flake", n.FlakeDir+"#"+t.Name)
	}
	return append(args, "--target-host", n.User+"@"+host, "--use-remote-sudo"), nil
}

// SSHOptions is NIX_SSHOPTS for nixos-rebuild's ssh and nix-copy-closure: the same key,
// known_hosts file and port as NERV's own SSH, host keys verified. NIX_SSHOPTS is split on
// spaces, so paths with spaces are refused.
func (n *NixOS) SSHOptions(t Target) (string, error) {
	_, port, err := n.Address(t)
	if err != nil {
		return "", err
	}
	opts := []string{"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}
	if n.KnownHostsFile != "" {
		opts = append(opts, "-o", "UserKnownHostsFile="+n.KnownHostsFile)
	}
	if n.IdentityFile != "" {
		opts = append(opts, "-o", "IdentitiesOnly=yes", "-i", n.IdentityFile)
	}
	opts = append(opts, "-p", strconv.Itoa(port))
	for _, o := range opts {
		if strings.ContainsAny(o, " \t\n") {
			return "", fmt.Errorf("ssh option %q contains a space: nixos-rebuild splits NIX_SSHOPTS on spaces; use a path without spaces", o)
		}
	}
	return strings.Join(opts, " "), nil
}

// Command renders the command line a person would type, for messages and dry runs.
func (n *NixOS) Command(t Target, action string) string {
	args, err := n.RebuildArgs(t, action)
	if err != nil {
		return err.Error()
	}
	opts, _ := n.SSHOptions(t)
	return "NIX_SSHOPTS='" + opts + "' " + n.rebuild() + " " + strings.Join(args, " ")
}

func (n *NixOS) rebuild() string {
	if n.Rebuild != "" {
		return n.Rebuild
	}
	return "nixos-rebuild"
}

// Install runs nixos-rebuild boot.
func (n *NixOS) Install(ctx context.Context, t Target, out func(string)) error {
	return n.run(ctx, t, "boot", out)
}

// Switch runs nixos-rebuild switch. The generation was built and copied by Install, so this
// evaluates the same flake again and activates.
func (n *NixOS) Switch(ctx context.Context, t Target, out func(string)) error {
	return n.run(ctx, t, "switch", out)
}

// Rollback runs nixos-rebuild switch --rollback.
func (n *NixOS) Rollback(ctx context.Context, t Target, out func(string)) error {
	return n.run(ctx, t, "rollback", out)
}

func (n *NixOS) run(ctx context.Context, t Target, action string, out func(string)) error {
	args, err := n.RebuildArgs(t, action)
	if err != nil {
		return err
	}
	opts, err := n.SSHOptions(t)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, n.rebuild(), args...)
	// Our options first: ssh keeps the first value of an option, so a NIX_SSHOPTS the user
	// exported can add options but cannot turn host key checking off.
	sshopts := opts
	if prev := os.Getenv("NIX_SSHOPTS"); prev != "" {
		sshopts += " " + prev
	}
	cmd.Env = append(os.Environ(), "NIX_SSHOPTS="+sshopts)
	tail := &tailLines{max: 15}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			tail.add(sc.Text())
			if out != nil {
				out(sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	})
	err = cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s failed (%v); last output:\n%s", n.Command(t, action), ee, tail)
		}
		return fmt.Errorf("running %s: %w", n.rebuild(), err)
	}
	return nil
}

// kernelFiles are what a reboot would change: NixOS's own system.autoUpgrade.allowReboot
// compares the same three.
var kernelFiles = []string{"kernel", "initrd", "kernel-modules"}

// KernelChanged resolves kernel, initrd and kernel-modules of the booted system and of the
// system profile over SSH. Store paths name their content's inputs, so equal paths mean the
// same kernel; any difference needs a reboot to take effect.
func (n *NixOS) KernelChanged(ctx context.Context, t Target) (bool, string, error) {
	if n.Remote == nil {
		return false, "", errors.New("no SSH connection configured")
	}
	booted, profile := or(n.BootedSystem, DefaultBootedSystem), or(n.SystemProfile, DefaultSystemProfile)
	var paths []string
	for _, dir := range []string{booted, profile} {
		for _, f := range kernelFiles {
			paths = append(paths, shellQuote(dir+"/"+f))
		}
	}
	// -e: every component must exist, so a system without one fails loudly instead of
	// comparing two made-up paths.
	out, err := n.Remote.Run(ctx, t, "readlink -e -- "+strings.Join(paths, " "))
	if err != nil {
		return false, "", fmt.Errorf("reading kernel paths on %s: %w", t.Name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2*len(kernelFiles) {
		return false, "", fmt.Errorf("reading kernel paths on %s: want %d paths, got %q", t.Name, 2*len(kernelFiles), out)
	}
	var changed []string
	for i, f := range kernelFiles {
		if lines[i] != lines[i+len(kernelFiles)] {
			changed = append(changed, fmt.Sprintf("%s %s → %s", f, lines[i], lines[i+len(kernelFiles)]))
		}
	}
	if len(changed) == 0 {
		return false, "kernel, initrd and modules unchanged (" + lines[0] + ")", nil
	}
	return true, strings.Join(changed, "; "), nil
}

// Reboot runs RebootCommand over SSH.
func (n *NixOS) Reboot(ctx context.Context, t Target) error {
	if n.Remote == nil {
		return errors.New("no SSH connection configured")
	}
	if _, err := n.Remote.Run(ctx, t, or(n.RebootCommand, DefaultRebootCommand)); err != nil {
		return fmt.Errorf("rebooting %s: %w", t.Name, err)
	}
	return nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tailLines keeps the last max lines of output for an error message.
type tailLines struct {
	max   int
	lines []string
}

func (t *tailLines) add(l string) {
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *tailLines) String() string {
	var b bytes.Buffer
	for _, l := range t.lines {
		b.WriteString("  " + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
