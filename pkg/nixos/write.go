package nixos

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/nerv-platform/nerv/pkg/atomicfile"
)

// Action says what Write did (or, in a dry run, would do) with one file.
type Action string

const (
	Create    Action = "create"
	Update    Action = "update"
	Delete    Action = "delete"
	Unchanged Action = "unchanged"
	// Skip: the file differs but is kept, e.g. a hardware-configuration.nix from a real machine.
	Skip Action = "skip"
)

// Change is one file's outcome.
type Change struct {
	Path   string `json:"path"`
	Action Action `json:"action"`
	// Reason explains a Skip.
	Reason string `json:"reason,omitempty"`
	// Diff is a unified diff from the file on disk to the rendered one (empty if Unchanged).
	Diff string `json:"diff,omitempty"`
}

// Changes lists every file of the tree (and every stale host file) in path order.
type Changes []Change

// Pending reports whether anything was (or would be) created, updated or deleted.
func (cs Changes) Pending() bool {
	for _, c := range cs {
		if c.Action == Create || c.Action == Update || c.Action == Delete {
			return true
		}
	}
	return false
}

// Count returns how many changes have action a.
func (cs Changes) Count(a Action) int {
	n := 0
	for _, c := range cs {
		if c.Action == a {
			n++
		}
	}
	return n
}

// WriteOptions control Write.
type WriteOptions struct {
	// DryRun computes the changes without touching the disk.
	DryRun bool
	// Force overwrites (or deletes) hardware-configuration.nix files captured from machines.
	Force bool
}

// Write makes dir hold tree t: it creates and updates files atomically (temp file + rename),
// and, when t is a NixOS tree (it has nixos/flake.nix), deletes the generated files of hosts
// that are no longer in it. Other trees (e.g. rendered manifests) can be written the same way. It never
// overwrites a hardware-configuration.nix that lacks the placeholder marker (it came from
// the machine) unless opts.Force; files NERV does not generate (secrets/secrets.yaml,
// local.nix) are never touched. On error, the files already written stay written and the
// returned Changes say which.
func Write(dir string, t Tree, opts WriteOptions) (Changes, error) {
	var changes Changes
	for _, p := range t.Paths() {
		c, err := planFile(dir, p, t[p], opts)
		if err != nil {
			return changes, err
		}
		changes = append(changes, c)
	}
	stale, err := staleHostFiles(dir, t, opts)
	if err != nil {
		return changes, err
	}
	changes = append(changes, stale...)
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	if opts.DryRun {
		return changes, nil
	}
	for i, c := range changes {
		full := filepath.Join(dir, filepath.FromSlash(c.Path))
		switch c.Action {
		case Create, Update:
			if err := writeAtomic(full, t[c.Path]); err != nil {
				return changes[:i], fmt.Errorf("writing %s: %w", full, err)
			}
		case Delete:
			if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return changes[:i], fmt.Errorf("deleting %s: %w", full, err)
			}
			// Drop the host directory once nothing of ours or the user's is left in it.
			_ = os.Remove(filepath.Dir(full))
		}
	}
	return changes, nil
}

func planFile(dir, p string, want []byte, opts WriteOptions) (Change, error) {
	full := filepath.Join(dir, filepath.FromSlash(p))
	have, err := os.ReadFile(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Change{Path: p, Action: Create, Diff: unifiedDiff(p, nil, want)}, nil
	case err != nil:
		return Change{}, fmt.Errorf("reading %s: %w", full, err)
	case bytes.Equal(have, want):
		return Change{Path: p, Action: Unchanged}, nil
	case isHardware(p) && !IsPlaceholderHardware(have) && !opts.Force:
		return Change{Path: p, Action: Skip, Reason: "captured from the machine; --force replaces it with the placeholder"}, nil
	}
	return Change{Path: p, Action: Update, Diff: unifiedDiff(p, have, want)}, nil
}

func isHardware(p string) bool { return path.Base(p) == "hardware-configuration.nix" }

// staleHostFiles finds generated files of hosts that are no longer in the tree.
func staleHostFiles(dir string, t Tree, opts WriteOptions) (Changes, error) {
	// Only a NixOS tree owns nixos/hosts/; other trees written with Write (the GitOps
	// manifests) must leave it alone.
	if _, ok := t[path.Join(Root, "flake.nix")]; !ok {
		return nil, nil
	}
	hosts := filepath.Join(dir, Root, "hosts")
	entries, err := os.ReadDir(hosts)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", hosts, err)
	}
	var out Changes
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, kept := t[path.Join(HostDir(e.Name()), "default.nix")]; kept {
			continue
		}
		for _, f := range hostFiles {
			p := path.Join(HostDir(e.Name()), f)
			have, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			if isHardware(p) && !IsPlaceholderHardware(have) && !opts.Force {
				out = append(out, Change{Path: p, Action: Skip, Reason: "host is no longer in the spec, but this file was captured from the machine; --force deletes it"})
				continue
			}
			out = append(out, Change{Path: p, Action: Delete, Diff: unifiedDiff(p, have, nil)})
		}
	}
	return out, nil
}

// unifiedDiff renders a diff in the form of `diff -u`, with a/ and b/ prefixes as git uses.
func unifiedDiff(p string, from, to []byte) string {
	fromFile, toFile := "a/"+p, "b/"+p
	if from == nil {
		fromFile = "/dev/null"
	}
	if to == nil {
		toFile = "/dev/null"
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        splitLines(from),
		B:        splitLines(to),
		FromFile: fromFile,
		ToFile:   toFile,
		Context:  3,
	})
	if err != nil {
		// Only a failing writer errors, and this one is a buffer.
		return ""
	}
	return d
}

// splitLines keeps line ends, marking a last line without one as diff does.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n\\ No newline at end of file\n"
	}
	return lines
}

// writeAtomic writes data beside path and renames it into place, so a reader (or a crash)
// never sees half a file. A new file is 0644, an existing one keeps its mode.
func writeAtomic(p string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(p); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, mode)
}
