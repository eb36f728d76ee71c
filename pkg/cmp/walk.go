package cmp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nerv-platform/nerv/pkg/sopsdoc"
)

// ErrOutsideAppDir marks a path that leaves the app directory (symlink, absolute path, "..").
var ErrOutsideAppDir = errors.New("outside the app directory")

// appFile is one regular file of the app dir.
type appFile struct {
	rel  string // slash-separated, relative to the app dir
	path string // absolute path to read (a symlink's target for in-bound symlinks)
	size int64
}

// resolveRoot returns the app dir as an absolute path with symlinks resolved, so that every
// boundary check compares real paths.
func resolveRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("app dir %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("app dir %s: %w", dir, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("app dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("app dir %s: not a directory", dir)
	}
	return real, nil
}

// within reports whether target is root or below it.
func within(root, target string) bool {
	rel, err := filepath.Rel(root, target)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// walkApp lists every regular file below root, sorted by relative path. Hidden files and
// directories (.git, .sops.yaml, ...) are skipped. A symlink whose target is outside root is
// an error, not a silent skip: a Secret that quietly goes missing is worse than a failed sync.
// In-bound symlinks to files are read through; symlinked directories are not descended.
func walkApp(root string) ([]appFile, error) {
	var files []appFile
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return &sopsdoc.FileError{File: rel, Err: ErrOutsideAppDir, Reason: "broken or looping symlink"}
			}
			if !within(root, target) {
				return &sopsdoc.FileError{File: rel, Err: ErrOutsideAppDir, Reason: "symlink leads out of the app directory; refused"}
			}
			fi, err := os.Stat(target)
			if err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				files = append(files, appFile{rel: rel, path: target, size: fi.Size()})
			}
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, appFile{rel: rel, path: p, size: fi.Size()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

// readLimited reads a file, refusing it when it is over limit bytes (checked before reading,
// and again while reading in case it grows).
func readLimited(f appFile, limit int64) ([]byte, error) {
	tooLarge := func(n int64) error {
		return &sopsdoc.FileError{File: f.rel, Err: sopsdoc.ErrTooLarge,
			Reason: fmt.Sprintf("%d bytes, limit %d (raise it with the max-file-size parameter or ARGOCD_ENV_SOPS_MAX_FILE_SIZE)", n, limit)}
	}
	if f.size > limit {
		return nil, tooLarge(f.size)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.rel, err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.rel, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(int64(len(b)))
	}
	return b, nil
}
