package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// BinDirEnv names the directory holding NERV's own built programs (kubectl-nerv,
// argocd-sops-plugin, nerv-webhook). `make test` builds them into bin/ first and sets it, so
// tests that run the real programs reuse one build instead of compiling their own.
const BinDirEnv = "NERV_BIN_DIR"

var (
	buildMu  sync.Mutex
	builtDir string
)

// ProgramBinary returns the path of one of NERV's programs: from $NERV_BIN_DIR when set,
// else built once per test process from this module (slow on a cold cache; `make test`
// avoids it).
func ProgramBinary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv(BinDirEnv); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s but %s is missing: run `make build`", BinDirEnv, dir, p)
		}
		return p
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if builtDir == "" {
		d, err := os.MkdirTemp("", "nerv-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builtDir = d
	}
	p := filepath.Join(builtDir, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", p, "./cmd/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s (set %s to skip this): %v\n%s", name, BinDirEnv, err, out)
	}
	return p
}
