package join

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nerv-platform/nerv/pkg/sshclient"
)

// InstallerPrefix labels nixos-anywhere's streamed output.
const InstallerPrefix = "[nixos-anywhere] "

// interruptGrace is how long nixos-anywhere gets to stop after SIGINT before it is killed.
const interruptGrace = 10 * time.Second

// installCommand is the nixos-anywhere command line; staging is the extra-files dir.
func (j *joiner) installCommand(staging string, generateHardware bool) []string {
	o := j.o
	host, port := j.sshHostPort()
	args := []string{o.NixosAnywhere,
		"--flake", filepath.Join(o.OutDir, "nixos") + "#" + o.Node,
		"--target-host", o.SSHUser + "@" + host,
		"--extra-files", staging,
	}
	if port != 22 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	if o.IdentityFile != "" {
		args = append(args, "-i", o.IdentityFile)
	}
	if o.KnownHostsFile != "" {
		// nixos-anywhere's ssh checks the host against the same file this join verified.
		args = append(args, "--ssh-option", "UserKnownHostsFile="+o.KnownHostsFile)
	}
	if generateHardware {
		args = append(args, "--generate-hardware-config", "nixos-generate-config", j.hardwarePath())
	}
	return args
}

// installDone: the machine is already a Node of the cluster.
func (j *joiner) installDone(ctx context.Context) (bool, string, error) {
	if j.first && !j.contextPresent() {
		return false, "", nil
	}
	if j.first {
		j.kubeContext = j.cluster.Metadata.Name
	}
	k, err := j.client()
	if err != nil {
		if j.first {
			return false, "", nil
		}
		return false, "", usagef("connecting to the cluster: %w", err)
	}
	_, err = k.CoreV1().Nodes().Get(ctx, j.o.Node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, "", nil
	case err != nil:
		return false, "", fmt.Errorf("reading Node %s: %w", j.o.Node, err)
	}
	return true, fmt.Sprintf("%s is already a Node of the cluster", j.o.Node), nil
}

// install stages the node's secrets in a private temp dir, runs nixos-anywhere with its
// output streamed under a prefix, and removes the temp dir on every way out (including
// cancellation by Ctrl-C, which reaches here as ctx being done).
func (j *joiner) install(ctx context.Context) (string, error) {
	o := j.o
	if o.ConfirmInstall != nil {
		p := j.planned
		if p == nil {
			p = &Plan{Command: j.installCommand(stagingPlaceholder, false)}
		}
		ok, err := o.ConfirmInstall(p, o.Node, j.node.Disk)
		if err != nil {
			return "", usage(err)
		}
		if !ok {
			return "", usagef("not confirmed: nothing installed (the plan is written; re-run to resume)")
		}
	}
	ageKey, err := loadAgeKey(o.AgeKeyFile, j.cluster.Spec.SOPS.AgeRecipients)
	if err != nil {
		return "", usage(err)
	}
	dir, err := os.MkdirTemp("", "nerv-join-"+o.Node+"-")
	if err != nil {
		return "", fmt.Errorf("staging: %w", err)
	}
	defer os.RemoveAll(dir)
	// MkdirTemp makes dir 0700; say so explicitly, it is what keeps the key private.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("staging: %w", err)
	}
	root := filepath.Join(dir, "root")
	hostPub, err := stageFiles(root, ageKey)
	if err != nil {
		return "", fmt.Errorf("staging: %w", err)
	}

	captured, err := j.hardwareCaptured()
	if err != nil {
		return "", err
	}
	args := j.installCommand(root, !captured)
	fmt.Fprintf(o.Out, "running: %s\n", strings.Join(quoteArgs(args), " "))
	cmd := exec.Command(args[0], args[1:]...)
	out := sshclient.NewPrefixWriter(o.Out, InstallerPrefix)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: Ctrl-C is forwarded once, as SIGINT to the whole group, and the
	// ssh and nix children nixos-anywhere starts stop with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", usagef("starting %s: %w (install nixos-anywhere, e.g. nix profile install github:nix-community/nixos-anywhere)", args[0], err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-waited:
		case <-time.After(interruptGrace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		out.Flush()
		return "", fmt.Errorf("interrupted: nixos-anywhere stopped, staged secrets removed; re-run the same command to resume: %w", ctx.Err())
	}
	out.Flush()
	if err != nil {
		return "", fmt.Errorf("nixos-anywhere failed (%v); its output is above. Fix the cause and re-run the same command to resume", err)
	}
	if err := sshclient.ReplaceKnownHost(j.knownHosts(), o.SSHAddress, hostPub); err != nil {
		return "", err
	}
	j.nodeHostKey = ssh.FingerprintSHA256(hostPub)
	return fmt.Sprintf("NixOS installed; node host key %s recorded for %s", j.nodeHostKey, o.SSHAddress), nil
}

func (j *joiner) knownHosts() string {
	if j.o.KnownHostsFile != "" {
		return j.o.KnownHostsFile
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".ssh", "known_hosts")
}

// stageFiles lays out the extra files nixos-anywhere copies onto the new system: the age
// key for sops-nix and a fresh SSH host key (so the installed system's key is known before
// it first boots). Directories that exist on every system get the usual 0755 (tar restores
// them over the target's); the secret files are 0600 in 0700 directories.
func stageFiles(root string, ageKey []byte) (ssh.PublicKey, error) {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"", 0o755}, {"var", 0o755}, {"var/lib", 0o755}, {"var/lib/sops-nix", 0o700},
		{"etc", 0o755}, {"etc/ssh", 0o755},
	} {
		p := filepath.Join(root, d.path)
		if err := os.Mkdir(p, d.mode); err != nil {
			return nil, err
		}
		if err := os.Chmod(p, d.mode); err != nil { // umask-proof
			return nil, err
		}
	}
	if err := writePrivate(filepath.Join(root, "var/lib/sops-nix/key.txt"), ageKey); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := writePrivate(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"), pem.EncodeToMemory(block)); err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key.pub"), ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return nil, err
	}
	return sshPub, nil
}

// writePrivate creates a 0600 file (O_EXCL: never through a planted symlink).
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadAgeKey reads the age identities in file and keeps those whose recipient is in
// spec.sops.ageRecipients: only a key the node needs is copied to it. The returned bytes
// are secret; errors never include them.
func loadAgeKey(file string, recipients []string) ([]byte, error) {
	if file == "" {
		return nil, errors.New("no age key: pass --age-key FILE (the identity sops-nix decrypts the node's secrets with)")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the age key: %w", err)
	}
	want := map[string]bool{}
	for _, r := range recipients {
		want[r] = true
	}
	var keep bytes.Buffer
	found := 0
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: not an age X25519 identity (AGE-SECRET-KEY-1...)", file, i+1)
		}
		if want[id.Recipient().String()] {
			fmt.Fprintf(&keep, "# public key: %s\n%s\n", id.Recipient(), line)
			found++
		}
	}
	if found == 0 {
		return nil, fmt.Errorf("%s holds no identity for spec.sops.ageRecipients (%s): the node could not decrypt its secrets; pass the matching key with --age-key",
			file, strings.Join(recipients, ", "))
	}
	return keep.Bytes(), nil
}
