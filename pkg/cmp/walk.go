package cmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/nerv-platform/nerv/pkg/sopsdoc"
)

// ErrOutsideAppDir marks a path that leaves the app directory (symlink, absolute path, "..").
var ErrOutsideAppDir = errors.New("outside the app directory")

// appFile is one regular file of the app dir. Its size is learnt when it is opened, on the
// worker that reads it: a stat per file in the walk was most of the walk's time (6 µs a file
// here), and serial.
type appFile struct {
	rel  string // slash-separated, relative to the app dir
	path string // absolute path to read (a symlink's target for in-bound symlinks)
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
				files = append(files, appFile{rel: rel, path: target})
			}
		case d.Type().IsRegular():
			files = append(files, appFile{rel: rel, path: p})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

// readLimited reads a file, refusing it when it is over limit bytes (checked on the open
// file before reading, and again while reading in case it grows).
func readLimited(f appFile, limit int64) ([]byte, error) {
	tooLarge := func(n int64) error {
		return &sopsdoc.FileError{File: f.rel, Err: sopsdoc.ErrTooLarge,
			Reason: fmt.Sprintf("%d bytes, limit %d (raise it with the max-file-size parameter or ARGOCD_ENV_SOPS_MAX_FILE_SIZE)", n, limit)}
	}
	fh, err := openFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.rel, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.rel, err)
	}
	if fi.Size() > limit {
		return nil, tooLarge(fi.Size())
	}
	// A buffer with room for the file and one more read lets two reads return the file and
	// EOF, instead of io.ReadAll growing from 512 bytes.
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(fh, limit+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", f.rel, err)
	}
	if int64(buf.Len()) > limit {
		return nil, tooLarge(int64(buf.Len()))
	}
	return buf.Bytes(), nil
}

// openFile opens path for reading. os.Open would first offer the descriptor to the network
// poller, which refuses regular files: four fcntl calls and a failed epoll_ctl per file, a
// quarter of the plugin's system calls on a large app. A descriptor opened here and wrapped by
// os.NewFile is an ordinary blocking file from the start.
func openFile(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
