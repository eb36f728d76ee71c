// Package atomicfile writes files so that readers see the old content or the new, never a
// half-written file: a temp file in the same directory, synced, then renamed over the target.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data, with the given mode.
func WriteFile(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
