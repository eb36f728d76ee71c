package testenv

import (
	"fmt"
	"os"
	"path/filepath"
)

// Versions of the binaries hack/test-assets.sh builds; keep in step with that script.
var assetVersions = map[string]string{
	"etcd":                    "v3.7.3",
	"kube-apiserver":          "v1.37.2",
	"kube-controller-manager": "v1.37.2",
	"kube-scheduler":          "v1.37.2",
	"kubectl":                 "v1.37.2",
	"kwok":                    "v0.8.0",
	"sops":                    "v3.13.3",
	"krew":                    "v0.4.3",
	"validate-krew-manifest":  "v0.4.3",
}

// CacheDir is where hack/test-assets.sh caches what it builds: $NERV_CACHE or ~/.cache/nerv.
func CacheDir() string {
	if d := os.Getenv("NERV_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "nerv-cache")
	}
	return filepath.Join(home, ".cache", "nerv")
}

// AssetDir returns the directory holding the named asset, e.g. ~/.cache/nerv/assets/kwok-v0.8.0.
func AssetDir(name string) string {
	return filepath.Join(CacheDir(), "assets", name+"-"+assetVersions[name])
}

// Asset returns the path of a built test binary, or an error that says how to build it.
func Asset(name string) (string, error) {
	if _, ok := assetVersions[name]; !ok {
		return "", fmt.Errorf("testenv: unknown asset %q", name)
	}
	p := filepath.Join(AssetDir(name), name)
	if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
		return "", &MissingAssetError{Name: name, Path: p}
	}
	return p, nil
}

// MissingAssetError says which binary is missing and the one command that builds it.
type MissingAssetError struct {
	Name, Path string
}

func (e *MissingAssetError) Error() string {
	return fmt.Sprintf("test asset %s not found at %s: build the test assets with `hack/test-assets.sh` (or `make assets`)", e.Name, e.Path)
}
