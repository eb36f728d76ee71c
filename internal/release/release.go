// Package release builds NERV's release archives and the krew manifest for kubectl-nerv.
// Archives are reproducible: entries sorted, fixed modification times and owners, so that
// the same binaries always give the same sha256 (which the krew manifest pins).
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/nerv-platform/nerv/pkg/atomicfile"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Platform is a GOOS/GOARCH pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "_" + p.Arch }

// Platforms are the ones NERV releases for.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// Programs are NERV's three binaries.
var Programs = []string{"kubectl-nerv", "argocd-sops-plugin", "nerv-webhook"}

// CompletionScript is what kubectl (>= 1.26) runs to complete `kubectl nerv ...`: it finds
// kubectl_complete-nerv on PATH and passes it the words typed so far.
const CompletionScript = `#!/usr/bin/env sh
# Shell completion for the kubectl plugin "nerv" (kubectl >= 1.26 calls this for kubectl nerv <TAB>).
exec kubectl-nerv __complete "$@"
`

// Archive is one built release archive.
type Archive struct {
	Program  string
	Platform Platform
	Path     string
	SHA256   string
}

// ArchiveName is the file name of a program's archive for a platform and version.
func ArchiveName(program, version string, p Platform) string {
	return fmt.Sprintf("%s_%s_%s.tar.gz", program, version, p)
}

// Options configure Build.
type Options struct {
	Version, Commit, Date string
	// Out is the directory archives and SHA256SUMS are written to.
	Out string
	// Root is the module root (where go build runs).
	Root      string
	Platforms []Platform
	Programs  []string
	// Files are extra files (LICENSE, README.md) put into every archive, by name.
	Files map[string][]byte
	// Log receives one line per step.
	Log func(format string, args ...any)
}

// Build cross-compiles every program for every platform and packs one archive each.
func Build(ctx context.Context, o Options) ([]Archive, error) {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	var archives []Archive
	for _, p := range o.Platforms {
		for _, prog := range o.Programs {
			start := time.Now()
			bin, err := compile(ctx, o, prog, p)
			if err != nil {
				return nil, err
			}
			files := map[string][]byte{prog: bin}
			for name, b := range o.Files {
				files[name] = b
			}
			if prog == "kubectl-nerv" {
				files["kubectl_complete-nerv"] = []byte(CompletionScript)
			}
			a, err := WriteArchive(filepath.Join(o.Out, ArchiveName(prog, o.Version, p)), files)
			if err != nil {
				return nil, err
			}
			a.Program, a.Platform = prog, p
			archives = append(archives, a)
			if o.Log != nil {
				o.Log("%s %s: %s (%s)", prog, p, filepath.Base(a.Path), time.Since(start).Round(time.Second))
			}
		}
	}
	if err := writeAtomic(filepath.Join(o.Out, "SHA256SUMS"), Checksums(archives), 0o644); err != nil {
		return nil, err
	}
	return archives, nil
}

func compile(ctx context.Context, o Options, prog string, p Platform) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "nerv-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, prog)
	ldflags := fmt.Sprintf("-s -w -X github.com/nerv-platform/nerv/internal/version.Version=%s -X github.com/nerv-platform/nerv/internal/version.Commit=%s -X github.com/nerv-platform/nerv/internal/version.Date=%s", o.Version, o.Commit, o.Date)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/"+prog)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s for %s: %w\n%s", prog, p, err, b)
	}
	return os.ReadFile(out)
}

// WriteArchive writes a reproducible .tar.gz of files (name → content; executables are the
// programs and the completion script) and returns its path and sha256.
func WriteArchive(path string, files map[string][]byte) (Archive, error) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	epoch := time.Unix(0, 0).UTC()
	for _, n := range names {
		mode := int64(0o644)
		if executable(n) {
			mode = 0o755
		}
		hdr := &tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), ModTime: epoch, Format: tar.FormatPAX, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return Archive{}, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return Archive{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Archive{}, err
	}
	if err := gz.Close(); err != nil {
		return Archive{}, err
	}
	sum := sha256.Sum256(buf.Bytes())
	if err := writeAtomic(path, buf.Bytes(), 0o644); err != nil {
		return Archive{}, err
	}
	return Archive{Path: path, SHA256: hex.EncodeToString(sum[:])}, nil
}

func executable(name string) bool {
	for _, p := range Programs {
		if name == p {
			return true
		}
	}
	return strings.HasPrefix(name, "kubectl_complete-")
}

// Checksums is a SHA256SUMS file (sha256sum -c compatible) for the archives.
func Checksums(archives []Archive) []byte {
	var b strings.Builder
	for _, a := range archives {
		fmt.Fprintf(&b, "%s  %s\n", a.SHA256, filepath.Base(a.Path))
	}
	return []byte(b.String())
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}
