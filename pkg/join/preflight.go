package join

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nerv-platform/nerv/pkg/spec"
)

// clusterCheckTimeout bounds the preflight's question to the cluster.
const clusterCheckTimeout = 20 * time.Second

// MinMemoryKiB is the least RAM nixos-anywhere's kexec installer works with (1.5 GiB).
const MinMemoryKiB = 1536 * 1024

// preflight checks, in order: the spec takes the node; the cluster is reachable and the name
// is free; SSH reaches the machine with a verified host key; the machine is big enough and
// has the disk. Nothing is written.
func (j *joiner) preflight(ctx context.Context) (string, error) {
	o := j.o
	var notes []string
	notes = append(notes, fmt.Sprintf("spec takes %s (%s %s, disk %s)", o.Node, j.node.Role, o.IP, j.node.Disk))

	// A wrong age key is bad input: catch it before anything is written.
	switch {
	case !o.DryRun:
		if _, err := loadAgeKey(o.AgeKeyFile, j.cluster.Spec.SOPS.AgeRecipients); err != nil {
			return "", usage(err)
		}
		notes = append(notes, "age key matches spec.sops.ageRecipients")
	case o.AgeKeyFile != "":
		if _, err := os.Stat(o.AgeKeyFile); err == nil {
			if _, err := loadAgeKey(o.AgeKeyFile, j.cluster.Spec.SOPS.AgeRecipients); err != nil {
				return "", usage(err)
			}
			notes = append(notes, "age key matches spec.sops.ageRecipients")
		}
	}

	remote := !o.DryRun || o.CheckRemote
	if !remote {
		notes = append(notes, "cluster and SSH checks skipped (--dry-run; add --check-remote to run them)")
		return strings.Join(notes, "; "), nil
	}

	installed, note, err := j.checkCluster(ctx)
	if err != nil {
		return "", err
	}
	notes = append(notes, note)
	if installed {
		// The machine already runs the installed system (root login off, installer gone):
		// the SSH and hardware checks are for installing, which is done.
		notes = append(notes, "SSH checks skipped: the node is already installed")
		return strings.Join(notes, "; "), nil
	}
	note, err = j.checkMachine(ctx)
	if err != nil {
		return "", err
	}
	notes = append(notes, note)
	return strings.Join(notes, "; "), nil
}

// checkSpec loads nerv.yaml, adds the node to a copy and validates the copy.
func (j *joiner) checkSpec() error {
	o := j.o
	if _, err := netip.ParseAddr(o.IP); err != nil || !strings.Contains(o.IP, ".") {
		return usagef("--ip %q is not an IPv4 address", o.IP)
	}
	if o.Role != spec.RoleServer && o.Role != spec.RoleAgent {
		return usagef("--role %q: use server or agent", o.Role)
	}
	raw, err := spec.Load(o.SpecPath)
	if err != nil {
		return usage(err)
	}
	cluster, err := spec.Load(o.SpecPath)
	if err != nil {
		return usage(err)
	}
	cluster.Default()
	j.first = len(cluster.Servers()) == 0
	n := spec.Node{Name: o.Node, IP: o.IP, Role: o.Role, Disk: o.Disk}
	// The very first server bootstraps the cluster (embedded etcd).
	n.ClusterInit = j.first && o.Role == spec.RoleServer

	if existing, ok := cluster.Node(o.Node); ok {
		if existing.IP != o.IP || existing.Role != o.Role {
			return usagef("%s: node %s is already in the spec as %s %s; remove it from spec.nodes or join with --ip %s --role %s",
				o.SpecPath, o.Node, existing.Role, existing.IP, existing.IP, existing.Role)
		}
		// Resuming: the spec already has this node, keep its disk and labels.
		j.inSpec = true
		j.first = existing.ClusterInit || (existing.IsServer() && cluster.FirstServer() == existing)
	} else {
		if err := cluster.AddNode(n); err != nil {
			return usagef("%s: %w", o.SpecPath, err)
		}
		if err := raw.AddNode(n); err != nil {
			return usagef("%s: %w", o.SpecPath, err)
		}
	}
	if _, err := cluster.Validate(); err != nil {
		return usagef("the spec would be invalid with %s: %w", o.Node, err)
	}
	j.raw, j.cluster = raw, cluster
	j.node, _ = cluster.Node(o.Node)
	if o.AdminUser == "" {
		j.o.AdminUser = cluster.Spec.Admin.User
	}
	return nil
}

// checkCluster reports whether the node is already installed (it is a Node of the cluster).
// The first server has no cluster to ask yet, unless a re-run finds its merged context.
func (j *joiner) checkCluster(ctx context.Context) (bool, string, error) {
	if j.first {
		if !j.inSpec {
			return false, "first server: it initialises the cluster (clusterInit), no cluster to check yet", nil
		}
		if !j.contextPresent() {
			return false, "first server, cluster not installed yet", nil
		}
		j.kubeContext = j.cluster.Metadata.Name
	}
	k, err := j.client()
	if err != nil {
		return false, "", usagef("connecting to the cluster: %w (the kubeconfig must reach an existing server before an agent or extra server can join)", err)
	}
	// A cluster that does not answer should fail the preflight promptly, not hang.
	gctx, cancel := context.WithTimeout(ctx, clusterCheckTimeout)
	defer cancel()
	node, err := k.CoreV1().Nodes().Get(gctx, j.o.Node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, fmt.Sprintf("cluster reachable, %s is not a Node yet", j.o.Node), nil
	case err != nil:
		return false, "", usagef("the cluster is not reachable: %w", err)
	case !j.inSpec:
		return false, "", usagef("%s is already a Node of the cluster but not in %s: pick another name, or delete the Node (kubectl delete node %s) if the machine is gone", j.o.Node, j.o.SpecPath, j.o.Node)
	}
	return true, fmt.Sprintf("cluster reachable, %s is already a Node (%s)", j.o.Node, readySummary(node)), nil
}

// checkMachine dials the installer and checks the hardware nixos-anywhere needs.
func (j *joiner) checkMachine(ctx context.Context) (string, error) {
	c, err := j.dial(ctx)
	if err != nil {
		return "", err
	}
	disk := j.node.Disk
	// One round trip: arch, memory, whether the disk is a block device.
	script := "uname -m; grep '^MemTotal:' /proc/meminfo; if test -b " + shellQuote(disk) + "; then echo disk=yes; else echo disk=no; fi"
	out, err := c.Output(ctx, script)
	if err != nil {
		return "", usagef("checking the machine: %w", err)
	}
	facts, err := parseFacts(out)
	if err != nil {
		return "", usagef("checking the machine %s: %w", c.Target(), err)
	}
	var problems []string
	switch facts.arch {
	case "x86_64", "aarch64":
	default:
		problems = append(problems, fmt.Sprintf("architecture %s is not supported (x86_64 or aarch64)", facts.arch))
	}
	if facts.memKiB < MinMemoryKiB {
		problems = append(problems, fmt.Sprintf("%.1f GiB of memory, nixos-anywhere's installer needs at least 1.5 GiB", float64(facts.memKiB)/(1024*1024)))
	}
	if !facts.disk {
		problems = append(problems, fmt.Sprintf("%s is not a block device on the machine (see lsblk there; set --disk)", disk))
	}
	if len(problems) > 0 {
		return "", usagef("%s: %s", c.Target(), strings.Join(problems, "; "))
	}
	added := ""
	if c.HostKeyAdded {
		added = ", host key recorded in known_hosts"
	}
	return fmt.Sprintf("SSH %s ok%s; %s, %.1f GiB, disk %s present", c.Target(), added, facts.arch, float64(facts.memKiB)/(1024*1024), disk), nil
}

type machineFacts struct {
	arch   string
	memKiB int64
	disk   bool
}

func parseFacts(out []byte) (machineFacts, error) {
	var f machineFacts
	sc := bufio.NewScanner(bytes.NewReader(out))
	line := 0
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		switch {
		case line == 0:
			f.arch = t
		case strings.HasPrefix(t, "MemTotal:"):
			fields := strings.Fields(t)
			if len(fields) < 2 {
				return f, fmt.Errorf("unreadable /proc/meminfo line %q", t)
			}
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return f, fmt.Errorf("unreadable /proc/meminfo line %q", t)
			}
			f.memKiB = v
		case t == "disk=yes":
			f.disk = true
		}
		line++
	}
	if f.arch == "" || f.memKiB == 0 {
		return f, errors.New("could not read the architecture and memory (uname -m, /proc/meminfo)")
	}
	return f, nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
