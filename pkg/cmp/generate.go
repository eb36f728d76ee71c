// Package cmp is the ArgoCD config management plugin: it renders an app directory into one
// multi-document YAML stream, decrypting SOPS files in memory on the way. A plain directory
// is rendered file by file; a kustomize directory is built by kustomize over an in-memory
// file system on which every SOPS file reads as its plaintext. Nothing is written to disk.
package cmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/pkg/sopsdoc"
)

// ErrNoManifests: the app dir holds nothing to render.
var ErrNoManifests = errors.New("no manifests found")

// Generator renders app directories.
type Generator struct {
	Decryptor *sopsdoc.Decryptor
	Env       Env
	// Parallelism bounds concurrent reads and decryptions; GOMAXPROCS when <= 0.
	Parallelism int
}

// kustomizationNames are the file names kustomize recognises as a kustomization root.
var kustomizationNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Generate renders dir and returns the whole stream. It returns output only when every file
// succeeded, so the caller can write stdout all at once or not at all.
func (g *Generator) Generate(ctx context.Context, dir string) ([]byte, error) {
	out, err := g.generate(ctx, dir)
	if err != nil {
		if c := g.Env.context(); c != "" {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		return nil, err
	}
	return out, nil
}

func (g *Generator) generate(ctx context.Context, dir string) ([]byte, error) {
	if g.Decryptor == nil {
		return nil, errors.New("cmp: Generator without a Decryptor")
	}
	root, err := resolveRoot(dir)
	if err != nil {
		return nil, err
	}
	files, err := walkApp(root)
	if err != nil {
		return nil, err
	}
	for _, name := range kustomizationNames {
		if _, err := os.Lstat(filepath.Join(root, name)); err == nil {
			return g.kustomize(ctx, root, name, files)
		}
	}
	return g.plain(ctx, root, files)
}

// plain renders every manifest file of a directory without kustomize.
func (g *Generator) plain(ctx context.Context, root string, files []appFile) ([]byte, error) {
	include, err := parseGlobs(g.Env.Include)
	if err != nil {
		return nil, fmt.Errorf("include: %w", err)
	}
	exclude, err := parseGlobs(g.Env.Exclude)
	if err != nil {
		return nil, fmt.Errorf("exclude: %w", err)
	}
	var selected []appFile
	for _, f := range files {
		if !sopsdoc.IsManifest(f.rel) || (len(include) > 0 && !include.match(f.rel)) || exclude.match(f.rel) {
			continue
		}
		selected = append(selected, f)
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("%s: %w (looked for *.yaml, *.yml and *.json%s)", root, ErrNoManifests, g.filterNote())
	}
	docs, err := g.each(ctx, selected, func(f appFile) ([]byte, error) {
		data, err := readLimited(f, g.Decryptor.MaxFileSize())
		if err != nil {
			return nil, err
		}
		plain, _, err := g.Decryptor.Decrypt(f.rel, data)
		if err != nil {
			return nil, err
		}
		if sopsdoc.FormatForPath(f.rel) == sopsdoc.FormatJSON {
			if plain, err = yaml.JSONToYAML(plain); err != nil {
				return nil, &sopsdoc.FileError{File: f.rel, Err: sopsdoc.ErrInvalid, Reason: "JSON cannot be converted to YAML"}
			}
		}
		return plain, nil
	})
	if err != nil {
		return nil, err
	}
	// Sized up front: the stream is as large as the app, and growing it by doubling would copy
	// it about twice, serially, after the parallel part.
	size := 0
	for _, d := range docs {
		size += len(d) + len("---\n\n")
	}
	var out bytes.Buffer
	out.Grow(size)
	for _, d := range docs {
		d = bytes.TrimPrefix(d, []byte("---\n"))
		if len(bytes.TrimSpace(d)) == 0 {
			continue
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(d)
		if d[len(d)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("%s: %w (every selected file is empty)", root, ErrNoManifests)
	}
	return out.Bytes(), nil
}

func (g *Generator) filterNote() string {
	var parts []string
	if g.Env.Include != "" {
		parts = append(parts, "include "+g.Env.Include)
	}
	if g.Env.Exclude != "" {
		parts = append(parts, "exclude "+g.Env.Exclude)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

func (g *Generator) parallelism() int {
	if g.Parallelism > 0 {
		return g.Parallelism
	}
	return runtime.GOMAXPROCS(0)
}

// each runs fn over files on a bounded pool and returns the results in files' order. All
// failures are reported, sorted by file, so one sync shows every broken file at once.
func (g *Generator) each(ctx context.Context, files []appFile, fn func(appFile) ([]byte, error)) ([][]byte, error) {
	results := make([][]byte, len(files))
	errs := make([]error, len(files))
	// Workers take the next index from a counter rather than from a feeding goroutine: each
	// channel hand-off readied a goroutine on one P and woke the other P's thread to steal
	// it (strace of a two-core run of 2,000 files: 715 futex and 2,918 nanosleep calls with
	// the channel, 468 and 811 with the counter; the run got 8 % faster).
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(g.parallelism(), len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				results[i], errs[i] = fn(files[i])
				// A worker that never blocks keeps the collector's background worker off
				// a single P: marking then drags on with write barriers on and the heap
				// grows by half. Yielding once per file lets it run (docs/PERFORMANCE.md).
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		sort.SliceStable(failed, func(i, j int) bool { return failed[i].Error() < failed[j].Error() })
		return nil, errors.Join(failed...)
	}
	return results, nil
}

// Discover returns the relative path of the first SOPS file below dir, or "" when there is
// none. Unreadable or oversized files and symlinks leading out are skipped, not errors:
// discovery only answers "is this app ours".
func (g *Generator) Discover(dir string) (string, error) {
	root, err := resolveRoot(dir)
	if err != nil {
		return "", err
	}
	files, err := walkApp(root)
	if err != nil {
		var fe *sopsdoc.FileError
		if !errors.As(err, &fe) {
			return "", err
		}
		// A refused symlink: fall back to a walk that skips it.
		files, err = walkAppSkipping(root)
		if err != nil {
			return "", err
		}
	}
	limit := sopsdoc.DefaultMaxFileSize
	if g.Decryptor != nil {
		limit = g.Decryptor.MaxFileSize()
	}
	for _, f := range files {
		data, err := readLimited(f, limit)
		if err != nil {
			continue
		}
		if sopsdoc.Detect(f.rel, data) {
			return f.rel, nil
		}
	}
	return "", nil
}

// walkAppSkipping is walkApp minus the files that make walkApp fail.
func walkAppSkipping(root string) ([]appFile, error) {
	var files []appFile
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, appFile{rel: filepath.ToSlash(rel), path: p})
		}
		return nil
	})
	return files, err
}
