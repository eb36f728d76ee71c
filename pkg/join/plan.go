package join

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nerv-platform/nerv/pkg/nixos"
	"github.com/nerv-platform/nerv/pkg/platform"
	"github.com/nerv-platform/nerv/pkg/spec"
)

// Hardware sources, in Plan.Hardware.
const (
	HardwareCaptured = "captured"  // hosts/NODE/hardware-configuration.nix already came from the machine
	HardwareFetched  = "fetched"   // read now with nixos-generate-config over SSH
	HardwareAnywhere = "installer" // nixos-anywhere --generate-hardware-config writes it during install
	HardwareUnknown  = "unknown"   // dry run without --check-remote: decided when the machine is reached
)

// Plan is what the join will change and run.
type Plan struct {
	// SpecChange describes the nerv.yaml edit ("" when the node is already there).
	SpecChange string `json:"specChange,omitempty"`
	// Files are the rendered files that change.
	Files []PlanFile `json:"files"`
	// Hardware says where hardware-configuration.nix comes from.
	Hardware string `json:"hardware"`
	// Command is the nixos-anywhere command line; <staging> stands for the temp dir of
	// extra files, which exists only while it runs.
	Command []string `json:"command"`
}

// PlanFile is one file the plan writes.
type PlanFile struct {
	Path   string       `json:"path"`
	Action nixos.Action `json:"action"`
}

// stagingPlaceholder stands for the extra-files dir in a printed plan.
const stagingPlaceholder = "<staging>"

func (j *joiner) hardwarePath() string {
	return filepath.Join(j.o.OutDir, filepath.FromSlash(nixos.HardwarePath(j.o.Node)))
}

// hardwareCaptured reports whether the node's hardware-configuration.nix came from the machine.
func (j *joiner) hardwareCaptured() (bool, error) {
	b, err := os.ReadFile(j.hardwarePath())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !nixos.IsPlaceholderHardware(b), nil
}

// planDone: the node is in the spec, the rendered files are current and the hardware
// configuration was captured. The plan is still computed for the later steps.
func (j *joiner) planDone(ctx context.Context) (bool, string, error) {
	if !j.inSpec {
		return false, "", nil
	}
	captured, err := j.hardwareCaptured()
	if err != nil || !captured {
		return false, "", err
	}
	tree, err := platform.RenderSite(j.cluster)
	if err != nil {
		return false, "", usage(err)
	}
	changes, err := nixos.Write(j.o.OutDir, tree, nixos.WriteOptions{DryRun: true})
	if err != nil || changes.Pending() {
		return false, "", err
	}
	j.planned = &Plan{Hardware: HardwareCaptured, Command: j.installCommand(stagingPlaceholder, false)}
	return true, fmt.Sprintf("%s is in %s, files up to date, hardware configuration captured", j.o.Node, j.o.SpecPath), nil
}

// plan adds the node to the spec, renders its files and captures its hardware
// configuration, then prints the plan. A dry run prints and writes nothing.
func (j *joiner) plan(ctx context.Context) (string, error) {
	o := j.o
	p := &Plan{}
	if !j.inSpec {
		idx := len(j.cluster.Spec.Nodes) - 1
		init := ""
		if j.node.ClusterInit {
			init = ", clusterInit: it bootstraps the cluster"
		}
		p.SpecChange = fmt.Sprintf("add spec.nodes[%d] %s (%s, %s, disk %s%s)", idx, o.Node, j.node.Role, j.node.IP, j.node.Disk, init)
	}
	tree, err := platform.RenderSite(j.cluster)
	if err != nil {
		return "", usage(err)
	}

	hw, err := j.hardware(ctx)
	if err != nil {
		return "", err
	}
	p.Hardware = hw.source
	if hw.content != nil {
		tree[nixos.HardwarePath(o.Node)] = hw.content
	}
	changes, err := nixos.Write(o.OutDir, tree, nixos.WriteOptions{DryRun: true})
	if err != nil {
		return "", err
	}
	for _, c := range changes {
		if c.Action == nixos.Create || c.Action == nixos.Update || c.Action == nixos.Delete {
			p.Files = append(p.Files, PlanFile{Path: c.Path, Action: c.Action})
		}
	}
	p.Command = j.installCommand(stagingPlaceholder, p.Hardware == HardwareAnywhere)
	j.planned = p
	j.printPlan(o.Out, p)

	if o.DryRun {
		return "dry run: nothing written", nil
	}
	if !j.inSpec {
		if err := spec.Write(o.SpecPath, j.raw); err != nil {
			return "", err
		}
	}
	if _, err := nixos.Write(o.OutDir, tree, nixos.WriteOptions{}); err != nil {
		return "", fmt.Errorf("writing the rendered files (nerv.yaml already has %s; re-run to resume): %w", o.Node, err)
	}
	return fmt.Sprintf("wrote %d files, hardware configuration %s", len(p.Files), hw.source), nil
}

type hardwareResult struct {
	source  string
	content []byte
}

// hardware decides where hardware-configuration.nix comes from: the one already captured,
// the machine's nixos-generate-config (read over SSH now), or nixos-anywhere at install.
func (j *joiner) hardware(ctx context.Context) (hardwareResult, error) {
	captured, err := j.hardwareCaptured()
	if err != nil {
		return hardwareResult{}, err
	}
	if captured {
		return hardwareResult{source: HardwareCaptured}, nil
	}
	if j.o.DryRun && !j.o.CheckRemote {
		return hardwareResult{source: HardwareUnknown}, nil
	}
	c, err := j.dial(ctx)
	if err != nil {
		return hardwareResult{}, err
	}
	if _, err := c.Output(ctx, "command -v nixos-generate-config"); err != nil {
		// Not a NixOS installer (e.g. another distribution nixos-anywhere will kexec from):
		// nixos-anywhere runs nixos-generate-config itself once its installer is up.
		return hardwareResult{source: HardwareAnywhere}, nil
	}
	out, err := c.Output(ctx, "nixos-generate-config --show-hardware-config --no-filesystems")
	if err != nil {
		return hardwareResult{}, fmt.Errorf("capturing the hardware configuration: %w", err)
	}
	if !bytes.Contains(out, []byte("{")) || nixos.IsPlaceholderHardware(out) {
		return hardwareResult{}, fmt.Errorf("capturing the hardware configuration: nixos-generate-config on %s printed no Nix expression", c.Target())
	}
	header := fmt.Sprintf("# Captured by `kubectl nerv join` from %s with nixos-generate-config --show-hardware-config --no-filesystems.\n", j.o.Node)
	return hardwareResult{source: HardwareFetched, content: append([]byte(header), out...)}, nil
}

func (j *joiner) printPlan(w io.Writer, p *Plan) {
	o := j.o
	var b strings.Builder
	fmt.Fprintf(&b, "Plan to join %s (%s, %s):\n", o.Node, j.node.Role, j.node.IP)
	if p.SpecChange != "" {
		fmt.Fprintf(&b, "  %s: %s\n", o.SpecPath, p.SpecChange)
	} else {
		fmt.Fprintf(&b, "  %s: %s is already there\n", o.SpecPath, o.Node)
	}
	if len(p.Files) == 0 {
		fmt.Fprintf(&b, "  files under %s: up to date\n", o.OutDir)
	} else {
		fmt.Fprintf(&b, "  files under %s:\n", o.OutDir)
		for _, f := range p.Files {
			fmt.Fprintf(&b, "    %-6s %s\n", f.Action, f.Path)
		}
	}
	hw := nixos.HardwarePath(o.Node)
	switch p.Hardware {
	case HardwareCaptured:
		fmt.Fprintf(&b, "  %s: already captured from the machine, kept\n", hw)
	case HardwareFetched:
		fmt.Fprintf(&b, "  %s: captured now with nixos-generate-config over SSH\n", hw)
	case HardwareAnywhere:
		fmt.Fprintf(&b, "  %s: the machine has no nixos-generate-config; nixos-anywhere generates it during install\n", hw)
	case HardwareUnknown:
		fmt.Fprintf(&b, "  %s: captured over SSH when the machine is reached (nixos-generate-config, or nixos-anywhere --generate-hardware-config)\n", hw)
	}
	fmt.Fprintf(&b, "  install: %s\n", strings.Join(quoteArgs(p.Command), " "))
	fmt.Fprintf(&b, "           with %s = a 0700 temp dir holding var/lib/sops-nix/key.txt (age key) and the node's SSH host key, removed afterwards\n", stagingPlaceholder)
	fmt.Fprintf(&b, "  then: wait up to %s for Node %s to be Ready, label it", o.Timeout, o.Node)
	if j.first {
		fmt.Fprintf(&b, ", merge its kubeconfig as context %q", j.cluster.Metadata.Name)
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == stagingPlaceholder {
			out[i] = a
			continue
		}
		out[i] = shellQuote(a)
	}
	return out
}
